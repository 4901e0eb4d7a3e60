"""What the job-events function reads of a Label Studio job, against the real server: describing a job reads the
tasks changed since its index was kept, not the job, and keeps them in the job's task shards; the job end reads the
shards, and from Label Studio only what a shard lacks; a re-export after one changed answer reads that task alone and
keeps the other lines of tasks.jsonl as they were. The requests are recorded as the backend sends them, with Label
Studio's own answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from labeling_pipeline.backends.label_studio.api import EXPORT_CHUNK
from labeling_pipeline.backends.label_studio.job_index import JobIndex, filter_time, parse_time
from labeling_pipeline.backends.label_studio.service import (
    INDEX_FILE,
    START_INDEX_FILE,
    TASK_SHARDS,
    LabelStudioBackend,
)
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_results import JobFinisher
from labeling_pipeline.labels import ReadStats
from labeling_pipeline.launcher import job_images
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import CrashAfterImport, Pipeline, label_studio_pipeline, png, rectangle

IMAGES = {f"images/reads/{number}.png": (64, 48) for number in range(6)}


@pytest.fixture(scope="module")
def world(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Job reads") as pipeline:
        # The job end is driven here, by a finisher whose requests are recorded.
        pipeline.drop_webhooks = True
        yield pipeline


@dataclass
class Recorded:
    """Every request a backend sends to Label Studio: method, path and query."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    def task_lists(self) -> list[dict[str, Any]]:
        return [query for method, path, query in self.calls if (method, path) == ("GET", "/api/tasks")]

    def changed_tasks(self) -> list[int]:
        """The tasks the reads of changed tasks answered with."""
        return [
            int(task["id"])
            for (method, path, query), answer in zip(self.calls, self.answers, strict=True)
            if (method, path) == ("GET", "/api/tasks") and "filter:tasks:updated_at" in query["query"]
            for task in answer["tasks"]
        ]

    def clear(self) -> None:
        self.calls.clear()
        self.answers.clear()

    def full_listings(self) -> list[dict[str, Any]]:
        """Task lists that page through the job: more than one row a page, and no updated_at filter."""
        return [
            query
            for query in self.task_lists()
            if int(query["page_size"]) > 1 and "filter:tasks:updated_at" not in query["query"]
        ]

    def exported_ids(self) -> list[int]:
        return [
            int(task_id)
            for method, path, query in self.calls
            if method == "GET" and path.endswith("/export")
            for task_id in query["ids[]"]
        ]

    def export_requests(self) -> list[dict[str, Any]]:
        return [query for method, path, query in self.calls if path.endswith("/export")]


