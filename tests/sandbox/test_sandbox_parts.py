"""The demo's parts on their own: the template provisioner, the fake's HTTP endpoint, the simulated answers."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from sandbox import demo
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import FunctionSpec, Provisioner, ProvisionError, QueueEventSource, RuleDelivery
from sandbox.simulated_workers import output_line, simulated_boxes

REGION = "us-east-1"


@pytest.fixture
def session() -> Iterator[Any]:
    with mock_aws():
        yield boto3.Session(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")


def _queue(properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": properties or {}}


def test_names_and_settings_come_from_the_template(session: Any) -> None:
    template = {
        "Resources": {
            # Listed before what it refers to: the provisioner orders by reference, not by listing.
            "Work": _queue(
                {
                    "VisibilityTimeout": 1800,
                    "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]}, "maxReceiveCount": 5},
                }
            ),
            "Dead": _queue({"QueueName": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, "dlq"]]}}),
        },
        "Outputs": {
            "WorkUrl": {"Value": {"Ref": "Work"}, "Export": {"Name": "demo:WorkUrl"}},
            "Region": {"Value": {"Fn::Sub": "${AWS::Region}/${Dead.QueueName}"}},
            "Second": {"Value": {"Fn::Select": [1, {"Fn::Split": ["-", "a-b-c"]}]}},
        },
    }
    stack = Provisioner(session, REGION).provision("demo", template)
    sqs = session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.outputs["WorkUrl"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "1800"
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(":demo-dlq")
    assert stack.outputs["Region"] == "us-east-1/demo-dlq"
    assert stack.outputs["Second"] == "b"
    # The outputs are readable where the CLI reads them.
    described = session.client("cloudformation").describe_stacks(StackName="demo")["Stacks"][0]["Outputs"]
    assert {o["OutputKey"]: o["OutputValue"] for o in described}["WorkUrl"] == stack.outputs["WorkUrl"]


def test_imports_resolve_across_stacks_and_unknown_types_are_refused(session: Any) -> None:
    provisioner = Provisioner(session, REGION)
    provisioner.provision(
        "first", {"Resources": {"Q": _queue()}, "Outputs": {"Url": {"Value": {"Ref": "Q"}, "Export": {"Name": "q"}}}}
    )
    second = provisioner.provision(
        "second",
        {"Resources": {"W": {"Type": "AWS::CDK::Metadata"}}, "Outputs": {"U": {"Value": {"Fn::ImportValue": "q"}}}},
    )
    assert second.outputs["U"].endswith("/first-Q")
    assert second.not_emulated["AWS::CDK::Metadata"] == 1
    with pytest.raises(ProvisionError, match="AWS::EC2::Instance"):
        provisioner.provision("third", {"Resources": {"I": {"Type": "AWS::EC2::Instance", "Properties": {}}}})
    with pytest.raises(ProvisionError, match="no stack exports 'missing'"):
        provisioner.provision("fourth", {"Resources": {"Q": _queue({"QueueName": {"Fn::ImportValue": "missing"}})}})


def test_tls_only_statements_are_left_out_and_the_rest_is_applied(session: Any) -> None:
    deny_http = {
        "Sid": "DenyHttp",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    deny_delete = {"Sid": "NoDelete", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:DeleteBucket"}
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Bucket"},
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [deny_http, deny_delete]},
                },
            },
        },
        "Outputs": {"Name": {"Value": {"Ref": "Bucket"}}},
    }
    stack = Provisioner(session, REGION).provision("store", template)
    s3 = session.client("s3")
    name = stack.outputs["Name"]
    assert name == "store-bucket"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    assert [s["Sid"] for s in json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"]] == ["NoDelete"]
    assert stack.ignored_settings == ["Policy: DenyHttp"]


def test_the_endpoint_answers_as_the_service_would() -> None:
    fake = FakeGroundTruth(region=REGION)
    with GroundTruthEndpoint(fake) as endpoint:
        sagemaker = boto3.client(
            "sagemaker",
            region_name=REGION,
            endpoint_url=endpoint.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        cognito = {"UserPool": "us-east-1_abc", "ClientId": "client1"}
        sagemaker.create_workforce(WorkforceName="crowd", CognitoConfig=cognito)
        with pytest.raises(ClientError) as second:
            sagemaker.create_workforce(WorkforceName="crowd2", CognitoConfig=cognito)
        assert second.value.response["Error"]["Code"] == "ResourceLimitExceeded"
        team = sagemaker.create_workteam(
            WorkteamName="team",
            WorkforceName="crowd",
            Description="d",
            MemberDefinitions=[{"CognitoMemberDefinition": {**cognito, "UserGroup": "labelers"}}],
        )["WorkteamArn"]
        assert team == "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team"
        with pytest.raises(ClientError) as missing:
            sagemaker.describe_labeling_job(LabelingJobName="nope")
        assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
        assert [operation for operation, _ in fake.calls] == [
            "CreateWorkforce",
            "CreateWorkforce",
            "CreateWorkteam",
            "DescribeLabelingJob",
        ]


@given(
    st.text(min_size=1, max_size=40),
    st.integers(min_value=1, max_value=5000),
    st.integers(min_value=1, max_value=5000),
    st.integers(min_value=1, max_value=50),
)
def test_simulated_boxes_stay_inside_the_image_and_repeat(ref: str, width: int, height: int, labels: int) -> None:
    boxes = simulated_boxes(ref, width, height, labels)
    assert 1 <= len(boxes) <= 3
    assert boxes == simulated_boxes(ref, width, height, labels)
    for box in boxes:
        assert 0 <= box["class_id"] < labels
        assert box["left"] >= 0 and box["top"] >= 0 and box["width"] >= 1 and box["height"] >= 1
        assert box["left"] + box["width"] <= width and box["top"] + box["height"] <= height


def test_output_line_reads_back_through_the_export_parser() -> None:
    from datetime import UTC, datetime

    from labeling_pipeline.backends.ground_truth.results import read_output_manifest

    line = output_line("s3://b/images/a.png", (640, 480, 3), ["Dog", "Cat"], "labels", "job-1", datetime.now(UTC))
    (image,) = read_output_manifest(iter([json.dumps(line).encode()]), "labels")
    assert (image.width, image.height) == (640, 480)
    assert [(box.label, box.left, box.top) for box in image.boxes] == [
        (["Dog", "Cat"][b["class_id"]], b["left"], b["top"]) for b in line["labels"]["annotations"]
    ]


HANDLER_MODULE = """
import os

