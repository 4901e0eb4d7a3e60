"""Every action granted to the two pipeline Lambdas is one their code calls, and every call their code makes
is granted: the handlers run against moto and the Ground Truth fake through the paths that reach each grant,
every boto3 call of their clients is recorded as the IAM action it needs, and the result is compared with
the roles of the synthesized template (tests/stacks/test_least_privilege.py holds the table itself).

A grant that no path uses (as the launcher's dynamodb:GetItem was: only `Launcher.finish(checked=False)`
reads a single job record, and the handler never calls it) fails here, and so does a call without a grant.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from labeling_pipeline import handler, job_events
from labeling_pipeline.images import ImageRef
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import ACCOUNT
from tests.stacks.conftest import WORKERS, Synthesized, synthesize_app
from tests.stacks.test_least_privilege import grants_by_role
from tests.support import (
    BACKEND_RESOURCES,
    BUCKET,
    REGION,
    TABLE,
    World,
    build_world,
    job_events_environment,
    job_state_change_event,
    lambda_sqs_record,
    settings_json,
)

# What the Lambda service itself does with a function's role, not the function's code: write its logs,
# poll the launcher's upload queue (event source mapping), and send failed asynchronous invocations of the
# job-events function to its dead-letter queue.
SERVICE_SIDE = {
    "LaunchLauncherRole": {
        ("logs:CreateLogStream", "${LaunchLauncherLogs.Arn}"),
        ("logs:PutLogEvents", "${LaunchLauncherLogs.Arn}"),
        ("sqs:ReceiveMessage", "${LaunchUploadEvents.Arn}"),
        ("sqs:DeleteMessage", "${LaunchUploadEvents.Arn}"),
        ("sqs:GetQueueAttributes", "${LaunchUploadEvents.Arn}"),
    },
    "FollowJobEventsRole": {
        ("logs:CreateLogStream", "${FollowJobEventsLogs.Arn}"),
        ("logs:PutLogEvents", "${FollowJobEventsLogs.Arn}"),
        ("sqs:SendMessage", "${FollowFailedJobEvents.Arn}"),
    },
}

_S3_OBJECT = re.compile(r"^\$\{StorageBucket\.Arn\}/([a-z]+/)\*$")
# A listing of the bucket under one prefix (s3:prefix "output/*").
_S3_LISTING = re.compile(r'^\$\{StorageBucket\.Arn\} if \{"StringLike": \{"s3:prefix": \["([a-z]+/)\*"\]\}\}$')
# Each S3 operation boto3 may send for an object, as the IAM action it needs (multipart uploads included).
_S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
}
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

Use = tuple[str, str]  # (IAM action, object prefix such as "jobs/" for S3, the queue for SQS, else "")
# The queues the launcher sends to: as the template names them, and as the test world's queue URLs end.
_QUEUES = {"${LaunchUploadEvents.Arn}": "uploads", "${LaunchDeadLetterQueue.Arn}": "launcher-dlq"}


def needed(service: str, operation: str, params: dict[str, Any]) -> set[Use]:
    """The IAM actions one API call needs."""
    if service == "s3":
        assert params["Bucket"] == BUCKET, params
        if operation == "ListObjectsV2":
            return {("s3:ListBucket", params["Prefix"].split("/", 1)[0] + "/")}
        return {(_S3_ACTIONS[operation], params["Key"].split("/", 1)[0] + "/")}
    if service == "sqs":
        return {(f"sqs:{operation}", params["QueueUrl"].rsplit("/", 1)[1])}
    if service == "dynamodb" and operation == "TransactWriteItems":
        return {(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", "") for item in params["TransactItems"] for kind in item}
    uses = {(f"{service}:{operation}", "")}
    if service == "sagemaker" and operation == "CreateLabelingJob":
        # Tags on create are authorized as sagemaker:AddTags; RoleArn is passed to SageMaker (iam:PassRole).
        uses |= {("sagemaker:AddTags", "")} if params.get("Tags") else set()
        uses |= {("iam:PassRole", "")}
    return uses


def granted(grants: set[tuple[str, str, str]], role: str) -> set[Use]:
    uses: set[Use] = set()
    for effect, action, resource in grants:
        assert effect == "Allow"
        if (action, resource) in SERVICE_SIDE[role]:
            continue
        match = _S3_OBJECT.match(resource) or _S3_LISTING.match(resource)
        if action.startswith("sqs:"):
            uses.add((action, _QUEUES.get(resource, resource)))
        else:
            uses.add((action, match[1] if action.startswith("s3:") and match else ""))
    return uses


@dataclass
class Recorder:
    world: World
    uses: set[Use] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def make_client(self, service: str, **kwargs: Any) -> Any:
        """The factory the handlers build their clients with: boto3's, with every call recorded."""
        client = boto3.client(service, **kwargs)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            with self.lock:
                self.uses |= needed(service, model.name, params)

        client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_name}", record)
        return self.world.ground_truth.attach(client) if service == "sagemaker" else client


