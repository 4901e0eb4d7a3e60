"""The demo's parts on their own: the template provisioner, the fake's HTTP endpoint, the simulated answers."""

from __future__ import annotations

import importlib
import json
import os
import time
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

from sandbox import demo_steps
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import (
    FunctionSpec,
    LocalHooks,
    Provisioner,
    ProvisionError,
    QueueEventSource,
    RuleDelivery,
    Schedule,
)
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

    monkeypatch.setattr(demo_steps.webbrowser, "open", fake_open)
    monkeypatch.setattr(demo_steps.sys, "platform", "linux")
    index = tmp_path / "index.html"
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    demo_steps.show_gallery(index, open_browser=True)
    assert opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    demo_steps.show_gallery(index, open_browser=False)
    assert opened == []
    demo_steps.show_gallery(index, open_browser=True)
    assert opened == [index.resolve().as_uri()]


# --- what the Label Studio templates add -------------------------------------------------------------------
PROJECT_FUNCTION = {
    "Type": "AWS::Lambda::Function",
    "Properties": {
        "FunctionName": "setup",
        "Handler": "labeling_pipeline.backends.label_studio.setup_handler.on_event",
        "Environment": {"Variables": {"SETTING": "x"}},
    },
}


def test_generated_secrets_honour_the_generator(session: Any) -> None:
    template = {
        "Resources": {
            # The API token's generator (stacks/backends/label_studio/infrastructure.py): 40 lowercase hex digits.
            "Token": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "GenerateSecretString": {
                        "ExcludeCharacters": "ghijklmnopqrstuvwxyz",
                        "ExcludePunctuation": True,
                        "ExcludeUppercase": True,
                        "IncludeSpace": False,
                        "PasswordLength": 40,
                    }
                },
            },
            "Login": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "Name": "login",
                    "GenerateSecretString": {
                        "SecretStringTemplate": '{"user": "admin"}',
                        "GenerateStringKey": "password",
                        "PasswordLength": 12,
                    },
                },
            },
        },
        "Outputs": {"Token": {"Value": {"Ref": "Token"}}, "Login": {"Value": {"Ref": "Login"}}},
    }
    stack = Provisioner(session, REGION).provision("secrets", template)
    secrets = session.client("secretsmanager")
    token = secrets.get_secret_value(SecretId=stack.outputs["Token"])["SecretString"]
    assert len(token) == 40 and set(token) <= set("0123456789abcdef")
    assert stack.outputs["Token"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:secrets-Token-")
    login = json.loads(secrets.get_secret_value(SecretId=stack.outputs["Login"])["SecretString"])
    assert login["user"] == "admin" and len(login["password"]) == 12
    assert stack.created["AWS::SecretsManager::Secret"] == 2


def test_function_urls_schedules_and_custom_resources_go_to_the_callers_hooks(session: Any) -> None:
    served: list[str] = []
    requests: list[dict[str, Any]] = []

    def custom_resource(function: FunctionSpec, request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        return {"PhysicalResourceId": "42", "Data": {"ProjectId": "42"}}

    template = {
        "Resources": {
            "Events": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"FunctionName": "events", "Handler": "labeling_pipeline.job_events.lambda_handler"},
            },
            "EventsUrl": {
                "Type": "AWS::Lambda::Url",
                "Properties": {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": ["Events", "Arn"]}},
            },
            "Tick": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "ScheduleExpression": "rate(5 minutes)",
                    "Targets": [{"Arn": {"Fn::GetAtt": ["Events", "Arn"]}, "Id": "Target0"}],
                },
            },
            "Setup": PROJECT_FUNCTION,
            # aws-cdk-lib's Provider framework: its own function (CDK's, not run) names the project's.
            "Framework": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "framework.onEvent",
                    "Environment": {"Variables": {"USER_ON_EVENT_FUNCTION_ARN": {"Fn::GetAtt": ["Setup", "Arn"]}}},
                },
            },
            "Project": {
                "Type": "Custom::LabelStudioProject",
                "Properties": {
                    "ServiceToken": {"Fn::GetAtt": ["Framework", "Arn"]},
                    "WebhookUrl": {"Fn::GetAtt": ["EventsUrl", "FunctionUrl"]},
                    "Count": 3,
                },
            },
        },
        "Outputs": {"ProjectId": {"Value": {"Fn::GetAtt": ["Project", "ProjectId"]}}},
    }

    def function_url(function: FunctionSpec) -> str:
        served.append(function.name)
        return "http://127.0.0.1:1/"

    hooks = LocalHooks(function_url=function_url, custom_resource=custom_resource)
    stack = Provisioner(session, REGION, hooks).provision("ls", template)
    assert served == ["events"]
    ((request,),) = [requests]
    assert request["RequestType"] == "Create" and request["ResourceType"] == "Custom::LabelStudioProject"
    # Resolved, and every scalar a string, as CloudFormation hands them over.
    assert request["ResourceProperties"]["WebhookUrl"] == "http://127.0.0.1:1/"
    assert request["ResourceProperties"]["Count"] == "3"
    assert stack.outputs["ProjectId"] == "42"
    (resource,) = stack.custom_resources
    assert (resource.function.name, resource.physical_id) == ("setup", "42")
    (schedule,) = stack.schedules
    assert (schedule.expression, schedule.function.name) == ("rate(5 minutes)", "events")
    rule = session.client("events").describe_rule(Name=schedule.rule_name)
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert stack.not_emulated["AWS::Lambda::Function"] == 1  # the framework's own function
    assert stack.created["AWS::Lambda::Function"] == 2 and stack.created["AWS::Lambda::Url"] == 1


