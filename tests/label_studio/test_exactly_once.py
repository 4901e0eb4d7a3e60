"""Each image version becomes exactly one Label Studio task, whatever happens around the import; failures
are retried or dead-lettered by what would fix them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import urllib3

from labeling_pipeline import handler
from labeling_pipeline.backends import PermanentBackendError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend, task_data
from labeling_pipeline.images import ImageRef
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import CrashAfterImport, Pipeline, label_studio_pipeline, png
from tests.loopback import serve_on_loopback
from tests.support import Serialized


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Exactly once") as world:
        yield world


def images(pipeline: Pipeline, folder: str, count: int) -> list[ImageRef]:
    found = []
    for index in range(count):
        key = f"images/{folder}/{index}.png"
        version = pipeline.upload(key, png(64 + index, 48))
        found.append(ImageRef(pipeline.bucket, key, version))
    return found


def task_counts(pipeline: Pipeline, refs: list[ImageRef]) -> dict[str, int]:
    counts = dict.fromkeys((ref.source_ref for ref in refs), 0)
    for task in pipeline.tasks():
        if task["data"]["image"] in counts:
            counts[task["data"]["image"]] += 1
    return counts


def test_a_crash_between_the_import_and_the_mark_leaves_one_task_per_image(pipeline: Pipeline) -> None:
    refs = images(pipeline, "crash", 3)
    crashing = CrashAfterImport(pipeline.client("dynamodb"), pipeline.environment[Env.LEDGER_TABLE_NAME])
    first = pipeline.launcher(ledger=crashing).launch(refs)
    assert all(not outcome.ok and outcome.retryable for outcome in first.values())
    assert set(task_counts(pipeline, refs).values()) == {1}  # imported, not marked
    second = pipeline.launcher().launch(refs)  # SQS's redelivery
    assert all(outcome.ok for outcome in second.values())
    assert set(task_counts(pipeline, refs).values()) == {1}
    (job,) = {outcome.job_name for outcome in second.values()}
    assert job is not None and pipeline.ledger.job_created(job)


def test_concurrent_batches_and_duplicate_deliveries_make_one_task_per_image(pipeline: Pipeline) -> None:
    refs = images(pipeline, "concurrent", 40)
    # Four invocations at once over overlapping halves, as duplicate deliveries in concurrent batches are.
    batches = [refs[:25], refs[15:], refs, refs[::2]]
    outcomes: list[dict[ImageRef, Any]] = []
    errors: list[BaseException] = []
    # DynamoDB's transactions are atomic and isolated; moto's are not across threads (tests/support.py): the
    # launchers' ledger calls take turns, their Label Studio calls do not.
    turns = threading.Lock()
    table = pipeline.environment[Env.LEDGER_TABLE_NAME]

    def run(batch: list[ImageRef]) -> None:
        try:
            ledger = Ledger(Serialized(pipeline.client("dynamodb"), turns), table)
            outcomes.append(pipeline.launcher(ledger=ledger).launch(batch))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # A batch that found another holding the start lease is retried by SQS: replay those.
    retried = [ref for result in outcomes for ref, outcome in result.items() if not outcome.ok]
    if retried:
        assert all(o.ok for o in pipeline.launcher().launch(sorted(set(retried))).values())
    counts = task_counts(pipeline, refs)
    doubled = {ref: count for ref, count in counts.items() if count != 1}
    jobs = {
        ref: [
            (task["id"], task["data"]["job"], task["data"]["imageVersion"])
            for task in pipeline.tasks()
            if task["data"]["image"] == ref
        ]
        for ref in doubled
    }
    assert doubled == {}, f"tasks per image: {jobs}; outcomes: {outcomes}"


def test_duplicates_that_a_lapsed_lease_let_through_are_removed(pipeline: Pipeline) -> None:
    refs = images(pipeline, "lapsed", 2)
    ls = pipeline.backend()
    # Another invocation (its lease lapsed while Label Studio was still importing) made these two tasks.
    ls.api.import_tasks(pipeline.project_id, [{"data": task_data(ref, "lsbox-lapsed-000000000000")} for ref in refs])
    from labeling_pipeline.backends import JobRequest

    request = JobRequest("lsbox-lapsed-000000000000", tuple(refs), pipeline.bucket, "jobs/x/", "output/")
    ls.api.import_tasks(pipeline.project_id, [{"data": task_data(refs[0], request.name)}])  # a duplicate
    ls.create_job(request)
    assert ls.duplicates_deleted == 1  # nothing was missing; the duplicate found is removed all the same
    ls.api.import_tasks(pipeline.project_id, [{"data": task_data(refs[1], request.name)}])
    extra = images(pipeline, "lapsed-more", 1)
    ls.create_job(JobRequest(request.name, (*refs, *extra), pipeline.bucket, "jobs/x/", "output/"))
    assert ls.duplicates_deleted == 2
    assert set(task_counts(pipeline, [*refs, *extra]).values()) == {1}


def silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers: a Label Studio that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


class BadGateway(BaseHTTPRequestHandler):
    """A proxy in front of a Label Studio that is restarting."""

    def do_GET(self) -> None:
        self.send_response(502)
        self.end_headers()
        self.wfile.write(b"<html>502 Bad Gateway</html>")

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_label_studio_down_hanging_or_answering_5xx_is_retried(pipeline: Pipeline) -> None:
    refs = images(pipeline, "down", 1)
    listener, silent = silent_port()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    with listener, serve_on_loopback(BadGateway) as gateway:
        for port, says in (
            (closed_port, "did not answer"),
            (silent, "did not answer"),
            (gateway.server_port, "HTTP 502"),
        ):
            down = LabelStudioBackend(
                LabelStudioApi(f"http://127.0.0.1:{port}", "token", timeout=urllib3.Timeout(connect=1, read=1)),
                pipeline.client("s3"),
                pipeline.settings,
                bucket=pipeline.bucket,
            )
            (outcome,) = pipeline.launcher(backend=down).launch(refs).values()
            assert not outcome.ok and outcome.retryable, outcome
            assert says in (outcome.error or "")
    assert set(task_counts(pipeline, refs).values()) == {0}
    # Label Studio is back: the redelivered message starts the job, once.
    assert all(o.ok for o in pipeline.launcher().launch(refs).values())
    assert set(task_counts(pipeline, refs).values()) == {1}


def test_a_refused_token_or_a_deleted_project_is_dead_lettered_with_what_to_fix(pipeline: Pipeline) -> None:
    wrong = LabelStudioBackend(
        LabelStudioApi(pipeline.label_studio.url, "not-the-token"),
        pipeline.client("s3"),
        pipeline.settings,
        bucket=pipeline.bucket,
    )
    with pytest.raises(PermanentBackendError, match="refused the pipeline's API token"):
        wrong.parts()
    gone = pipeline.settings.model_copy(update={"project_title": "Deleted project"})
    missing = LabelStudioBackend(pipeline.api, pipeline.client("s3"), gone, bucket=pipeline.bucket)
    with pytest.raises(PermanentBackendError, match=r"has no project titled 'Deleted project'.*make deploy"):
        missing.parts()

    # Through the launcher function: the message goes to the dead-letter queue with the reason.
    secrets = pipeline.client("secretsmanager")
    token_arn = json.loads(pipeline.environment[Env.BACKEND_RESOURCES])["apiTokenSecretArn"]
    secrets.put_secret_value(SecretId=token_arn, SecretString="revoked-token")
    handler._environment = None
    pipeline.receive_uploads(0)  # the events of the images the tests above launched directly
    try:
        pipeline.upload("images/refused/a.png", png(50, 50))
        records = pipeline.receive_uploads(1)
        assert pipeline.launch(records) == {"batchItemFailures": []}  # not retried: dead-lettered
        (letter,) = pipeline.dead_letters()
        reason = letter["MessageAttributes"]["FailureReason"]["StringValue"]
        assert "refused the pipeline's API token (HTTP 401" in reason and "redrive" in reason
    finally:
        secrets.put_secret_value(SecretId=token_arn, SecretString=pipeline.label_studio.token)
        handler._environment = None