@dataclass
class FakeContext:
    function_name: str = "function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield build_world()


def _records(world: World, queue_url: str) -> list[dict[str, Any]]:
    messages = world.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [
        lambda_sqs_record(message, f"arn:aws:sqs:{REGION}:{ACCOUNT}:uploads")
        for message in messages
        if "s3:TestEvent" not in message["Body"]
    ]


def _output_line(source_ref: str, job: str) -> str:
    return json.dumps(
        {
            "source-ref": source_ref,
            "labels": {
                "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}],
                "image_size": [{"width": 40, "height": 30, "depth": 3}],
            },
            "labels-metadata": {
                "class-map": {"0": "Dog"},
                "job-name": f"labeling-job/{job}",
                "human-annotated": "yes",
                "objects": [{"confidence": 0.9}],
                "type": "groundtruth/object-detection",
            },
        }
    )


def run_launcher(world: World, monkeypatch: pytest.MonkeyPatch, workers: int = 1) -> tuple[set[Use], str]:
    """Every path of the launcher that reaches a grant; returns what it used and one job it created."""
    uploads = world.sqs.create_queue(QueueName="uploads")["QueueUrl"]
    dead_letters = world.sqs.create_queue(QueueName="launcher-dlq")["QueueUrl"]
    world.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:uploads",
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
                }
            ]
        },
    )
    for name, value in {
        Env.BUCKET_NAME: BUCKET,
        Env.LEDGER_TABLE_NAME: TABLE,
        Env.DEAD_LETTER_QUEUE_URL: dead_letters,
        Env.LAUNCH_QUEUE_URL: uploads,
        Env.PIPELINE_SETTINGS: settings_json(workersPerImage=workers),
        Env.BACKEND_RESOURCES: BACKEND_RESOURCES,
    }.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder(world)
    handler._environment = handler.build_environment(recorder.make_client)
    try:
        # An upload becomes a job (claims, task files, CreateLabelingJob with tags and the role, the job
        # record); a message that is no S3 event goes to the dead-letter queue.
        world.upload("images/a.jpg")
        records = _records(world, uploads)
        poison = {**records[0], "messageId": "poison", "body": "not an S3 event"}
        response = handler.lambda_handler({"Records": [*records, poison]}, FakeContext())
        assert response["batchItemFailures"] == []
        [created] = world.ground_truth.created_names

        # An image that another invocation claimed for a job it did not finish: this one reads that job's
        # candidates (GetObject under jobs/) and owners, and finishes it.
        launcher = handler._env().launcher
        assert launcher is not None
        orphan = ImageRef(BUCKET, "images/b.jpg", "v1")
        world.ledger.claim_many([orphan], "bbox-unfinished")
        world.s3.put_object(
            Bucket=BUCKET,
            Key="jobs/bbox-unfinished/candidates.json",
            Body=json.dumps([[orphan.bucket, orphan.key, orphan.version]]).encode(),
        )
        assert launcher.launch([orphan])[orphan].job_name == "bbox-unfinished"
        # The same job created by a run that died before its job record: CreateLabelingJob answers
        # ResourceInUse and DescribeLabelingJob shows it is the same job.
        world.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "job#bbox-unfinished"}})
        assert launcher.launch([orphan])[orphan].ok
        assert world.ground_truth.created_names == [created, "bbox-unfinished"]

        # Ground Truth unavailable: the message goes back to the upload queue, delayed (the back-off).
        world.ground_truth.fault = lambda op, _r: "ServiceUnavailable" if op == "CreateLabelingJob" else None
        world.upload("images/c.jpg")
        records = [record for record in _records(world, uploads) if "c.jpg" in record["body"]]  # keys URL-encoded
        response = handler.lambda_handler({"Records": records}, FakeContext())
        assert records and response["batchItemFailures"] == []
        delayed = world.sqs.get_queue_attributes(
            QueueUrl=uploads, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )
        assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
        world.ground_truth.fault = None
    finally:
        handler._environment = None
    return recorder.uses, created


