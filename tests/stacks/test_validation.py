"""Real tools on the synthesized templates: cdk-nag (AwsSolutions) and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from labeling_pipeline.names import StackOutput
from tests.stacks.conftest import Synthesized


def test_cdk_nag_has_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # Synthesis raises on any unacknowledged finding; it got here, and the report lists none.
    report = synthesized.validation_report()
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])


def test_cdk_nag_is_really_checking(tmp_path: Path) -> None:
    """The same wiring as app.py fails synth on a bucket that breaks AwsSolutions rules."""
    app = cdk.App(outdir=str(tmp_path))
    s3.Bucket(cdk.Stack(app, "Careless"), "Bucket")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-S1"):
        app.synth()


def test_every_acknowledgement_carries_a_reason(synthesized: Synthesized) -> None:
    acknowledged: dict[tuple[str, str], str] = {}
    for construct in synthesized.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                for rule, reason in dict(entry.data).items():
                    acknowledged[(construct.node.path, rule)] = reason
    assert len(acknowledged) >= 8
    for where, reason in acknowledged.items():
        assert len(reason) >= 40, where
    rules = {rule.removeprefix("Annotation::").split("[")[0] for _path, rule in acknowledged}
    # Only these rules are acknowledged anywhere; a new one must be argued for here.
    assert rules <= {
        "AwsSolutions-S1",
        "AwsSolutions-SNS2",
        "AwsSolutions-SQS3",
        "AwsSolutions-COG2",
        "AwsSolutions-COG8",
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
    }


def cfn_lint_findings(templates: list[str]) -> list[dict[str, Any]]:
    """cfn-lint's findings on the templates, as JSON. W3005 (redundant DependsOn) is CDK's own output, not this
    app's; every other rule is on."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", "--ignore-checks", "W3005", "--",
         *templates],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert not result.stderr, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return found


def test_cfn_lint_finds_nothing_in_any_template(synthesized: Synthesized, synthesized_kms: Synthesized) -> None:
    # Both deployments (labeling.kmsKey "none" and "create"), in one cfn-lint run.
    templates = sorted(
        str(path)
        for outdir in (synthesized.outdir, synthesized_kms.outdir)
        for path in Path(outdir).glob("*.template.json")
    )
    assert len(templates) == 4
    found = cfn_lint_findings(templates)
    findings = [
        (Path(finding["Filename"]).name, finding["Rule"]["Id"], finding["Location"]["Path"][:3]) for finding in found
    ]
    # One finding is by design, and only there: W6001 ("an output of an import") on the BackendResources
    # output, which hands the CLI the backend's resources as the functions get them, the workforce stack's
    # workteam ARN among them. That output is not exported, so no chain of exports follows from it.
    expected = [("gt-labeling-pipeline.template.json", "W6001", ["Outputs", StackOutput.BACKEND_RESOURCES, "Value"])]
    assert findings == expected * 2, found
    for deployment in (synthesized, synthesized_kms):
        assert (
            "Export"
            not in deployment.pipeline.find_outputs(StackOutput.BACKEND_RESOURCES)[StackOutput.BACKEND_RESOURCES]
        )


def test_lambda_code_has_no_cdk_import() -> None:
    sources = list((Path(__file__).resolve().parents[2] / "lambda").rglob("*.py"))
    assert sources
    for source in sources:
        text = source.read_text()
        assert "aws_cdk" not in text and "from constructs" not in text, source