def test_a_custom_resource_that_no_project_function_serves_is_refused(session: Any) -> None:
    other = {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}}
    template = {
        "Resources": {
            "Other": other,
            "Thing": {"Type": "Custom::Thing", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Other", "Arn"]}}},
        }
    }
    with pytest.raises(ProvisionError, match=r"Custom::Thing.*not by one of this project's functions"):
        Provisioner(session, REGION).provision("other", template)
    direct = {
        "Resources": {
            "Setup": PROJECT_FUNCTION,
            "Thing": {"Type": "Custom::Thing", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Setup", "Arn"]}}},
        }
    }
    with pytest.raises(ProvisionError, match="no runtime is given"):
        Provisioner(session, REGION).provision("direct", direct)

    def fails(function: FunctionSpec, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("Label Studio refused the token")

    with pytest.raises(ProvisionError, match=r"Thing \(Custom::Thing\) failed: Label Studio refused the token"):
        Provisioner(session, REGION, LocalHooks(custom_resource=fails)).provision("again", direct)


URL_HANDLER_MODULE = """
import base64, json

def handle(event, context):
    body = json.loads(base64.b64decode(event["body"]))
    if body.get("explode"):
        raise RuntimeError("always fails")
    return {"statusCode": 201, "headers": {"X-Seen": event["headers"]["x-secret"]}, "body": json.dumps(body)}
"""


def test_a_function_url_runs_the_function_on_the_polling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import requests as http

    name = f"sandbox_url_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(URL_HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    runtime = LocalLambda(None, REGION, tmp_path / "logs", "note")
    url = runtime.serve_function_url(_spec(name, handler=f"{name}.handle"))
    answers: list[Any] = []

    def post(body: dict[str, Any]) -> None:
        answers.append(http.post(url, json=body, headers={"X-Secret": "s"}, timeout=10))

    for body in ({"n": 1}, {"explode": True}):
        sender = threading.Thread(target=post, args=(body,))
        sender.start()
        while sender.is_alive():
            runtime.poll_function_urls(0.1)
        sender.join()
    ok, failed = answers
    assert (ok.status_code, ok.headers["X-Seen"], ok.json()) == (201, "s", {"n": 1})
    assert failed.status_code == 502  # what Lambda's URL answers when the function fails
    assert [invocation.error for invocation in runtime.invocations] == [None, "RuntimeError: always fails"]
    # Closed with a request waiting: it is answered at once, not left hanging.
    sender = threading.Thread(target=post, args=({"n": 2},))
    sender.start()
    time.sleep(0.3)
    runtime.close()
    sender.join(5)
    assert answers[-1].status_code == 503


def test_a_schedule_tick_is_what_the_job_events_function_takes_for_the_reconciler(tmp_path: Path) -> None:
    from labeling_pipeline.job_events import is_schedule

    runtime = LocalLambda(None, REGION, tmp_path / "logs", "note")
    ticks: list[dict[str, Any]] = []
    runtime.invoke = lambda spec, event: ticks.append(event)  # type: ignore[method-assign]
    runtime.run_schedule(Schedule("tick", "rate(5 minutes)", _spec("unused")))
    (tick,) = ticks
    assert is_schedule(tick) and tick["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/tick"]


def test_the_demo_knows_the_stacks_project_resource_type() -> None:
    from sandbox.label_studio_demo import PROJECT_RESOURCE
    from stacks.backends.label_studio.infrastructure import CUSTOM_RESOURCE_TYPE

    assert PROJECT_RESOURCE == CUSTOM_RESOURCE_TYPE


@given(st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=5000), st.text(min_size=1))
def test_simulated_annotations_read_back_as_the_simulated_boxes(width: int, height: int, ref: str) -> None:
    """Percent of the image, as the editor writes it, comes back through the pipeline's reader as the pixels."""
    from labeling_pipeline.backends.label_studio.results import read_task
    from labeling_pipeline.labels import ReadStats
    from sandbox.simulated_annotators import rectangle, simulated_boxes_for

    boxes = simulated_boxes_for(ref, (width, height), ["Dog", "Cat"])
    result = [rectangle(label, x, y, w, h, (width, height)) for label, x, y, w, h in boxes]
    task = {"id": 1, "data": {"image": ref}, "annotations": [{"id": 1, "completed_by": 2, "result": result}]}
    image = read_task(task, 1, "job", ReadStats())
    found = [[box.label, box.left, box.top, box.width, box.height] for box in image.boxes]
    assert found == [[label, *(pytest.approx(v, abs=1e-6) for v in box)] for label, *box in boxes]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop this test makes happen
def test_an_interrupt_that_lands_in_a_finalizer_is_raised_at_the_next_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Python drops an exception raised while a finalizer runs; Ctrl-C landing there must still stop the demo."""
    import gc
    import signal

    class InterruptedWhileCollected:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, demo_steps.Interrupt.handle)
    try:
        InterruptedWhileCollected()
        gc.collect()
        # The KeyboardInterrupt raised inside __del__ was dropped ("Exception ignored in ..."): nothing stopped yet.
        assert demo_steps.Interrupt.pending
        with pytest.raises(KeyboardInterrupt):
            demo_steps.say("the next step")
        assert "the next step" not in capsys.readouterr().out
        demo_steps.say("after the interrupt was taken")  # raised once only
        # An interrupt that reached a handler is not raised again by the lines its cleanup prints.
        with pytest.raises(KeyboardInterrupt):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                demo_steps.say("Interrupted: stopping")
                raise
        assert "Interrupted: stopping" in capsys.readouterr().out
    finally:
        signal.signal(signal.SIGINT, previous)
        demo_steps.Interrupt.pending = False


def test_an_interrupt_a_failing_call_wraps_ends_the_demo_as_interrupted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C inside a call that catches everything and raises its own error (pydantic-core's schema building, under
    a custom resource of the demo's stack): the demo still stops as interrupted (130), not as failed."""
    import signal
    from types import SimpleNamespace
    from typing import cast

    from sandbox.demo import finish
    from sandbox.provision import ProvisionError

    stand_in = cast(demo_steps.StandIn, SimpleNamespace(interrupted="the emulator is stopped"))

    def wrapping() -> None:
        try:
            signal.raise_signal(signal.SIGINT)
        except BaseException as error:
            raise ProvisionError(f"gt-labeling-pipeline: LabelStudioProject failed: {error!r}") from error

    def failing() -> None:
        raise demo_steps.DemoError("demo-output exists and was not made by the demo")

    def interrupted() -> None:
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, demo_steps.Interrupt.handle)
    try:
        assert finish(wrapping, stand_in) == 130
        out = capsys.readouterr().out
        assert "Interrupted: the emulator is stopped" in out and "FAILED" not in out
        assert finish(failing, stand_in) == 1
        assert "FAILED: demo-output exists" in capsys.readouterr().out
        assert finish(interrupted, stand_in) == 130
        assert finish(lambda: None, stand_in) == 0
        assert not demo_steps.Interrupt.pending
    finally:
        signal.signal(signal.SIGINT, previous)
        demo_steps.Interrupt.pending = False


def test_sessions_that_start_together_migrate_label_studio_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test workers of a fresh clone all need the migrated template at once: one migrates, the others wait."""
    import threading

    from sandbox import label_studio_server

    migrations: list[Path] = []

    def slow_migration(template: Path) -> None:
        migrations.append(template)
        time.sleep(0.3)  # long enough for the other sessions to arrive while it runs
        template.write_bytes(b"migrated")

    monkeypatch.setattr(label_studio_server, "_migrate", slow_migration)
    found: list[Path] = []
    sessions = [
        threading.Thread(target=lambda: found.append(label_studio_server.migrated_template(tmp_path))) for _ in range(3)
    ]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join()
    assert len(migrations) == 1 and len(found) == 3 and len(set(found)) == 1
    assert found[0].read_bytes() == b"migrated"
