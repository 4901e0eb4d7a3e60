"""The pipeline's real Lambda code against the real Label Studio server, with moto's server as AWS.

Everything AWS (the bucket and its notification to the upload queue, the ledger, the topic, the secrets)
lives in moto's server, which Label Studio also uses as its S3 (its storage's ``s3_endpoint``), so a task's
image resolves to a presigned URL that a browser can open. Label Studio's webhook reaches the job-events
function through a loopback HTTP server that hands each request to `job_events.lambda_handler` as a Lambda
function URL would (one request at a time, as Lambda's concurrency of one would).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
import requests
from PIL import Image

from labeling_cli.stack import StackInfo
from labeling_pipeline import handler, job_events
from labeling_pipeline.backends import LabelingBackend, TransientBackendError
from labeling_pipeline.backends.label_studio import Resources, build
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.project import SECRET_HEADER, ProjectReport, ensure_project
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.ledger_schema import create_table_arguments
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.settings import PipelineSettings, validate_json
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from sandbox.lambda_runtime import function_url_event
from tests.loopback import serve_on_loopback
from tests.support import REGION, lambda_sqs_record

UPLOADS_ARN = "arn:aws:sqs:us-east-1:123456789012:uploads"
WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789"


class FakeContext:
    function_name = "labeling-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:labeling-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def png(width: int, height: int, colour: tuple[int, int, int] = (30, 60, 200)) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    image.paste((240, 200, 40), (width // 2, height // 2, width, height))
    body = io.BytesIO()
    image.save(body, format="PNG")
    return body.getvalue()


def settings_json(title: str, **overrides: Any) -> str:
    raw = {
        "backend": "label-studio",
        "labels": ["Dog", "Cat"],
        "taskTitle": "Draw a box around each animal",
        "shortInstructions": "One box per animal.",
        "fullInstructions": "Draw one tight box per <animal> & pick its label.",
        "workersPerImage": 1,
        "jobNamePrefix": "lsbox",
        "maxImagesPerJob": 1000,
        "projectTitle": title,
    }
    raw.update(overrides)
    return json.dumps(raw)


class CrashAfterImport(Ledger):
    """The launcher dies between Label Studio's import and the ledger's mark, once."""

    crashed = False

    def mark_job_created(self, job_name: str, image_count: int, manifest_uri: str) -> None:
        if not self.crashed:
            self.crashed = True
            raise TransientBackendError("the function timed out right after the import")
        super().mark_job_created(job_name, image_count, manifest_uri)


@dataclass
class WebhookCall:
    status: int
    body: dict[str, Any]


@dataclass
class Pipeline:
    moto: MotoServer
    label_studio: LabelStudioServer
    title: str
    bucket: str
    settings: PipelineSettings
    environment: dict[str, str]
    webhook_url: str = ""
    webhook_calls: list[WebhookCall] = field(default_factory=list)
    project_id: int = 0
    drop_webhooks: bool = False

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.moto.url)

    def client_for(self, service: str, **options: Any) -> Any:
        """boto3.client's signature, for a backend's `build`."""
        return boto3.client(service, **{"region_name": REGION, **options, "endpoint_url": self.moto.url})

    @property
    def api(self) -> LabelStudioApi:
        return LabelStudioApi(self.label_studio.url, self.label_studio.token)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.client("dynamodb"), self.environment[Env.LEDGER_TABLE_NAME])

    def deploy(self, settings: PipelineSettings | None = None, webhook_secret: str = WEBHOOK_SECRET) -> ProjectReport:
        """What the deployment's setup function does on every deploy (`ensure_project`), for this world."""
        return ensure_project(
            self.api,
            settings or self.settings,
            bucket=self.bucket,
            region=REGION,
            webhook_url=self.webhook_url,
            webhook_secret=webhook_secret,
            s3_endpoint=self.moto.url,
        )

    def stack_info(self) -> StackInfo:
        """What the CLI reads of the deployed stack, for this world."""
        return StackInfo(
            project="labeling",
            region=REGION,
            bucket=self.bucket,
            ledger_table=self.environment[Env.LEDGER_TABLE_NAME],
            upload_queue_url=self.environment["UPLOAD_QUEUE_URL"],
            dead_letter_queue_url=self.environment[Env.DEAD_LETTER_QUEUE_URL],
            settings=self.settings,
            backend_resources=json.loads(self.environment[Env.BACKEND_RESOURCES]),
        )

    def backend(self) -> LabelStudioBackend:
        """The backend as a cold launcher or job-events function builds it, from its environment."""
        return build(self.settings, json.loads(self.environment[Env.BACKEND_RESOURCES]), self.client_for, REGION)

    def launcher(
        self,
        *,
        ledger: Ledger | None = None,
        backend: LabelingBackend | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Launcher:
        """The launcher function's `Launcher`, to call directly; by default with the real ledger and backend."""
        return Launcher(
            s3_client=self.client("s3"),
            ledger=self.ledger if ledger is None else ledger,
            backend=self.backend() if backend is None else backend,
            bucket=self.bucket,
            settings=self.settings,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    # --- uploads and the launcher -------------------------------------------------------------------
    def upload(self, key: str, body: bytes, content_type: str = "image/png") -> str:
        answer = self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return str(answer.get("VersionId", "null"))

    def receive_uploads(self, wait_for: int = 1) -> list[dict[str, Any]]:
        """The upload queue's messages (moto's bucket notifications: real S3 event JSON), as Lambda records."""
        sqs = self.client("sqs")
        queue_url = self.environment["UPLOAD_QUEUE_URL"]
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            records.extend(lambda_sqs_record(message, UPLOADS_ARN) for message in answer.get("Messages", []))
            if len(records) >= wait_for and not answer.get("Messages"):
                break
        for record in records:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
        return records

    def launch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        response: dict[str, Any] = dict(handler.lambda_handler({"Records": records}, FakeContext()))
        return response

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(
                QueueUrl=self.environment[Env.DEAD_LETTER_QUEUE_URL],
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(message)
                sqs.delete_message(
                    QueueUrl=self.environment[Env.DEAD_LETTER_QUEUE_URL], ReceiptHandle=message["ReceiptHandle"]
                )

    # --- Label Studio, as the annotators use it ------------------------------------------------------
    def tasks(self, job: str | None = None) -> list[dict[str, Any]]:
        filters = {"job": job} if job else {}
        return list(self.api.tasks(self.project_id, filters, with_annotations=True))

    def annotate(self, task_id: int, boxes: list[dict[str, Any]], *, cancelled: bool = False) -> dict[str, Any]:
        """An annotation as Label Studio's editor submits it (admin's token: a simulated annotator)."""
        created: dict[str, Any] = self.api.request(
            "POST",
            f"/api/tasks/{task_id}/annotations",
            body={"result": boxes, "was_cancelled": cancelled, "lead_time": 1.0},
        )
        return created

    # --- the job-events function -------------------------------------------------------------------
    def reconcile(self) -> dict[str, Any]:
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "resources": []}
        answer: dict[str, Any] = job_events.lambda_handler(event, FakeContext())
        return answer

    def exports(self, job: str) -> dict[str, bytes]:
        s3 = self.client("s3")
        found = {}
        for entry in s3.list_objects_v2(Bucket=self.bucket, Prefix=f"exports/{job}/").get("Contents", []):
            found[entry["Key"].rsplit("/", 1)[1]] = s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
        return found

    def notifications(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.environment["INBOX_URL"], MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self.environment["INBOX_URL"], ReceiptHandle=message["ReceiptHandle"])

    def wait_for_webhooks(self, count: int, timeout: float = 30.0) -> list[WebhookCall]:
        deadline = time.monotonic() + timeout
        while len(self.webhook_calls) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.webhook_calls) >= count, f"{len(self.webhook_calls)} webhook calls, wanted {count}"
        return self.webhook_calls


@contextmanager
def webhook_receiver(pipeline: Pipeline) -> Iterator[str]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if pipeline.drop_webhooks:
                self.send_response(200)
                self.end_headers()
                return
            answer = job_events.lambda_handler(function_url_event(body, dict(self.headers)), FakeContext())
            pipeline.webhook_calls.append(WebhookCall(answer["statusCode"], json.loads(answer["body"])))
            self.send_response(answer["statusCode"])
            self.end_headers()
            self.wfile.write(answer["body"].encode())

        def log_message(self, *args: Any) -> None:
            pass

    with serve_on_loopback(Receiver, one_at_a_time=True) as server:
        yield f"http://127.0.0.1:{server.server_port}/"


@contextmanager
def label_studio_pipeline(
    moto: MotoServer, label_studio: LabelStudioServer, title: str, **settings_overrides: Any
) -> Iterator[Pipeline]:
    """A deployed pipeline in moto's server, its Label Studio project made as the deployment makes it."""
    suffix = title.lower().replace(" ", "-")
    bucket = f"labeling-{suffix}"
    text = settings_json(title, **settings_overrides)
    pipeline = Pipeline(moto, label_studio, title, bucket, validate_json(settings_model("label-studio"), text), {})
    s3, sqs, sns = pipeline.client("s3"), pipeline.client("sqs"), pipeline.client("sns")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}]
        },
    )
    uploads = sqs.create_queue(QueueName=f"{suffix}-uploads")["QueueUrl"]
    uploads_arn = sqs.get_queue_attributes(QueueUrl=uploads, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": uploads_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
                }
            ]
        },
    )
    dead_letters = sqs.create_queue(QueueName=f"{suffix}-dead-letters")["QueueUrl"]
    inbox = sqs.create_queue(QueueName=f"{suffix}-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=f"{suffix}-results")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    table = f"{suffix}-ledger"
    pipeline.client("dynamodb").create_table(TableName=table, **create_table_arguments())
    secrets = pipeline.client("secretsmanager")
    token_arn = secrets.create_secret(Name=f"{suffix}/api-token", SecretString=label_studio.token)["ARN"]
    webhook_arn = secrets.create_secret(Name=f"{suffix}/webhook", SecretString=WEBHOOK_SECRET)["ARN"]
    resources = {
        Resources.URL: label_studio.url,
        Resources.BUCKET: bucket,
        Resources.API_TOKEN_SECRET_ARN: token_arn,
        Resources.WEBHOOK_SECRET_ARN: webhook_arn,
    }
    pipeline.environment = {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        Env.BUCKET_NAME: bucket,
        Env.LEDGER_TABLE_NAME: table,
        Env.DEAD_LETTER_QUEUE_URL: dead_letters,
        Env.RESULTS_TOPIC_ARN: topic,
        Env.PIPELINE_SETTINGS: text,
        Env.BACKEND_RESOURCES: json.dumps(resources),
        "UPLOAD_QUEUE_URL": uploads,
        "INBOX_URL": inbox,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in pipeline.environment.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        handler._environment = None
        job_events._finisher = job_events._backend = None
        with webhook_receiver(pipeline) as webhook_url:
            pipeline.webhook_url = webhook_url
            pipeline.project_id = pipeline.deploy().project_id
            try:
                yield pipeline
            finally:
                handler._environment = None
                job_events._finisher = job_events._backend = None


def rectangle(
    x: float, y: float, width: float, height: float, label: str, size: tuple[int, int], rotation: float = 0.0
) -> dict[str, Any]:
    """A rectangle result as Label Studio's editor writes it: percent of the image, degrees clockwise."""
    return {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": rotation, "rectanglelabels": [label]},
    }


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def resolved_image(pipeline: Pipeline, task: dict[str, Any]) -> bytes:
    """What a worker's browser gets for the task's image: Label Studio's resolve link, a 303 to a presigned URL."""
    session = requests.Session()
    session.headers.update(pipeline.label_studio.headers)
    fresh = session.get(f"{pipeline.label_studio.url}/api/tasks/{task['id']}", timeout=30).json()
    link = fresh["data"]["image"]
    if link.startswith("/"):
        link = pipeline.label_studio.url + link
    answer = session.get(link, timeout=30)
    answer.raise_for_status()
    return answer.content


def secret_header() -> dict[str, str]:
    return {SECRET_HEADER: WEBHOOK_SECRET}