calls = []


def handle(event, context):
    calls.append({"records": len(event.get("Records", [])), "setting": os.environ["SETTING"], "context": context})
    if event.get("explode"):
        raise RuntimeError("always fails")
    failed = [r["messageId"] for r in event.get("Records", []) if r["body"] == "fail"]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
"""


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"sandbox_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _spec(module: str, **overrides: Any) -> FunctionSpec:
    values: dict[str, Any] = {
        "logical_id": "Probe",
        "name": "probe",
        "handler": f"{module}.handle",
        "environment": {"SETTING": "from-the-template"},
        "timeout_seconds": 30,
        "memory_mb": 256,
    }
    values.update(overrides)
    return FunctionSpec(**values)


def test_a_batch_deletes_only_what_the_handler_did_not_report(
    session: Any, handler_module: str, tmp_path: Path
) -> None:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    runtime = LocalLambda(sqs, REGION, tmp_path / "logs", "note")
    source = QueueEventSource(
        url, arn, _spec(handler_module), batch_size=10, batching_window_seconds=0, report_batch_item_failures=True
    )
    assert "SETTING" not in os.environ
    assert runtime.poll_queue_source(source) == 3
    assert "SETTING" not in os.environ  # the function's environment is its own
    (call,) = importlib.import_module(handler_module).calls
    assert call["records"] == 3 and call["setting"] == "from-the-template"
    assert call["context"].function_name == "probe" and call["context"].get_remaining_time_in_millis() > 0
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # The reported message stays, invisible until its visibility timeout; the other two are deleted.
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "1",
    )
    runtime.close()


def test_an_event_that_keeps_failing_is_retried_then_dead_lettered(
    session: Any, handler_module: str, tmp_path: Path
) -> None:
    sqs = session.client("sqs")
    delivery_url = sqs.create_queue(QueueName="rule-delivery")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName="failed-events")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = _spec(handler_module, maximum_retry_attempts=2, dead_letter_queue_arn=dlq_arn)
    sqs.send_message(QueueUrl=delivery_url, MessageBody=json.dumps({"explode": True}))
    runtime = LocalLambda(sqs, REGION, tmp_path / "logs", "note")
    assert runtime.poll_rule_delivery(RuleDelivery("rule", delivery_url, function, None)) == 1
    assert len(importlib.import_module(handler_module).calls) == 3  # the first try and two retries
    (dead,) = sqs.receive_message(QueueUrl=dlq_url).get("Messages", [])
    assert json.loads(dead["Body"]) == {"explode": True}
    assert runtime.invocations[-1].error == "RuntimeError: always fails"
    runtime.close()


def test_the_gallery_opens_only_where_there_is_a_display(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    opened: list[str] = []

    def fake_open(uri: str) -> bool:
        opened.append(uri)
        return True

    monkeypatch.setattr(demo.webbrowser, "open", fake_open)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    index = tmp_path / "index.html"
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    demo.show_gallery(index, open_browser=True)
    assert opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    demo.show_gallery(index, open_browser=False)
    assert opened == []
    demo.show_gallery(index, open_browser=True)
    assert opened == [index.resolve().as_uri()]
