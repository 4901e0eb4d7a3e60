"""The commands a user meets first, run as they run: `make synth`'s CDK CLI synthesizing without a word of
warning, the CDK app refusing a bad configuration, and `make deploy`'s preflight stopping without
credentials before anything reaches AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _clean_environment(tmp_path: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and not key.startswith("CDK_") and key != "BOTO_CONFIG"
    }
    # No shared config or credentials files, and no instance metadata lookup on a machine without one.
    environment.update(
        {
            "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
    )
    return environment


def test_make_synth_prints_no_warning_and_no_feature_flag_notice(tmp_path: Path) -> None:
    # `make synth` runs the pinned CLI as `npx --no-install cdk --no-notices synth --quiet` with these
    # variables (Makefile); the CLI warns "N feature flags are not configured" unless cdk.json sets every
    # flag whose default differs from aws-cdk-lib's recommended value, as `cdk init` writes them.
    environment = _clean_environment(tmp_path)
    environment.update({"CDK_DISABLE_CLI_TELEMETRY": "true", "NPM_CONFIG_UPDATE_NOTIFIER": "false"})
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "--no-notices", "synth", "--quiet", "--output", str(tmp_path / "cdk.out")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = (result.stdout + result.stderr).replace(str(tmp_path), "<tmp>")  # the test's name says "warning"
    assert result.returncode == 0, output
    assert "Successfully synthesized to" in output
    assert "feature flag" not in output.lower(), output
    assert "warn" not in output.lower(), output
    assert sorted(path.name for path in (tmp_path / "cdk.out").glob("*.template.json")) == [
        "gt-labeling-pipeline.template.json",
        "gt-labeling-workforce.template.json",
    ]


def test_cdk_json_sets_every_flag_cdk_init_writes_with_its_recommended_value() -> None:
    # The CLI's copy of aws-cdk-lib's recommended flags, which `cdk init` puts into a new cdk.json.
    recommended = json.loads(
        (ROOT / "node_modules/aws-cdk/lib/init-templates/.recommended-feature-flags.json").read_text()
    )
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    flags = {key: value for key, value in context.items() if key != "labeling"}
    assert set(flags) == set(recommended)
    # One deliberate difference (docs/configuration.md, "Feature flags"): cross-stack references stay strong (Export and
    # Fn::ImportValue) until a deployed app migrates through "both".
    assert {key for key in flags if flags[key] != recommended[key]} == {"@aws-cdk/core:defaultCrossStackReferences"}
    assert flags["@aws-cdk/core:defaultCrossStackReferences"] == "strong"


def test_the_app_refuses_a_bad_configuration_with_the_key_and_the_rule(tmp_path: Path) -> None:
    environment = _clean_environment(tmp_path)
    # This is how the CDK CLI hands cdk.json context and -c overrides to the app.
    environment["CDK_CONTEXT_JSON"] = json.dumps({"labeling": {"labels": ["Dog", "Cat", "Dog"]}})
    environment["CDK_OUTDIR"] = str(tmp_path / "cdk.out")
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Configuration error: labeling.labels: duplicate label 'Dog'; labels must be unique"
    )
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))


def test_make_deploy_with_label_studio_synthesizes_the_server_without_a_warning(tmp_path: Path) -> None:
    # `make deploy CONTEXT="-c labeling.backend=label-studio"`: the context reaches synth, deploy and destroy.
    planned = subprocess.run(
        ["make", "-n", "deploy", "destroy", "CONTEXT=-c labeling.backend=label-studio"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    cdk_lines = [line for line in planned.splitlines() if "npx --no-install cdk" in line]
    assert len(cdk_lines) == 4  # synth, bootstrap, deploy, destroy
    assert all("-c labeling.backend=label-studio" in line for line in cdk_lines)
    environment = _clean_environment(tmp_path)
    environment.update({"CDK_DISABLE_CLI_TELEMETRY": "true", "NPM_CONFIG_UPDATE_NOTIFIER": "false"})
    result = subprocess.run(
        [
            "npx",
            "--no-install",
            "cdk",
            "--no-notices",
            "-c",
            "labeling.backend=label-studio",
            "synth",
            "--quiet",
            "--output",
            str(tmp_path / "cdk.out"),
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = (result.stdout + result.stderr).replace(str(tmp_path), "<tmp>")
    assert result.returncode == 0, output
    assert "warn" not in output.lower() and "feature flag" not in output.lower(), output
    (template_path,) = (tmp_path / "cdk.out").glob("*.template.json")
    types = {resource["Type"] for resource in json.loads(template_path.read_text())["Resources"].values()}
    assert {"AWS::ECS::Service", "AWS::RDS::DBInstance", "AWS::CloudFront::Distribution"} <= types
    assert not [kind for kind in types if kind.startswith(("AWS::SageMaker::", "AWS::Cognito::"))]


def test_deploy_preflight_without_credentials_says_what_is_missing_and_stops(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/deploy_preflight.py"],
        cwd=ROOT,
        env=_clean_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Synthesized the stacks into cdk.out/, but did not deploy. Missing:"
    assert lines[1].startswith("  - AWS credentials: run `aws configure`")
    assert lines[2].startswith("  - a region: export AWS_REGION")
    assert lines[-1] == "Nothing was sent to AWS. Fix the above and run `make deploy` again."


def test_deploy_preflight_passes_with_credentials_and_a_region(tmp_path: Path) -> None:
    environment = _clean_environment(tmp_path)
    environment.update(
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example", "AWS_REGION": "eu-west-1"}
    )
    result = subprocess.run(
        [sys.executable, "scripts/deploy_preflight.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Deploying with region eu-west-1."