def run_job_events(world: World, monkeypatch: pytest.MonkeyPatch, job: str, workers: int = 1) -> set[Use]:
    """A completed job, exported, recorded and announced: every path of the job-events function's grants. With
    several workers per image, their worker-response files are read too."""
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="results")["TopicArn"]
    for name, value in job_events_environment(topic_arn).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(Env.PIPELINE_SETTINGS, settings_json(workersPerImage=workers))
    recorder = Recorder(world)
    job_events._finisher, job_events._backend = job_events.build_finisher(recorder.make_client)
    source_ref = f"s3://{BUCKET}/images/a.jpg"
    box = {"label": "Dog", "left": 1, "top": 1, "width": 5, "height": 5}
    try:
        if workers > 1:
            answers = {source_ref: [(f"worker-{n}", [box]) for n in range(workers)]}
            output = world.ground_truth.worker_output(job, answers)
        else:
            output = [_output_line(source_ref, job)]
        world.ground_truth.finish(job, "Completed", output)
        event = job_state_change_event(job)
        assert job_events.lambda_handler(event, FakeContext())["action"] == "exported"
    finally:
        job_events._finisher = job_events._backend = None
    return recorder.uses


def _compare(role: str, used: set[Use], grants: set[tuple[str, str, str]]) -> None:
    allowed = granted(grants, role)
    assert not used - allowed, f"{role} calls without a grant: {sorted(used - allowed)}"
    assert not allowed - used, f"{role} has grants no code path uses: {sorted(allowed - used)}"


def test_each_lambda_uses_every_grant_it_has_and_has_every_grant_it_uses(
    synthesized: Synthesized, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = grants_by_role(dict(synthesized.assembly.get_stack_by_name("gt-labeling-pipeline").template))
    launcher_uses, job = run_launcher(world, monkeypatch)
    job_events_uses = run_job_events(world, monkeypatch, job)
    _compare("LaunchLauncherRole", launcher_uses, grants["LaunchLauncherRole"])
    _compare("FollowJobEventsRole", job_events_uses, grants["FollowJobEventsRole"])


def test_an_unused_grant_is_reported(synthesized: Synthesized) -> None:
    # The check itself: the launcher's old ledger grant (GetItem, which no path of its code reaches).
    grants = grants_by_role(dict(synthesized.assembly.get_stack_by_name("gt-labeling-pipeline").template))
    launcher = grants["LaunchLauncherRole"] | {("Allow", "dynamodb:GetItem", "${LaunchLedger.Arn}")}
    used = granted(grants["LaunchLauncherRole"], "LaunchLauncherRole")
    with pytest.raises(AssertionError, match=r"grants no code path uses: \[\('dynamodb:GetItem', ''\)\]"):
        _compare("LaunchLauncherRole", used, launcher)


@pytest.fixture(scope="module")
def synthesized_crowd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Ground Truth deployment with three workers per image: the job end also lists worker responses."""
    done = synthesize_app(
        tmp_path_factory.mktemp("cdk.out.crowd"),
        {"labeling.workerEmails": json.dumps(WORKERS), "labeling.workersPerImage": "3"},
    )
    return dict(done.assembly.get_stack_by_name("gt-labeling-pipeline").template)


def test_with_several_workers_the_job_end_may_list_worker_responses_and_does(
    synthesized: Synthesized, synthesized_crowd: dict[str, Any], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = grants_by_role(synthesized_crowd)["FollowJobEventsRole"]
    single = grants_by_role(dict(synthesized.assembly.get_stack_by_name("gt-labeling-pipeline").template))
    # One grant more than with one worker per image: ListBucket, under output/ only.
    assert crowd - single["FollowJobEventsRole"] == {
        ("Allow", "s3:ListBucket", '${StorageBucket.Arn} if {"StringLike": {"s3:prefix": ["output/*"]}}')
    }
    _launcher_uses, job = run_launcher(world, monkeypatch, workers=3)
    _compare("FollowJobEventsRole", run_job_events(world, monkeypatch, job, workers=3), crowd)
