"""The CLI as `pipx install .` installs it, outside the repository.

The wheel is built from a copy of the checkout (what `git clone` gives: tracked files and untracked ones that are
not ignored), so that no build/ or egg-info lands in the working tree and runs alongside do not share one. It must
hold every module, subpackage and data file under lambda/ and cli/, and nothing else; its pins are
requirements-dev.txt's. Installed into a fresh venv (its dependencies from the package index, nothing of this
checkout on its path, no numpy, Pillow or onnxruntime), both command names run, and real commands read a deployment
of each backend. The deployments are the lightest real ones the tests build, served to another process: for Ground
Truth, tests/cli/conftest.py's stacks, bucket, ledger, queues and user pool on moto's server (the demo's emulator)
with the Ground Truth fake behind the demo's HTTP endpoint and a job launched by the real launcher; for Label
Studio, tests/label_studio/pipeline_world.py's (moto's server and a real Label Studio server, the project made as
the setup function makes it) plus the pipeline stack's outputs. The demo's own deployment would add a `cdk synth`
per backend (about 16 s each here) for nothing the CLI reads: it reads only the stacks' outputs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from labeling_pipeline.backends.ground_truth import GroundTruthBackend
from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.ledger_schema import create_table_arguments
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.names import StackOutput
from sandbox.emulator import MotoServer
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import label_studio_pipeline, rectangle, until
from tests.label_studio.test_pipeline import new_job
from tests.lambda_code.test_job_events import output_line
from tests.support import BACKEND_RESOURCES, FIXED_NOW, REGION, ROLE_ARN, WORKTEAM_ARN, make_settings, settings_json

ROOT = Path(__file__).resolve().parents[2]
# The source roots and the packages each holds (pyproject.toml, [tool.setuptools.packages.find]).
SOURCE_ROOTS = {"lambda": "labeling_pipeline", "cli": "labeling_cli"}
COMMANDS = ("bbox-labeling", "gt-labeling")
ENTRY_POINT = "labeling_cli.main:main"
# Only the pre-label function needs these (tests/lambda_code/test_import_footprint.py): the CLI installs without.
NOT_INSTALLED = ("numpy", "PIL", "onnxruntime")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
INSTALL_TIMEOUT_SECONDS = 600
CLI_TIMEOUT_SECONDS = 120


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dev_pins() -> dict[str, str]:
    """requirements-dev.txt's `name==version` lines (not those with extras, which a constraints file refuses)."""
    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        found = PIN.match(line.split("#", 1)[0].strip())
        if found:
            pins[_normalized(found[1])] = found[2]
    return pins


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps .` of a copy of the checkout, with the dev venv's pinned setuptools (as `make setup`
    installs the project: no build isolation, nothing downloaded)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "checkout"
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # The source as a path, not a bare folder name, which pip would take for a project on the index.
    command = ["pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"), str(source)]
    built = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies from the package index, constrained to the dev pins."""
    target = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=60)
    constraints = target.parent / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in _dev_pins().items()))
    # This venv's pip installs into the new one (`--python`): the fresh venv needs no pip of its own.
    pip = [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python")]
    installed = subprocess.run(
        [*pip, "install", "-q", "--constraint", str(constraints), str(wheel)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return target


def run_installed(
    venv: Path, command: str, *args: str, cwd: Path, endpoints: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command as a user's shell runs it: from another folder, with nothing of this checkout or of
    the dev venv in the environment, AWS pointed at the emulator."""
    environment = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **(endpoints or {}),
    }
    return subprocess.run(
        [str(venv / "bin" / command), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def outputs_stack(cloudformation: Any, name: str, outputs: dict[str, str]) -> None:
    """A stack with the outputs the deployed one has, which is all the CLI reads of it (as tests/cli/conftest.py)."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_wheel_holds_every_package_and_data_file_under_lambda_and_cli_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = {name.split("/", 1)[0] for name in names if ".dist-info/" in name}
        (info,) = dist_info
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
        metadata = archive.read(f"{info}/METADATA").decode()
    expected = {
        name.split("/", 1)[1]
        for name in _checkout_files()
        if name.split("/", 1)[0] in SOURCE_ROOTS and "__pycache__" not in name
    }
    # Every module and subpackage (label_studio among them) and the files read beside the code.
    assert {
        "labeling_pipeline/backends/label_studio/__init__.py",
        "labeling_pipeline/prelabel/__init__.py",
        "labeling_pipeline/backends/ground_truth/regions.json",
        "labeling_cli/main.py",
    } <= expected
    assert sorted(names - {name for name in names if name.startswith(f"{info}/")}) == sorted(expected)
    assert {name.split("/", 1)[0] for name in expected} == set(SOURCE_ROOTS.values())
    assert dict(entry_points["console_scripts"]) == dict.fromkeys(COMMANDS, ENTRY_POINT)
    summary = next(line for line in metadata.splitlines() if line.startswith("Summary: "))
    assert "Ground Truth" in summary and "Label Studio" in summary


def test_the_runtime_dependencies_are_pinned_as_requirements_dev_pins_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = _dev_pins()
    pinned = {}
    for requirement in project["dependencies"]:
        found = PIN.match(requirement)
        assert found, f"{requirement}: pin it with == as requirements-dev.txt does"
        pinned[_normalized(found[1])] = found[2]
    assert {name: dev.get(name) for name in pinned} == pinned
    assert not {_normalized(name) for name in NOT_INSTALLED} & set(pinned)


def test_both_names_run_the_same_cli_from_the_fresh_venv_alone(venv: Path, tmp_path: Path) -> None:
    where = run_installed(
        venv,
        "python",
        "-c",
        "import importlib.util, labeling_cli, labeling_pipeline; print(labeling_cli.__file__); "
        f"print(labeling_pipeline.__file__); print([m for m in {NOT_INSTALLED!r} if importlib.util.find_spec(m)])",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    cli_file, pipeline_file, present = where.stdout.splitlines()
    assert Path(cli_file).is_relative_to(venv) and Path(pipeline_file).is_relative_to(venv)
    assert present == "[]"
    helps = {}
    for command in COMMANDS:
        answer = run_installed(venv, command, "--help", cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.startswith(f"usage: {command} ")
        # The same text but for the names (and argparse's indentation, which follows the name's length).
        helps[command] = " ".join(re.sub("|".join(COMMANDS), "NAME", answer.stdout).split())
    assert helps["bbox-labeling"] == helps["gt-labeling"]
    # A subcommand's usage names the command typed too.
    answer = run_installed(venv, "bbox-labeling", "status", "--help", cwd=tmp_path)
    assert answer.returncode == 0 and answer.stdout.startswith("usage: bbox-labeling status ")


def test_status_and_export_read_a_ground_truth_deployment(
    venv: Path, moto_s3_server: MotoServer, tmp_path: Path
) -> None:
    project, bucket, table = "packaging-gt", "packaging-gt-bucket", "packaging-gt-ledger"

    def client(service: str, url: str = moto_s3_server.url) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=url)

    s3, sqs, dynamodb = client("s3"), client("sqs"), client("dynamodb")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb.create_table(TableName=table, **create_table_arguments())
    queue_url = sqs.create_queue(QueueName=f"{project}-uploads")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{project}-uploads-dlq")["QueueUrl"]
    cognito = client("cognito-idp")
    pool_id = cognito.create_user_pool(PoolName=f"{project}-workers")["UserPool"]["Id"]
    cognito.create_group(UserPoolId=pool_id, GroupName="labelers")
    cloudformation = client("cloudformation")
    outputs_stack(
        cloudformation,
        f"{project}-pipeline",
        {
            StackOutput.BUCKET_NAME: bucket,
            StackOutput.LEDGER_TABLE_NAME: table,
            StackOutput.UPLOAD_QUEUE_URL: queue_url,
            StackOutput.DEAD_LETTER_QUEUE_URL: dlq_url,
            "GroundTruthRoleArn": ROLE_ARN,
            StackOutput.LABELING_BACKEND: "ground-truth",
            StackOutput.PIPELINE_SETTINGS: settings_json(),
            StackOutput.BACKEND_RESOURCES: BACKEND_RESOURCES,
        },
    )
    outputs_stack(
        cloudformation,
        f"{project}-workforce",
        {"UserPoolId": pool_id, "WorkerGroupName": "labelers", "WorkteamArn": WORKTEAM_ARN},
    )
    fake = FakeGroundTruth(region=REGION, s3_client=s3)
    with GroundTruthEndpoint(fake) as ground_truth:
        settings = make_settings()
        backend = GroundTruthBackend(
            client("sagemaker", ground_truth.url),
            s3,
            settings,
            region=REGION,
            workteam_arn=WORKTEAM_ARN,
            role_arn=ROLE_ARN,
        )
        launcher = Launcher(
            s3_client=s3,
            ledger=Ledger(dynamodb, table),
            backend=backend,
            bucket=bucket,
            settings=settings,
            clock=lambda: FIXED_NOW,
        )
        images = []
        for index in range(2):
            key = f"images/packaging/{index}.jpg"
            version = s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff\xe0 fake jpeg")["VersionId"]
            images.append(ImageRef(bucket, key, version))
        (name,) = {outcome.job_name for outcome in launcher.launch(images).values()}
        assert name is not None
        fake.finish(name, "Completed", [output_line(image, [(1, 40, 30, 100, 60)], name) for image in images])

        endpoints = {"AWS_ENDPOINT_URL": moto_s3_server.url, "AWS_ENDPOINT_URL_SAGEMAKER": ground_truth.url}
        status = run_installed(venv, "bbox-labeling", "--project", project, "status", cwd=tmp_path, endpoints=endpoints)
        assert status.returncode == 0, status.stderr
        (row,) = [line for line in status.stdout.splitlines() if line.startswith(name)]
        assert row.split() == [name, "Completed", "2", "2", "0", "0"]
        assert "DescribeLabelingJob" in {operation for operation, _ in fake.calls}
        exported = run_installed(
            venv,
            "gt-labeling",
            *("--project", project, "export", name, "--format", "coco", "--out", str(tmp_path / "out")),
            cwd=tmp_path,
            endpoints=endpoints,
        )
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["boxesPerLabel"] == {"Dog": 2}
    assert len(json.loads((tmp_path / "out" / "coco.json").read_text())["annotations"]) == 2


def test_status_and_export_read_a_label_studio_deployment(
    venv: Path, moto_s3_server: MotoServer, label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    project = "packaging-ls"
    with label_studio_pipeline(moto_s3_server, label_studio, "Packaging") as pipeline:
        environment = pipeline.environment
        outputs_stack(
            pipeline.client("cloudformation"),
            f"{project}-pipeline",
            {
                StackOutput.BUCKET_NAME: pipeline.bucket,
                StackOutput.LEDGER_TABLE_NAME: environment[Env.LEDGER_TABLE_NAME],
                StackOutput.UPLOAD_QUEUE_URL: environment["UPLOAD_QUEUE_URL"],
                StackOutput.DEAD_LETTER_QUEUE_URL: environment[Env.DEAD_LETTER_QUEUE_URL],
                StackOutput.RESULTS_TOPIC_ARN: environment[Env.RESULTS_TOPIC_ARN],
                StackOutput.LABELING_BACKEND: "label-studio",
                StackOutput.PIPELINE_SETTINGS: environment[Env.PIPELINE_SETTINGS],
                StackOutput.BACKEND_RESOURCES: environment[Env.BACKEND_RESOURCES],
            },
        )
        key = "images/packaging/a.png"
        job, tasks = new_job(pipeline, {key: (200, 100)})
        pipeline.annotate(tasks[key]["id"], [rectangle(10, 10, 50, 50, "Cat", (200, 100))])
        # Label Studio's webhook reached the job-events function, which ended the job.
        assert until(lambda: pipeline.exports(job).get("summary.json"))

        endpoints = {"AWS_ENDPOINT_URL": moto_s3_server.url}
        status = run_installed(venv, "bbox-labeling", "--project", project, "status", cwd=tmp_path, endpoints=endpoints)
        assert status.returncode == 0, status.stderr
        (row,) = [line for line in status.stdout.splitlines() if line.startswith(job)]
        assert row.split() == [job, "Completed", "1", "1", "0", "0"]
        exported = run_installed(
            venv,
            "gt-labeling",
            *("--project", project, "export", job, "--format", "yolo", "--out", str(tmp_path / "out")),
            cwd=tmp_path,
            endpoints=endpoints,
        )
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["boxesPerLabel"] == {"Cat": 1}
