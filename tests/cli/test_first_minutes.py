"""The CLI's first minutes, as a newcomer meets them: the installed `gt-labeling` run as a program, in an
environment with no AWS configuration at all (an empty home, no config or credentials file, no AWS_*
variable but the ones a case sets), and the region chosen the way the CDK CLI and `make deploy` choose it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from labeling_cli import main as cli
from labeling_cli import sources
from tests.cli.conftest import Deployed

FIXTURE_MANIFEST = Path(__file__).parents[1] / "lambda_code/fixtures/output.manifest"
# The console script `make setup` installs beside this interpreter; the module when it is not there.
SCRIPT = Path(sys.executable).with_name("gt-labeling")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "labeling_cli.main"]
JOB = "bbox-20261125-76341079bd56"


def newcomer(tmp_path: Path, *argv: str, **aws: str) -> subprocess.CompletedProcess[str]:
    """`gt-labeling ARGV` with nothing configured: only PATH, an empty HOME and the AWS_* given here."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        # On a cloud CI runner the instance metadata service would hand out real credentials.
        "AWS_EC2_METADATA_DISABLED": "true",
        **aws,
    }
    return subprocess.run([*COMMAND, *argv], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line the CLI promises: exit code 2, nothing on stdout, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("gt-labeling: ")
    return line


def test_aws_region_is_enough_and_the_next_thing_missing_is_credentials(tmp_path: Path) -> None:
    line = one_line(newcomer(tmp_path, "status", AWS_REGION="us-east-1"))
    assert line.startswith("gt-labeling: No AWS credentials found: run `aws configure`")
    assert "region" not in line.lower()


def test_the_region_message_names_only_ways_that_work(tmp_path: Path) -> None:
    line = one_line(newcomer(tmp_path, "status"))
    assert line == (
        "gt-labeling: No AWS region set: export AWS_REGION (or AWS_DEFAULT_REGION) or pass --region, "
        "with the region you deployed to."
    )
    # Follow each piece of advice in turn: the region is then found, and credentials are what is missing.
    for argv, aws in (
        (["status"], {"AWS_REGION": "us-east-1"}),
        (["status"], {"AWS_DEFAULT_REGION": "us-east-1"}),
        (["--region", "us-east-1", "status"], {}),
    ):
        line = one_line(newcomer(tmp_path, *argv, **aws))
        assert line.startswith("gt-labeling: No AWS credentials found"), (argv, aws, line)


def test_region_flag_beats_aws_region_beats_aws_default_region_beats_the_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-1\n[profile other]\nregion = ap-northeast-2\n")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))

    def region(*argv: str, **environment: str) -> str | None:
        with monkeypatch.context() as scope:
            for name, value in environment.items():
                scope.setenv(name, value)
            return cli._session(cli.build_parser().parse_args([*argv, "status"])).region_name

    both = {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-west-2"}
    assert region("--region", "eu-west-1", **both) == "eu-west-1"
    assert region(**both) == "us-east-2"
    assert region(AWS_DEFAULT_REGION="us-west-2") == "us-west-2"
    assert region() == "ap-south-1"
    assert region("--profile", "other") == "ap-northeast-2"
    # As with the AWS CLI and the CDK CLI, the variable wins over the profile's region.
    assert region("--profile", "other", AWS_REGION="us-east-2") == "us-east-2"


def test_status_looks_for_the_stack_in_the_region_aws_region_names(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stacks are in us-east-1 (moto); AWS_DEFAULT_REGION points elsewhere, AWS_REGION at them.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert cli.main(["status"]) == 0, capsys.readouterr().err
    assert "uploads waiting in the queue: 0" in capsys.readouterr().out
    # --region wins over AWS_REGION: there is no stack in eu-west-1, and the error says where it looked.
    assert cli.main(["--region", "eu-west-1", "status"]) == 2
    assert "Stack gt-labeling-pipeline was not found in this account in region eu-west-1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "./missing/output.manifest", "--format", "coco", "--out", "dataset"],
        ["review", "./missing/output.manifest", "--images", "s3", "--out", "review"],
        ["export", "output.manifest", "--format", "yolo", "--out", "dataset", "--labels", '["Dog","Cat"]'],
        ["review", "results.jsonl", "--images", "photos", "--out", "review"],
    ],
    ids=["export-path", "review-path", "export-bare-name", "review-jsonl"],
)
def test_a_missing_local_manifest_is_said_before_any_aws_question(tmp_path: Path, argv: list[str]) -> None:
    source = argv[1]
    line = one_line(newcomer(tmp_path, *argv))
    assert line.startswith(f"gt-labeling: {source} does not exist (looked for {(tmp_path / source).resolve()})")
    assert "region" not in line.lower() and "credentials" not in line.lower()
    assert not (tmp_path / argv[argv.index("--out") + 1]).exists()


def test_a_folder_given_as_the_manifest_is_named_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "output").mkdir()
    line = one_line(newcomer(tmp_path, "export", "./output/", "--format", "coco", "--out", "dataset"))
    assert line == "gt-labeling: ./output/ is a folder, not an output manifest: name the output.manifest file in it"


def test_a_job_name_still_goes_to_aws_even_beside_a_folder_of_that_name(tmp_path: Path) -> None:
    # Not a file, so it is looked up as a job, which needs the region (guards the check above).
    (tmp_path / JOB).mkdir()  # e.g. an earlier `export JOB --out JOB`
    for argv in (
        ["export", JOB, "--format", "coco", "--out", "dataset"],
        ["review", JOB, "--images", "s3", "--out", "r"],
    ):
        assert one_line(newcomer(tmp_path, *argv)).startswith("gt-labeling: No AWS region set")


def test_a_local_manifest_needs_no_aws_and_says_what_the_stack_was_for(tmp_path: Path) -> None:
    result = newcomer(
        tmp_path, "export", str(FIXTURE_MANIFEST), "--format", "coco", "--out", "a", "--labels", '["Dog","Cat"]'
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "a/coco.json").is_file()
    # Without --labels the stack is wanted for the label order only: the export is made, and a note says so.
    result = newcomer(tmp_path, "export", str(FIXTURE_MANIFEST), "--format", "coco", "--out", "b")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b/coco.json").is_file()
    assert result.stderr == (
        "gt-labeling: note: no --labels, and the deployed stack's labels were not read (No AWS region set): "
        "class ids follow the order in which labels first appear in the manifest. "
        'Pass --labels \'["Dog","Cat"]\' to set it.\n'
    )


def test_a_wrong_profile_or_labels_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    line = one_line(newcomer(tmp_path, "--profile", "work", "status"))
    assert line == (
        "gt-labeling: AWS profile 'work' is not in your AWS config or credentials file: "
        "check --profile and AWS_PROFILE, or create it with `aws configure --profile work`."
    )
    assert one_line(newcomer(tmp_path, "status", AWS_PROFILE="work")) == line
    line = one_line(
        newcomer(tmp_path, "export", str(FIXTURE_MANIFEST), "--format", "coco", "--out", "a", "--labels", "Dog,Cat")
    )
    assert line == 'gt-labeling: --labels takes a JSON list of label names, e.g. \'["Dog","Cat"]\', not Dog,Cat'


def test_job_names_are_recognised_by_the_services_own_pattern() -> None:
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("LabelingJobName")
    assert sources.JOB_NAME.pattern == shape.metadata["pattern"]
    assert sources.local_manifest(JOB) is None
    assert re.fullmatch(shape.metadata["pattern"], sources.JOB_EXAMPLE)