def recorded(backend: LabelStudioBackend, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    record = Recorded()
    send = backend.api._request

    def recording(method: str, path: str, *, body: Any, query: Any) -> Any:
        record.calls.append((method, path, dict(query or {})))
        answer = send(method, path, body=body, query=query)
        record.answers.append(answer)
        return answer

    monkeypatch.setattr(backend.api, "_request", recording)
    return record


def finisher(world: Pipeline, backend: LabelStudioBackend) -> JobFinisher:
    return JobFinisher(
        s3_client=world.client("s3"),
        sns_client=world.client("sns"),
        ledger=world.ledger,
        backend=backend,
        bucket=world.bucket,
        topic_arn=world.environment[Env.RESULTS_TOPIC_ARN],
        labels=world.settings.labels,
    )


def index_at(world: Pipeline, key: str) -> JobIndex:
    return JobIndex.from_json(world.client("s3").get_object(Bucket=world.bucket, Key=key)["Body"].read())


def tasks_file(world: Pipeline, job: str) -> dict[int, bytes]:
    raw = world.client("s3").get_object(Bucket=world.bucket, Key=f"output/{job}/tasks.jsonl")["Body"].read()
    return {int(json.loads(line)["id"]): line for line in raw.splitlines()}


def answer_marks(line: bytes) -> list[tuple[int, Any, bool]]:
    """A tasks.jsonl line's answers: what the data manager's listing and the export endpoint write alike."""
    task = json.loads(line)
    return [(a["id"], a["result"], a["was_cancelled"]) for a in task["annotations"]]


def test_a_job_is_read_in_proportion_to_what_changed(world: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, size in IMAGES.items():
        world.upload(key, png(*size))
    assert world.launch(world.receive_uploads(len(IMAGES))) == {"batchItemFailures": []}
    by_key = {task["data"]["image"].split("/", 3)[3]: task for task in world.tasks()}
    ids = [int(by_key[key]["id"]) for key in IMAGES]
    (job,) = {task["data"]["job"] for task in by_key.values()}

    # The launcher kept the job's index as it started: every task, none answered.
    started = index_at(world, f"jobs/{job}/{START_INDEX_FILE}")
    assert (started.project_id, sorted(started.rows), started.left) == (world.project_id, sorted(ids), 6)

    # Two rows a page, so that a read of the whole job would take three pages; no margin for late commits, as the
    # whole test runs inside one (it is checked on its own below).
    backend = world.backend()
    backend.api.task_page_size = 2
    backend.late_commit_margin = timedelta(0)
    record = recorded(backend, monkeypatch)
    ends = finisher(world, backend)
    world.annotate(ids[0], [rectangle(10, 10, 20, 20, "Dog", (64, 48))])
    assert ends.handle(job).action == "not-terminal"
    described = backend.describe_job(job)
    assert (described.labeled, described.failed_objects, described.unlabeled) == (1, 0, 5)
    # Each description: the job's total and newest updated_at, then the tasks changed since (one page).
    assert record.full_listings() == [] and len(record.task_lists()) == 4

    for task_id in ids[1:5]:
        world.annotate(task_id, [rectangle(20, 20, 30, 30, "Cat", (64, 48))])
    world.annotate(ids[5], [], cancelled=True)
    record.clear()
    outcome = ends.handle(job)
    assert outcome.action == "exported"
    assert (
        outcome.summary is not None
        and outcome.summary["imagesLabeled"] == 5
        and len(outcome.summary["failedObjects"]) == 1
    )
    # The job end read the five tasks answered since the description before, and the rest from the shards: it
    # neither listed the job nor read a task through the export endpoint.
    assert sorted(record.changed_tasks()) == sorted(ids[1:]) and record.full_listings() == []
    assert record.exported_ids() == []
    before = tasks_file(world, job)
    assert sorted(before) == sorted(ids)
    assert index_at(world, f"output/{job}/{INDEX_FILE}").left == 0

    # One answer changed after the export: the re-export reads that task alone, and the other lines are kept as
    # they were, byte for byte.
    (annotation,) = world.api.request("GET", f"/api/tasks/{ids[1]}")["annotations"]
    world.api.request(
        "PATCH",
        f"/api/annotations/{annotation['id']}",
        body={"result": [rectangle(50, 50, 10, 10, "Dog", (64, 48))], "lead_time": 2.0},
    )
    record.clear()
    assert ends.handle(job, results_changed=True).action == "re-exported"
    assert record.changed_tasks() == [ids[1]] and record.exported_ids() == [] and record.full_listings() == []
    after = tasks_file(world, job)
    assert after[ids[1]] != before[ids[1]] and {k: v for k, v in after.items() if k != ids[1]} == {
        k: v for k, v in before.items() if k != ids[1]
    }
    coco = json.loads(world.exports(job)["coco.json"])
    moved = next(image["id"] for image in coco["images"] if image["source_ref"].endswith("/1.png"))
    assert [a["bbox"] for a in coco["annotations"] if a["image_id"] == moved] == [pytest.approx([32, 24, 6.4, 4.8])]
    # Nothing changed since: another signal exports nothing.
    assert ends.handle(job, results_changed=True).action == "duplicate"

    # A shard lost (or never written: a description that could not keep it): the job end reads its tasks through
    # the export endpoint, EXPORT_CHUNK at most a request, and the lines are the same tasks; read so, they are kept
    # again, and the next job end reads none.
    world.client("s3").delete_object(Bucket=world.bucket, Key=f"output/{job}/{TASK_SHARDS}/00000.jsonl")
    record.clear()
    assert len(list(backend.read_results(backend.describe_job(job), ReadStats()))) == 6
    assert sorted(record.exported_ids()) == sorted(ids)
    assert all(len(query["ids[]"]) <= EXPORT_CHUNK for query in record.export_requests())
    answers_before = {task_id: answer_marks(line) for task_id, line in after.items()}
    assert {task_id: answer_marks(line) for task_id, line in tasks_file(world, job).items()} == answers_before
    record.clear()
    assert len(list(backend.read_results(backend.describe_job(job), ReadStats()))) == 6
    assert record.exported_ids() == []

    # A change stamped before the moment the index's read saw every change up to, but committed after that read (a
    # late transaction): the margin finds it; without one it would be missed.
    (annotation,) = world.api.request("GET", f"/api/tasks/{ids[2]}")["annotations"]
    world.api.request("DELETE", f"/api/annotations/{annotation['id']}")
    stamped = world.api.request("GET", f"/api/tasks/{ids[2]}")["updated_at"]
    kept = index_at(world, f"output/{job}/{INDEX_FILE}")
    kept.seen_until = filter_time(parse_time(stamped) + timedelta(seconds=30))

    def described_with(margin: timedelta) -> int:
        world.client("s3").put_object(Bucket=world.bucket, Key=f"output/{job}/{INDEX_FILE}", Body=kept.to_json())
        fresh = world.backend()
        fresh.late_commit_margin = margin
        return fresh.describe_job(job).unlabeled

    assert described_with(timedelta(0)) == 0
    assert described_with(timedelta(seconds=120)) == 1
    world.annotate(ids[2], [rectangle(20, 20, 30, 30, "Cat", (64, 48))])

    # A task deleted in Label Studio: the job is read in full again, and its image is one to relabel.
    world.api.request("DELETE", f"/api/tasks/{ids[3]}")
    backend = world.backend()
    assert finisher(world, backend).handle(job, results_changed=True).action == "re-exported"
    assert sorted(tasks_file(world, job)) == sorted(set(ids) - {ids[3]})
    statuses = {
        ref.key: status for ref, status in job_images(world.client("s3"), world.bucket, world.ledger, job).items()
    }
    assert statuses["images/reads/3.png"] == "NEEDS_RELABEL" and statuses["images/reads/2.png"] == "LABELED"

    # An index that is not one (a truncated write, someone's edit): read again in full, and kept again.
    world.client("s3").put_object(Bucket=world.bucket, Key=f"output/{job}/{INDEX_FILE}", Body=b'{"project": ')
    described = world.backend().describe_job(job)
    assert (described.labeled, described.failed_objects, described.unlabeled) == (4, 1, 0)
    assert sorted(index_at(world, f"output/{job}/{INDEX_FILE}").rows) == sorted(set(ids) - {ids[3]})


def test_a_start_retried_after_an_answer_keeps_the_first_index_and_the_answer_is_counted(world: Pipeline) -> None:
    refs = []
    for number in range(3):
        key = f"images/retried/{number}.png"
        refs.append(ImageRef(world.bucket, key, world.upload(key, png(64, 48))))
    crashing = CrashAfterImport(world.client("dynamodb"), world.environment[Env.LEDGER_TABLE_NAME])
    first = world.launcher(ledger=crashing).launch(refs)
    assert all(not outcome.ok and outcome.retryable for outcome in first.values())
    prefix = f"s3://{world.bucket}/images/retried/"
    tasks = [task for task in world.tasks() if task["data"]["image"].startswith(prefix)]
    (job,) = {task["data"]["job"] for task in tasks}
    written = world.client("s3").get_object(Bucket=world.bucket, Key=f"jobs/{job}/{START_INDEX_FILE}")
    # A worker answers one of the tasks before SQS delivers the batch again.
    world.annotate(int(tasks[0]["id"]), [rectangle(10, 10, 20, 20, "Dog", (64, 48))])
    assert all(outcome.ok for outcome in world.launcher().launch(refs).values())
    # The retry found an answered task and left the first attempt's index as it was.
    again = world.client("s3").get_object(Bucket=world.bucket, Key=f"jobs/{job}/{START_INDEX_FILE}")
    assert again["ETag"] == written["ETag"] and index_at(world, f"jobs/{job}/{START_INDEX_FILE}").left == 3
    backend = world.backend()
    backend.late_commit_margin = timedelta(0)
    described = backend.describe_job(job)
    assert (described.labeled, described.unlabeled) == (1, 2)
