"""Synthesize the app once per test session (jsii start-up dominates) and share the result."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app
from stacks.config import LabelingConfig, parse_config

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
    config: LabelingConfig  # what the app was configured with (cdk.json and the overrides below)

    def validation_report(self) -> dict:
        return dict(json.loads((self.outdir / "validation-report.json").read_text()))


KMS_OVERRIDES = {"labeling.kmsKey": "create"}


@dataclass
class Synthesis:
    """One synthesis of the app: what every stack test reads from."""

    app: cdk.App
    assembly: cdk.cx_api.CloudAssembly
    config: LabelingConfig
    seconds: float


def synthesize_app(outdir: Path, context_overrides: Mapping[str, str]) -> Synthesis:
    """`cdk.json`'s context, a notification address and the overrides, for this account and region (the
    CDK_DEFAULT_* variables the CLI would set, restored afterwards)."""
    saved = {key: os.environ.get(key) for key in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    os.environ.update({"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": REGION})
    started = time.monotonic()
    try:
        context = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
        context["labeling.notificationEmails"] = json.dumps(["ml-team@example.com"])
        context.update(context_overrides)
        app = build_app(cdk.App(context=context, outdir=str(outdir)))
        assembly = app.synth()
        return Synthesis(app, assembly, parse_config(context), time.monotonic() - started)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _synthesize(outdir: Path, overrides: dict[str, str]) -> Synthesized:
    done = synthesize_app(outdir, {"labeling.workerEmails": json.dumps(WORKERS), **overrides})
    workforce = Template.from_json(done.assembly.get_stack_by_name("gt-labeling-workforce").template)
    pipeline = Template.from_json(done.assembly.get_stack_by_name("gt-labeling-pipeline").template)
    return Synthesized(outdir, workforce, pipeline, done.assembly, done.app, done.config)


def joined_json(value: Any) -> Any:
    """A JSON value that the template builds at deploy time (Stack.to_json_string: an Fn::Join of JSON text
    and tokens), read back with each token (Ref, Fn::GetAtt, Fn::ImportValue, ...) where its string will be."""
    assert list(value) == ["Fn::Join"], value
    separator, parts = value["Fn::Join"]
    assert separator == ""
    tokens: dict[str, Any] = {}
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            marker = f"@@token-{len(tokens)}@@"
            tokens[marker] = part
            text += marker

    def restore(item: Any) -> Any:
        if isinstance(item, str):
            # A token is a whole JSON string, never part of one.
            assert item in tokens or "@@token-" not in item, item
            return tokens.get(item, item)
        if isinstance(item, dict):
            return {key: restore(member) for key, member in item.items()}
        if isinstance(item, list):
            return [restore(member) for member in item]
        return item

    return restore(json.loads(text))


def logical_id(template: Template, resource_type: str, prefix: str) -> str:
    """The one resource of this type whose logical id starts with `prefix`."""
    [found] = [name for name in template.find_resources(resource_type) if name.startswith(prefix)]
    return found


def workteam_import(synthesized: Synthesized) -> dict[str, str]:
    """The pipeline's Fn::ImportValue of the workforce stack's export of its workteam's ARN."""
    workteam = logical_id(synthesized.workforce, "AWS::SageMaker::Workteam", "PrivateWorkforceWorkteam")
    [export] = [
        output["Export"]["Name"]
        for output in synthesized.workforce.find_outputs("*").values()
        if output["Value"] == {"Fn::GetAtt": [workteam, "WorkteamArn"]} and "Export" in output
    ]
    return {"Fn::ImportValue": export}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The default deployment (labeling.kmsKey "none")."""
    yield _synthesize(tmp_path_factory.mktemp("cdk.out"), {})


@pytest.fixture(scope="session")
def synthesized_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """The same app with labeling.kmsKey "create": the stack's own customer-managed key."""
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.kms"), KMS_OVERRIDES)
