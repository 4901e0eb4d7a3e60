"""The app with `labeling.prelabel`: the pre-label stage between the bucket and the launcher.

Synthesized once per module twice: Ground Truth with an ONNX detector in S3, and Label Studio with a SageMaker AI
endpoint and the customer-managed key. Asserted: where the upload events go, the function and its layer (built by
pip, without Docker), every grant of the stage's role and the launcher's one new grant, the alarms, and cfn-lint,
cdk-nag and checkov on both templates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from labeling_pipeline.names import EnvironmentVariable as Env
from stacks.constructs.prelabel.runtime_layer import UNUSED
from tests.stacks.conftest import synthesize_app
from tests.stacks.test_checkov import CheckovRun, run_checkov
from tests.stacks.test_least_privilege import BUCKET, allow, grants_by_role
from tests.stacks.test_validation import cfn_lint_findings

PIPELINE = "gt-labeling-pipeline"
MODEL_URI = "s3://models-123456789012/detectors/YOLO11n.onnx"
DETECTOR = {"classMap": {"15": "Cat", "16": "Dog"}, "modelVersion": "yolo11n-coco-v2", "minScore": 0.3}
# Lambda's limit on a function and its layers, unzipped (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


@dataclass
class PrelabelApp:
    outdir: Path
    template: Template
    raw: dict[str, Any]

    def one(self, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
        [(name, resource)] = [
            (name, resource)
            for name, resource in self.raw["Resources"].items()
            if resource["Type"] == resource_type and name.startswith(prefix)
        ]
        return name, resource

    def asset(self, s3_key: str) -> Path:
        """The folder the zip named `s3_key` is made of (CDK stages each asset as asset.<hash>)."""
        return self.outdir / f"asset.{s3_key.removesuffix('.zip')}"

    def ref(self, resource_type: str, prefix: str) -> str:
        return self.one(resource_type, prefix)[0]


def _synthesize(outdir: Path, overrides: dict[str, str]) -> PrelabelApp:
    done = synthesize_app(outdir, overrides)
    raw = dict(done.assembly.get_stack_by_name(PIPELINE).template)
    return PrelabelApp(outdir, Template.from_json(raw), raw)


@pytest.fixture(scope="module")
def onnx_in_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrelabelApp]:
    prelabel = {**DETECTOR, "modelUri": MODEL_URI}
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.prelabel"), {"labeling.prelabel": json.dumps(prelabel)})


@pytest.fixture(scope="module")
def endpoint_with_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrelabelApp]:
    prelabel = {**DETECTOR, "endpointName": "Shelf-Detector-2"}
    overrides = {
        "labeling.backend": "label-studio",
        "labeling.labelStudioUrl": "https://labels.example.com",
        "labeling.kmsKey": "create",
        "labeling.prelabel": json.dumps(prelabel),
    }
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.prelabel.ls"), overrides)


def test_uploads_go_to_the_pre_label_stage_which_forwards_them_to_the_launcher(onnx_in_s3: PrelabelApp) -> None:
    _, notifications = onnx_in_s3.one("Custom::S3BucketNotifications", "StorageBucketNotifications")
    [queue_configuration] = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    prelabel_queue = onnx_in_s3.ref("AWS::SQS::Queue", "PrelabelUploadEvents")
    assert queue_configuration["QueueArn"] == {"Fn::GetAtt": [prelabel_queue, "Arn"]}
    assert queue_configuration["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}}

    _, function = onnx_in_s3.one("AWS::Lambda::Function", "PrelabelFunction")
    properties = function["Properties"]
    assert properties["Handler"] == "labeling_pipeline.prelabel.handler.lambda_handler"
    assert (properties["MemorySize"], properties["Timeout"], properties["Runtime"]) == (2048, 300, "python3.14")
    launch_queue = onnx_in_s3.ref("AWS::SQS::Queue", "LaunchUploadEvents")
    environment = properties["Environment"]["Variables"]
    assert environment[Env.LAUNCH_QUEUE_URL] == {"Ref": launch_queue}
    settings = json.loads(environment[Env.PIPELINE_SETTINGS])
    assert settings["prelabel"]["modelVersion"] == "yolo11n-coco-v2"
    assert settings["prelabel"]["classMap"] == {"15": "Cat", "16": "Dog"}
    layer = onnx_in_s3.ref("AWS::Lambda::LayerVersion", "PrelabelDetectorRuntime")
    assert {"Ref": layer} in properties["Layers"]

    # The pre-label function reads its own queue; the launcher still reads its queue, which only it feeds.
    mappings = [
        resource["Properties"]
        for resource in onnx_in_s3.template.find_resources("AWS::Lambda::EventSourceMapping").values()
    ]
    by_queue = {mapping["EventSourceArn"]["Fn::GetAtt"][0]: mapping for mapping in mappings}
    assert by_queue[prelabel_queue]["BatchSize"] == 10
    assert "MaximumBatchingWindowInSeconds" not in by_queue[prelabel_queue]
    assert by_queue[prelabel_queue]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert launch_queue in by_queue

    _, dead_letters = onnx_in_s3.one("AWS::SQS::Queue", "PrelabelDeadLetterQueue")
    _, queue = onnx_in_s3.one("AWS::SQS::Queue", "PrelabelUploadEvents")
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
    assert queue["Properties"]["VisibilityTimeout"] == 1800
    assert dead_letters["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_stage_may_do_exactly_what_it_does_and_the_launcher_may_read_the_proposals(
    onnx_in_s3: PrelabelApp, endpoint_with_key: PrelabelApp
) -> None:
    proposals = f"{BUCKET}/prelabels/yolo11n-coco-v2/*"
    stage = (
        allow("logs:CreateLogStream logs:PutLogEvents", "${PrelabelFunctionLogs.Arn}")
        | allow("s3:GetObject s3:GetObjectVersion", f"{BUCKET}/images/*")
        | allow("s3:GetObject s3:PutObject", proposals)
        | allow("sqs:SendMessage", "${LaunchUploadEvents.Arn}")
        | allow("sqs:ReceiveMessage sqs:DeleteMessage sqs:GetQueueAttributes", "${PrelabelUploadEvents.Arn}")
    )
    # The model's object, exactly, and the endpoint's ARN as SageMaker writes it: in lower case.
    assert grants_by_role(onnx_in_s3.raw)["PrelabelFunctionRole"] == stage | allow(
        "s3:GetObject", "arn:aws:s3:::models-123456789012/detectors/YOLO11n.onnx"
    )
    key = "${EncryptionKey.Arn}"
    assert grants_by_role(endpoint_with_key.raw)["PrelabelFunctionRole"] == stage | allow(
        "sagemaker:InvokeEndpoint", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/shelf-detector-2"
    ) | allow("kms:Decrypt kms:GenerateDataKey", key)
    for app in (onnx_in_s3, endpoint_with_key):
        assert allow("s3:GetObject", proposals) <= grants_by_role(app.raw)["LaunchLauncherRole"]
        assert allow("s3:GetObject", proposals) <= grants_by_role(app.raw)["FollowJobEventsRole"]


def test_the_job_end_has_numpy_for_the_report_and_the_launcher_needs_none(onnx_in_s3: PrelabelApp) -> None:
    layer = {"Ref": onnx_in_s3.ref("AWS::Lambda::LayerVersion", "PrelabelDetectorRuntime")}
    _, job_events = onnx_in_s3.one("AWS::Lambda::Function", "FollowJobEventsFunction")
    _, launcher = onnx_in_s3.one("AWS::Lambda::Function", "LaunchLauncherFunction")
    assert layer in job_events["Properties"]["Layers"]
    assert layer not in launcher["Properties"]["Layers"]


def test_failures_of_the_detector_and_of_the_stage_raise_alarms(onnx_in_s3: PrelabelApp) -> None:
    alarms = {
        name: resource["Properties"]
        for name, resource in onnx_in_s3.template.find_resources("AWS::CloudWatch::Alarm").items()
    }
    by_prefix = {prefix: next(p for name, p in alarms.items() if name.startswith(prefix)) for prefix in (
        "AlarmsPrelabelErrors", "AlarmsPrelabelFailures", "AlarmsPrelabelDeadLetterQueueNotEmpty")}  # fmt: skip
    failures = by_prefix["AlarmsPrelabelFailures"]
    assert failures["MetricName"] == "PrelabelFailures"
    assert failures["Dimensions"] == [{"Name": "service", "Value": "labeling-prelabel"}]
    assert failures["Threshold"] == 0 and failures["ComparisonOperator"] == "GreaterThanThreshold"
    topic = onnx_in_s3.ref("AWS::SNS::Topic", "FollowResults")
    for properties in by_prefix.values():
        assert properties["AlarmActions"] == [{"Ref": topic}]


def test_the_layer_holds_the_runtime_for_lambdas_platform_and_fits(onnx_in_s3: PrelabelApp) -> None:
    _, layer = onnx_in_s3.one("AWS::Lambda::LayerVersion", "PrelabelDetectorRuntime")
    python = onnx_in_s3.asset(layer["Properties"]["Content"]["S3Key"]) / "python"
    extensions = {path.name for path in python.glob("onnxruntime/capi/onnxruntime_pybind11_state*.so")}
    assert extensions == {"onnxruntime_pybind11_state.cpython-314-x86_64-linux-gnu.so"}
    # Built for Lambda's python3.14 on x86_64, whatever machine synthesized it.
    assert list(python.glob("numpy/_core/_multiarray_umath.cpython-314-x86_64-linux-gnu.so"))
    assert list(python.glob("PIL/_imaging.cpython-314-x86_64-linux-gnu.so"))
    assert {path.name.split("-")[0] for path in python.glob("*.dist-info")} == {"onnxruntime", "numpy", "pillow"}
    for unused in UNUSED:
        assert not (python / unused).exists(), unused
    layer_bytes = sum(path.stat().st_size for path in python.rglob("*") if path.is_file())
    _, function = onnx_in_s3.one("AWS::Lambda::Function", "PrelabelFunction")
    code = onnx_in_s3.asset(function["Properties"]["Code"]["S3Key"])
    code_bytes = sum(path.stat().st_size for path in code.rglob("*") if path.is_file())
    # The Powertools layer, the third part, is about 20 MB unzipped.
    assert layer_bytes + code_bytes + 25 * 1024 * 1024 < UNZIPPED_LIMIT_BYTES, (layer_bytes, code_bytes)


def test_cfn_lint_cdk_nag_and_checkov_find_nothing(onnx_in_s3: PrelabelApp, endpoint_with_key: PrelabelApp) -> None:
    templates = sorted(
        str(path) for app in (onnx_in_s3, endpoint_with_key) for path in app.outdir.glob("*.template.json")
    )
    findings = [
        (Path(f["Filename"]).parent.name, f["Rule"]["Id"], f["Location"]["Path"][:2])
        for f in cfn_lint_findings(templates)
    ]
    # Only the finding of the default deployment, by design (test_validation.py): the Ground Truth pipeline's
    # BackendResources output holds the workforce stack's workteam ARN.
    assert findings == [(onnx_in_s3.outdir.name, "W6001", ["Outputs", "BackendResources"])]
    for app in (onnx_in_s3, endpoint_with_key):
        report = json.loads((app.outdir / "validation-report.json").read_text())
        assert all(plugin["violations"] == [] for plugin in report["pluginReports"])
    checkov: CheckovRun = run_checkov(
        {
            str(Path(path).resolve()): variant
            for variant, app in (("default", onnx_in_s3), ("kms", endpoint_with_key))
            for path in app.outdir.glob("*.template.json")
        }
    )
    assert checkov.passed > 100
    assert not checkov.failed, "\n".join(
        f"  {checkov.where(finding)}: {finding['check_name']}" for finding in checkov.failed
    )


def test_every_handler_the_templates_name_exists(onnx_in_s3: PrelabelApp, endpoint_with_key: PrelabelApp) -> None:
    import importlib

    named = {
        resource["Properties"]["Handler"]
        for app in (onnx_in_s3, endpoint_with_key)
        for resource in app.template.find_resources("AWS::Lambda::Function").values()
        if resource["Properties"].get("Handler", "").startswith("labeling_pipeline.")
    }
    assert "labeling_pipeline.prelabel.handler.lambda_handler" in named
    for handler in named:
        module, _, function = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), handler
