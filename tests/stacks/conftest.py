"""Synthesize the app once per test session (jsii start-up dominates) and share the result."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app

ACCOUNT = "123456789012"
REGION = "us-east-1"
WORKERS = ["ana@example.com", "bo@example.com"]


@dataclass
class Synthesized:
    outdir: Path
    workforce: Template
    pipeline: Template
    assembly: cdk.cx_api.CloudAssembly
    app: cdk.App

    def validation_report(self) -> dict:
        return dict(json.loads((self.outdir / "validation-report.json").read_text()))


KMS_OVERRIDES = {"labeling.kmsKey": "create"}


def _synthesize(outdir: Path, overrides: dict[str, str]) -> Synthesized:
    saved = {key: os.environ.get(key) for key in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    os.environ.update({"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": REGION})
    try:
        context = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
        context["labeling.workerEmails"] = json.dumps(WORKERS)
        context["labeling.notificationEmails"] = json.dumps(["ml-team@example.com"])
        context.update(overrides)
        app = build_app(cdk.App(context=context, outdir=str(outdir)))
        assembly = app.synth()
        workforce = Template.from_json(assembly.get_stack_by_name("gt-labeling-workforce").template)
        pipeline = Template.from_json(assembly.get_stack_by_name("gt-labeling-pipeline").template)
        return Synthesized(outdir, workforce, pipeline, assembly, app)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The default deployment (labeling.kmsKey "none")."""
    yield _synthesize(tmp_path_factory.mktemp("cdk.out"), {})


@pytest.fixture(scope="session")
def synthesized_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The same app with labeling.kmsKey "create": the stack's own customer-managed key."""
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.kms"), KMS_OVERRIDES)
