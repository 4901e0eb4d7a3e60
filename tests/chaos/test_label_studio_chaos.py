"""Chaos test of the Label Studio path, against the real local Label Studio server, seeded.

400 uploads a seed (2,000 with CHAOS_LABEL_STUDIO_UPLOADS=2000), about 5% junk, every S3 event delivered at
least once and 10% twice, shuffled batches run by four concurrent launcher invocations (the SQS model of
simulation.py, maxReceiveCount 5 as deployed).
Every call the functions make to Label Studio goes through a proxy that fails a share of them: 503 before
Label Studio sees the request, 502 after it did the work, or no answer past the client's timeout, before or
after the work. S3 and DynamoDB fail now and then too. One invocation is killed between Label Studio's
import and the ledger's mark, its start lease left held, as a killed Lambda leaves it.

Simulated annotators answer tasks as they appear, while the launchers still run: 3% skipped, 5% drawn by
hand, the rest model predictions accepted in bulk. Label Studio sends its webhooks to the job-events
function; 30% of them are lost on the way, and the calls that the function makes back to Label Studio go
through the same faulty proxy. The scheduled reconciler then runs
until no job is open. When everything has drained: each valid image version is exactly one task (no
duplicate, none lost), every job was exported exactly once (one notification, one version of each export
file), the images exported are the valid ones that were not skipped, every junk upload was logged with its
reason, and the dead-letter queue holds the poison messages only.

With pre-labels (the seeds in CHAOS_LABEL_STUDIO_PRELABEL_SEEDS, 2 and 4 by default): the events reach the
launchers' queue through the pre-label stage first, with a predictor that fails and hangs on a share of its calls
(prelabel.py says how, and what it checks of the stage), and the stage is done before the launchers start. Then
the launchers read every proposals file there is; a task carries a held-out mark, or a proposed mark and one
prediction of the model's version with the proposals' boxes, exactly when the launchers read such a file for its
image; each job's prelabel-report.json counts its tasks the same way; and the pre-label coverage is printed. The
annotators' bulk acceptance takes their own predictions only.

With the review step (the seeds in CHAOS_LABEL_STUDIO_REVIEW_SEEDS, 3 and 8 by default): ``review.sampleShare``
REVIEW_SHARE, BY_HAND_WITH_REVIEW of the images answered by hand (only those carry labels; one annotator, so no
agreement, and only the sampled share goes to review), and the annotators also answer the review tasks as they
appear: a box moved (and for some relabeled) by a seed-drawn amount, or, for REVIEW_SKIPPED of them, a skip. The
reconciler ticks while they still answer, two invocations at once. Then: every image version that review.sampled()
picks, and only those, has exactly one review task (none missing, no duplicate left) with one answer; each job's
tasks.jsonl, written by its one export, carries each of its review tasks answered (so no job was exported before its
reviews were in); the exports hold the reviewer's box for a reviewed image and the annotator's for the rest (a
skipped review too); each summary's "review" block counts the images reviewed; and the review figures are printed.
The job-events function runs as Lambda runs it: one request at a time per instance (each with its own backend),
concurrent requests on separate instances (JobEventsInstances).

A failure names its seed: rerun with CHAOS_LABEL_STUDIO_SEEDS=<seed>. Uploads, deliveries, batches, the
invocations' AWS faults, Label Studio's faults (by request ordinal) and the lost webhooks come from the
seed; the interleaving of threads is the scheduler's, and the invariants must hold for every one.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
import urllib3
from moto import mock_aws

from labeling_pipeline import handler, job_events
from labeling_pipeline.backends import JobDescription, LabelingBackend
from labeling_pipeline.backends.label_studio import LIMITS, Resources
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION
from labeling_pipeline.backends.label_studio.project import ensure_project, review_project_ids
from labeling_pipeline.backends.label_studio.results import (
    REVIEW_KEY,
    UNREVIEWED_REASON,
    PrelabelMark,
    TaskData,
    task_identity,
)
from labeling_pipeline.backends.label_studio.review import ReviewData, ReviewReason, sampled
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend, answers
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_results import JobFinisher
from labeling_pipeline.launcher import Launcher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.ledger_schema import create_table_arguments
from labeling_pipeline.names import PRELABEL_REPORT_FILE
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel.proposals import Proposal
from labeling_pipeline.settings import PipelineSettings, validate_json
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from sandbox.lambda_runtime import function_url_event
from tests.chaos.fault_proxy import FaultRates, fault_proxy
from tests.chaos.prelabel import (
    MODEL_VERSION,
    PRELABEL,
    PROPOSAL_READ_FAULTS,
    Bucket,
    PrelabelRun,
    ProposalReads,
    ProposalsApart,
    UploadedImages,
)
from tests.chaos.simulation import (
    DeadLetterClient,
    Flaky,
    InvocationFaults,
    Killed,
    Message,
    SimulatedQueue,
    SkipLog,
    deliveries,
    drain,
    make_uploads,
)
from tests.label_studio.pipeline_world import WEBHOOK_SECRET, FakeContext, rectangle, settings_json
from tests.loopback import serve_on_loopback
from tests.support import BUCKET, REGION, TABLE, Serialized

SEEDS = [int(seed) for seed in os.environ.get("CHAOS_LABEL_STUDIO_SEEDS", "1,2,3,4,5").split(",")]
# make test runs 400 uploads a seed (about a minute each, on 2 cores); the 2,000 a seed take about 4.5
# minutes each, most of it Label Studio's own work on SQLite: CHAOS_LABEL_STUDIO_UPLOADS=2000.
UPLOADS = int(os.environ.get("CHAOS_LABEL_STUDIO_UPLOADS", "400"))
# Seeds with pre-labels (the stage in front, proposals in the imports). Not all: they take about 20 s more a seed,
# as a start whose import went unanswered adds the job's predictions one request each, each through the faulty
# proxy; the other seeds keep the default deployment's path.
PRELABEL_SEEDS = {int(s) for s in os.environ.get("CHAOS_LABEL_STUDIO_PRELABEL_SEEDS", "2,4").split(",") if s}
# Seeds with the review step (labeling.review): review tasks made by the job-events function, through the faulty proxy.
# They take 6 to 35 s more a seed (measured on 2 busy cores; 15 s typical), most of it review steps retried tick after
# tick: a step makes about 20 requests to Label Studio, so that two in three attempts meet a fault. Seed 8 skips 6 of
# its 15 reviews; seed 3 has 13 reviews in 7 jobs.
JOB_LEASE_SECONDS = 8
REVIEW_SEEDS = {int(s) for s in os.environ.get("CHAOS_LABEL_STUDIO_REVIEW_SEEDS", "3,5").split(",") if s}
REVIEW_SHARE = 0.3
REVIEW_SKIPPED = 0.15  # of the review tasks, skipped by the reviewer: the annotator's box stays
# Answers by hand, with review: only they carry labels, so only they go to review. Not more: each one's webhook has
# the job-events function list the job's tasks.
BY_HAND_WITH_REVIEW = 0.10
JOB_SIZE = 100
CONCURRENCY = 4
LABEL_STUDIO_FAULTS = FaultRates(refused=0.04, lost_answer=0.03, hang_before=0.004, hang_after=0.004)
CLIENT_TIMEOUT = urllib3.Timeout(connect=2.0, read=3.0)
HANG_SECONDS = 3.5
WEBHOOKS_LOST = 0.30
SKIPPED_TASKS = 0.03
BY_HAND = 0.05
ANNOTATORS = 3
# How often the annotators look for new tasks: each look is a query of the project, work for Label Studio.
POLL_SECONDS = 2.0
# A retried message comes back after the queue's visibility timeout (stacks: 30 minutes), long after a
# killed invocation's start lease (launcher.START_LEASE_SECONDS) has lapsed.
VISIBILITY_TIMEOUT = timedelta(minutes=30)
MAX_RECONCILER_TICKS = 10
# With review, a job's review step is taken by a tick (the webhook of the job's last answer is lost for 30%), and the
# step makes about 20 requests to Label Studio, each failed 8% of the time through the proxy: about two attempts in
# three fail, and the next tick takes it again (a job needed 7 attempts in a row).
MAX_RECONCILER_TICKS_WITH_REVIEW = 40
# With review, each tick runs on two instances at once (a tick that outlasts the schedule's period, or a retried
# one): they ask about the same jobs together, so that the job's lease, not luck, keeps a review step single.
RECONCILERS_AT_ONCE = 2
POISON = ["not json", "[]", '{"Records": [{"s3": 1}]}']


class SimulatedClock:
    """The launchers' clock: real time plus the visibility timeouts that passed between rounds."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def pass_visibility_timeout(self) -> None:
        self.offset += VISIBILITY_TIMEOUT


class KillAfterImport(Ledger):
    """The first job to reach its mark kills its invocation there, after Label Studio imported its tasks.
    A killed Lambda runs no cleanup: its start lease stays held until it lapses."""

    def __init__(self, client: Any, table: str, killed: list[str], lock: threading.Lock) -> None:
        super().__init__(client, table)
        self._killed = killed
        self._lock = lock
        self._dead: set[str] = set()

    def mark_job_created(self, job_name: str, image_count: int, manifest_uri: str) -> None:
        with self._lock:
            kill = not self._killed
            if kill:
                self._killed.append(job_name)
        if kill:
            self._dead.add(job_name)
            raise Killed(job_name)
        super().mark_job_created(job_name, image_count, manifest_uri)

    def release_job_start(self, job_name: str) -> None:
        if job_name not in self._dead:
            super().release_job_start(job_name)


class Annotators:
    """People answering tasks in Label Studio as they appear. Per image, decided by the seed: a skip, one box
    drawn by hand (an annotation each, as the editor submits it), or, for most, a model's box accepted in
    bulk (predictions imported, then the data manager's "Create Annotations From Predictions" on the job's
    tasks: one request for many annotations, and one webhook for all of them).

    With the review step, a reviewer answers each review task as it appears in `review_project`: the box the image
    was labeled with, moved (and for some relabeled) by a seed-drawn amount (`review_box`), or a skip."""

    def __init__(
        self,
        api: LabelStudioApi,
        project_id: int,
        seed: int,
        *,
        by_hand: float = BY_HAND,
        review_project: int | None = None,
    ) -> None:
        self.api = api
        self.project_id = project_id
        self.seed = seed
        self.by_hand_share = by_hand
        self.review_project = review_project
        self.answered: set[int] = set()
        self.skipped_images: set[str] = set()
        self.bulk_images: set[str] = set()  # accepted in bulk: nobody looked, so no label (UNREVIEWED_REASON)
        self.hand_boxes: dict[str, dict[str, Any]] = {}  # image -> the box drawn by hand (not skipped)
        self.by_hand = 0
        self.in_bulk = 0
        self.reviews_answered: set[int] = set()  # review task ids
        self.reviews: dict[str, dict[str, Any] | None] = {}  # image -> the reviewer's box; None: skipped
        self.stop = threading.Event()
        self.wake = threading.Event()  # look now, not after POLL_SECONDS
        self.errors: list[BaseException] = []
        self._looks = threading.Condition()
        self._looks_started = 0
        self._quiet_look = 0  # the number of the last look that found nothing to answer

    def decide(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        image = str(task["data"][TaskData.IMAGE])
        rng = random.Random(f"{self.seed}/{image}")
        size = rng.choice([(640, 480), (800, 600), (1024, 768)])
        box = rectangle(rng.uniform(0, 50), rng.uniform(0, 50), 20, 30, rng.choice(["Dog", "Cat"]), size)
        roll = rng.random()
        return (
            "skip" if roll < SKIPPED_TASKS else "hand" if roll < SKIPPED_TASKS + self.by_hand_share else "bulk"
        ), box

    def review_box(self, task: dict[str, Any]) -> dict[str, Any] | None:
        """The reviewer's answer to a review task: the labeling box moved 5 to 15 percent right and down, and for
        half of the images relabeled; None (a skip) for REVIEW_SKIPPED of them."""
        rng = random.Random(f"{self.seed}/review/{task['data'][TaskData.IMAGE]}")
        if rng.random() < REVIEW_SKIPPED:
            return None
        _how, box = self.decide(task)
        value = dict(box["value"])
        value["x"] += rng.uniform(5, 15)
        value["y"] += rng.uniform(5, 15)
        if rng.random() < 0.5:
            value["rectanglelabels"] = ["Cat" if value["rectanglelabels"] == ["Dog"] else "Dog"]
        return {**box, "value": value}

    def by_hand_answer(self, task: dict[str, Any], box: dict[str, Any], skipped: bool) -> None:
        self.api.request(
            "POST",
            f"/api/tasks/{task['id']}/annotations",
            body={"result": [] if skipped else [box], "was_cancelled": skipped, "lead_time": 2.0},
        )
        if skipped:
            self.skipped_images.add(str(task["data"][TaskData.IMAGE]))
        else:
            self.hand_boxes[str(task["data"][TaskData.IMAGE])] = box

    def review_answer(self, task: dict[str, Any]) -> None:
        box = self.review_box(task)
        self.api.request(
            "POST",
            f"/api/tasks/{task['id']}/annotations",
            body={"result": [] if box is None else [box], "was_cancelled": box is None, "lead_time": 3.0},
        )
        self.reviews[str(task["data"][TaskData.IMAGE])] = box

    def accept_predictions(self, tasks: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.bulk_images.update(str(task["data"][TaskData.IMAGE]) for task, _box in tasks)
        predictions = [{"task": task["id"], "result": [box], "model_version": "chaos"} for task, box in tasks]
        self.api.request("POST", f"/api/projects/{self.project_id}/import/predictions", body=predictions)
        self.api.request(
            "POST",
            "/api/dm/actions",
            query={"id": "predictions_to_annotations", "project": self.project_id},
            # Their own predictions only: a task may hold the detector's too, and each would become an annotation.
            body={
                "selectedItems": {"all": False, "included": [task["id"] for task, _box in tasks]},
                "model_version": "chaos",
            },
        )

    def new_tasks(self, project_id: int, seen: set[int]) -> list[dict[str, Any]]:
        """The project's tasks made since the last look (ids only grow) that nobody answered: one page, not the
        whole project, each time."""
        last = max(seen, default=0)
        query = {
            "filters": {
                "conjunction": "and",
                "items": [{"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": last}],
            },
            "ordering": ["tasks:id"],
        }
        answer = self.api.request(
            "GET",
            "/api/tasks",
            query={"project": project_id, "page_size": 5000, "query": json.dumps(query), "resolve_uri": "false"},
        )
        return [task for task in answer.get("tasks", []) if answers(task) == 0 and int(task["id"]) not in seen]

    def answer_open_tasks(self, pool: ThreadPoolExecutor) -> int:
        open_tasks = self.new_tasks(self.project_id, self.answered)
        open_reviews = [] if self.review_project is None else self.new_tasks(self.review_project, self.reviews_answered)
        bulk: defaultdict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        work = [partial(self.review_answer, task) for task in open_reviews]
        for task in open_tasks:
            how, box = self.decide(task)
            if how == "bulk":
                bulk[str(task["data"][TaskData.JOB])].append((task, box))
            else:
                work.append(partial(self.by_hand_answer, task, box, how == "skip"))
                self.by_hand += 1
        for tasks in bulk.values():
            work.append(partial(self.accept_predictions, tasks))
            self.in_bulk += len(tasks)
        list(pool.map(lambda step: step(), work))
        self.answered.update(int(task["id"]) for task in open_tasks)
        self.reviews_answered.update(int(task["id"]) for task in open_reviews)
        return len(open_tasks) + len(open_reviews)

    def run(self) -> None:
        with ThreadPoolExecutor(ANNOTATORS) as pool:
            try:
                while not self.stop.is_set():
                    with self._looks:
                        self._looks_started += 1
                        look = self._looks_started
                    if self.answer_open_tasks(pool) == 0:
                        with self._looks:
                            self._quiet_look = look
                            self._looks.notify_all()
                        self.wake.wait(POLL_SECONDS)
                        self.wake.clear()
            except BaseException as error:  # reported by the test
                self.errors.append(error)
            finally:
                with self._looks:
                    self._quiet_look = sys.maxsize
                    self._looks.notify_all()

    def caught_up(self, timeout: float = 120.0) -> None:
        """Until a look that began after this call found nothing left to answer (or the annotators stopped)."""
        with self._looks:
            now = self._looks_started
            self.wake.set()
            if not self._looks.wait_for(lambda: self._quiet_look > now, timeout):
                raise TimeoutError(f"the annotators still find tasks to answer after {timeout} s")


class JobEventsInstances:
    """The job-events function's Lambda instances. Lambda gives an instance one request at a time, so its backend's
    caches (what describe_job read, for take_step and read_results) are its own: concurrent webhooks go to separate
    instances, and an idle one is used again, warm. Each is built as the function builds itself
    (job_events.build_finisher), its Label Studio client through the faulty proxy (the URL resource) with the
    chaos client's timeouts. `parts` stands in for job_events._parts: the instance of the request in this thread."""

    def __init__(self, build: Callable[[], tuple[JobFinisher, LabelStudioBackend]]) -> None:
        self._build = build
        self._idle: list[tuple[JobFinisher, LabelStudioBackend]] = []
        self._lock = threading.Lock()
        self._current = threading.local()
        self.backends: list[LabelStudioBackend] = []

    @contextmanager
    def invocation(self) -> Iterator[None]:
        with self._lock:
            instance = self._idle.pop() if self._idle else None
        if instance is None:
            instance = self._build()
            with self._lock:
                self.backends.append(instance[1])
        self._current.instance = instance
        try:
            yield
        finally:
            self._current.instance = None
            with self._lock:
                self._idle.append(instance)

    def parts(self) -> tuple[JobFinisher, LabelingBackend]:
        instance = getattr(self._current, "instance", None)
        assert instance is not None, "the job-events function ran outside an invocation"
        return instance


class Steps:
    """The job-events function's review steps (LabelStudioBackend.take_step): attempts, and those that failed (the
    next signal or reconciler tick takes the step again)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts = 0
        self.failed: Counter[str] = Counter()

    def counted(self, take_step: Callable[[JobDescription], str]) -> Callable[[JobDescription], str]:
        def step(description: JobDescription) -> str:
            with self.lock:
                self.attempts += 1
            try:
                return take_step(description)
            except Exception as error:
                with self.lock:
                    self.failed[type(error).__name__] += 1
                raise

        return step


class WebhookLine:
    """The network between Label Studio and the job-events function's URL: a seeded share of the webhooks
    is lost; the rest reach the real handler, concurrently, as a function URL invokes Lambda, each on an
    instance of its own (`instances`). Powertools' metrics and logger decorators keep per-invocation state in
    module globals, which concurrent threads of one process would share (separate Lambda invocations do not): the
    handler runs without them."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.instances: JobEventsInstances | None = None  # set before Label Studio sends the first webhook
        self.sent = 0
        self.lost = 0
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.handling = 0
        self.last_seen = time.monotonic()

    @contextmanager
    def serve(self) -> Iterator[str]:
        line = self
        handle = inspect.unwrap(job_events.lambda_handler)

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with line.lock:
                    line.sent += 1
                    lost = random.Random(f"{line.seed}/webhook/{line.sent}").random() < WEBHOOKS_LOST
                    line.lost += lost
                    line.handling += not lost
                    line.last_seen = time.monotonic()
                if lost:
                    self.close_connection = True
                    return
                try:
                    assert line.instances is not None
                    with line.instances.invocation():
                        answer = handle(function_url_event(body, dict(self.headers)), FakeContext())
                finally:
                    with line.lock:
                        line.handling -= 1
                        line.last_seen = time.monotonic()
                with line.lock:
                    line.statuses[answer["statusCode"]] += 1
                try:
                    self.send_response(answer["statusCode"])
                    self.end_headers()
                except OSError:
                    pass  # Label Studio stopped waiting after its webhook timeout (1 s)

            def log_message(self, *args: Any) -> None:
                pass

        with serve_on_loopback(Receiver) as server:
            yield f"http://127.0.0.1:{server.server_port}/"

    def wait_until_quiet(self, seconds: float = 2.0, timeout: float = 120.0) -> None:
        """Until no webhook is being handled and none arrived for `seconds`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.handling == 0 and time.monotonic() - self.last_seen > seconds:
                    return
            time.sleep(0.2)


def reconcile(instances: JobEventsInstances) -> None:
    """One reconciler tick, on an instance of its own (Powertools' decorators left out, as for the webhooks)."""
    schedule = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "resources": []}
    with instances.invocation():
        inspect.unwrap(job_events.lambda_handler)(schedule, FakeContext())


def check_prelabels(
    tasks: list[dict[str, Any]], proposals: dict[ImageRef, Proposal], read: set[ImageRef], s3: Any, seed: int
) -> None:
    """The launchers read every proposals file (the stage was done before they ran); the tasks carry what they read:
    a held-out mark, or a proposed mark with one prediction of the model's version holding its boxes (in percent of
    the image), and no mark and no prediction where there was no file. Each job's prelabel-report.json counts its
    tasks the same way."""
    assert read == set(proposals), f"seed {seed}: the launchers read {len(read)} of {len(proposals)} proposals files"
    marks: defaultdict[str, Counter[str | None]] = defaultdict(Counter)
    for task in tasks:
        source_ref, version = str(task["data"][TaskData.IMAGE]), str(task["data"][TaskData.VERSION])
        image = ImageRef(BUCKET, source_ref.removeprefix(f"s3://{BUCKET}/"), version)
        mark = task["data"].get(TaskData.PRELABEL)
        marks[str(task["data"][TaskData.JOB])][mark] += 1
        proposal = proposals.get(image)
        wanted = None if proposal is None else PrelabelMark.HELD_OUT if proposal.held_out else PrelabelMark.PROPOSED
        assert mark == wanted, f"seed {seed}: {image.image_id} is marked {mark!r}, its proposals say {wanted!r}"
        shown = [found for found in task.get("predictions") or [] if found.get("model_version") == MODEL_VERSION]
        if mark == PrelabelMark.PROPOSED:
            assert proposal is not None and len(shown) == 1, (
                f"seed {seed}: {image.image_id} has {len(shown)} predictions"
            )
            regions = [
                (region["value"]["x"], region["value"]["y"], region["value"]["width"], region["value"]["height"])
                for region in shown[0]["result"]
            ]
            width, height = proposal.image_width / 100, proposal.image_height / 100
            boxes = [(b.left / width, b.top / height, b.width / width, b.height / height) for b in proposal.boxes]
            assert len(regions) == len(boxes), f"seed {seed}: {image.image_id}'s regions"
            for region, box in zip(regions, boxes, strict=True):
                assert region == pytest.approx(box, abs=1e-6), f"seed {seed}: {image.image_id}: {region} for {box}"
        else:
            assert not shown, f"seed {seed}: {image.image_id} has a prediction without proposals"
    for job, counted in marks.items():
        key = f"exports/{job}/{PRELABEL_REPORT_FILE}"
        report = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["images"]
        assert report["images"] == report["proposed"] + report["heldOut"] + report["withoutProposals"], report
        assert (report["images"], report["proposed"], report["heldOut"], report["withoutProposals"]) == (
            counted.total(),
            counted[PrelabelMark.PROPOSED],
            counted[PrelabelMark.HELD_OUT],
            counted[None],
        ), f"seed {seed}: {key} counts {report}, the job's tasks {dict(counted)}"


def pixel_box(result: dict[str, Any]) -> tuple[str, list[float]]:
    """A rectangle result (percent) as its label and COCO bbox (pixels)."""
    value, width, height = result["value"], result["original_width"], result["original_height"]
    box = [value["x"] * width / 100, value["y"] * height / 100, value["width"] * width / 100]
    return value["rectanglelabels"][0], [*box, value["height"] * height / 100]


def check_review(
    api: LabelStudioApi,
    settings: PipelineSettings,
    review_project: int,
    tasks: list[dict[str, Any]],
    annotators: Annotators,
    cocos: dict[str, dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
    s3: Any,
    seed: int,
) -> str:
    """Exactly once for review tasks: each image version that review.sampled() picks among those labeled (by hand:
    the others failed, skipped or accepted unseen) has one review task, of its job and labeling task, showing the
    annotator's box and answered once; no other image has one. Each job was exported after its review tasks were
    answered (its tasks.jsonl, written by that export, carries each of them with its answer), with the reviewer's
    box for a reviewed image and the annotator's for the rest; its summary counts the images reviewed. Returns the
    figures."""
    assert review_project_ids(api, settings) == [review_project], f"seed {seed}: a second review project"
    labeling = {(str(t["data"][TaskData.IMAGE]), str(t["data"][TaskData.VERSION])): t for t in tasks}
    wanted = {
        identity
        for identity in labeling
        if identity[0] in annotators.hand_boxes and sampled(identity[0], identity[1], REVIEW_SHARE)
    }
    review_tasks = list(api.tasks(review_project, {}, with_annotations=True))
    made = Counter(task_identity(task) for task in review_tasks)
    duplicated = {identity: count for identity, count in made.items() if count > 1}
    assert not duplicated, f"seed {seed}: {len(duplicated)} images have several review tasks: {duplicated}"
    missing, extra = wanted - set(made), set(made) - wanted
    assert not missing and not extra, f"seed {seed}: review tasks missing for {missing}, made for {extra}"
    for task in review_tasks:
        identity = task_identity(task)
        labeled, data = labeling[identity], task["data"]
        assert (data[TaskData.JOB], data[ReviewData.REASON], int(data[ReviewData.LABELING_TASK])) == (
            labeled["data"][TaskData.JOB],
            ReviewReason.SAMPLED,
            int(labeled["id"]),
        ), f"seed {seed}: review task {task['id']}'s data {data}"
        (shown,) = [found for found in task["predictions"] if found["model_version"] == CONSOLIDATED_VERSION]
        (region,) = shown["result"]
        hand = pixel_box(annotators.hand_boxes[identity[0]])
        assert pixel_box(region) == (hand[0], pytest.approx(hand[1], abs=1e-6)), f"seed {seed}: {identity} shown"
        annotations = task.get("annotations") or []
        assert len(annotations) == 1, f"seed {seed}: review task {task['id']} has {len(annotations)} answers"
        assert annotations[0]["was_cancelled"] == (annotators.reviews[identity[0]] is None), f"seed {seed}: {identity}"

    reviewed: Counter[str] = Counter()
    for job, coco in cocos.items():
        names = {image["id"]: image["source_ref"] for image in coco["images"]}
        labels = {category["id"]: category["name"] for category in coco["categories"]}
        exported: defaultdict[str, list[tuple[str, list[float]]]] = defaultdict(list)
        for annotation in coco["annotations"]:
            exported[names[annotation["image_id"]]].append((labels[annotation["category_id"]], annotation["bbox"]))
        lines = [
            json.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=f"output/{job}/tasks.jsonl")["Body"].read().splitlines()
        ]
        with_review = set()
        for line in lines:
            identity = (str(line["data"][TaskData.IMAGE]), str(line["data"][TaskData.VERSION]))
            if REVIEW_KEY in line:
                with_review.add(identity)
                count = len(line[REVIEW_KEY].get("annotations") or [])
                assert count == 1, (
                    f"seed {seed}: job {job} was exported with {identity}'s review answered {count} times"
                )
            drawn = annotators.hand_boxes.get(identity[0])
            if drawn is None:
                continue
            answer = annotators.reviews.get(identity[0]) if identity in wanted else None
            reviewed[job] += answer is not None
            label, bbox = pixel_box(drawn if answer is None else answer)
            assert exported[identity[0]] == [(label, pytest.approx(bbox, abs=1e-3))], (
                f"seed {seed}: job {job} exported {exported[identity[0]]} for {identity[0]}, "
                f"{'the reviewer' if answer is not None else 'the annotator'} drew {(label, bbox)}"
            )
        job_wanted = {identity for identity in wanted if labeling[identity]["data"][TaskData.JOB] == job}
        assert with_review == job_wanted, (
            f"seed {seed}: job {job} exported with reviews {with_review}, not {job_wanted}"
        )
        counted = summaries[job].get("review", {}).get("images", 0)
        assert counted == reviewed[job], f"seed {seed}: job {job}'s summary counts {counted} images reviewed"
    skipped = sum(1 for identity in wanted if annotators.reviews[identity[0]] is None)
    jobs = {labeling[identity]["data"][TaskData.JOB] for identity in wanted}
    return (
        f"{len(wanted)} of {len(annotators.hand_boxes)} images labeled by hand sampled, in {len(jobs)} of "
        f"{len(cocos)} jobs: {len(review_tasks)} review tasks, {reviewed.total()} reviewed, {skipped} skipped"
    )


def notifications(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize("seed", SEEDS)
def test_label_studio_path_survives_chaos(
    seed: int,
    skip_log: SkipLog,
    label_studio: LabelStudioServer,
    moto_s3_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    uploads = make_uploads(rng, UPLOADS, LIMITS)
    title = f"Chaos seed {seed} {uuid.uuid4().hex[:6]}"
    prelabeled = seed in PRELABEL_SEEDS
    reviewing = seed in REVIEW_SEEDS
    options: dict[str, Any] = {"prelabel": PRELABEL} if prelabeled else {}
    if reviewing:
        options["review"] = {"sampleShare": REVIEW_SHARE}
    settings_text = settings_json(title, maxImagesPerJob=JOB_SIZE, **options)
    settings = validate_json(settings_model("label-studio"), settings_text)
    direct = LabelStudioApi(label_studio.url, label_studio.token)
    # Label Studio presigns image links through moto's server; the pipeline's own AWS is moto in-process.
    storage_bucket = f"chaos-{seed}-{uuid.uuid4().hex[:6]}"
    boto3.client("s3", region_name=REGION, endpoint_url=moto_s3_server.url).create_bucket(Bucket=storage_bucket)
    line = WebhookLine(seed)

    with (
        mock_aws(),
        line.serve() as webhook_url,
        fault_proxy(label_studio.url, seed, LABEL_STUDIO_FAULTS, HANG_SECONDS) as (proxy_url, faults_log),
    ):
        project = ensure_project(
            direct,
            settings,
            bucket=storage_bucket,
            region=REGION,
            webhook_url=webhook_url,
            webhook_secret=WEBHOOK_SECRET,
            s3_endpoint=moto_s3_server.url,
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **create_table_arguments())
        sqs = boto3.client("sqs", region_name=REGION)
        inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="results")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        token_arn = secrets.create_secret(Name="api-token", SecretString=label_studio.token)["ARN"]
        webhook_arn = secrets.create_secret(Name="webhook", SecretString=WEBHOOK_SECRET)["ARN"]
        resources = {
            Resources.URL: proxy_url,
            Resources.BUCKET: BUCKET,
            Resources.API_TOKEN_SECRET_ARN: token_arn,
            Resources.WEBHOOK_SECRET_ARN: webhook_arn,
        }
        for name, value in {
            Env.BUCKET_NAME: BUCKET,
            Env.LEDGER_TABLE_NAME: TABLE,
            Env.RESULTS_TOPIC_ARN: topic,
            Env.PIPELINE_SETTINGS: settings_text,
            Env.BACKEND_RESOURCES: json.dumps(resources),
            # A step whose outcome is unknown keeps the job's lease until it lapses (the stack: the function's
            # timeout + 60 s); here it lapses after JOB_LEASE_SECONDS, longer than the proxy's longest hang.
            Env.JOB_LEASE_SECONDS: str(JOB_LEASE_SECONDS),
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

        dynamodb_lock = threading.Lock()

        def job_events_client(service: str, **options: Any) -> Any:
            client = boto3.client(service, **options)
            return Serialized(client, dynamodb_lock) if service == "dynamodb" else client

        steps = Steps()

        def job_events_instance() -> tuple[JobFinisher, LabelStudioBackend]:
            # The job-events function's Label Studio calls go through the faulty proxy too (its URL resource).
            finisher, events_backend = job_events.build_finisher(job_events_client)
            assert isinstance(events_backend, LabelStudioBackend)
            events_backend.api = LabelStudioApi(proxy_url, label_studio.token, timeout=CLIENT_TIMEOUT)
            monkeypatch.setattr(events_backend, "take_step", steps.counted(events_backend.take_step))
            return finisher, events_backend

        instances = JobEventsInstances(job_events_instance)
        line.instances = instances
        monkeypatch.setattr(job_events, "_parts", instances.parts)

        queue = SimulatedQueue(rng)
        poison = {f"poison-{n}": body for n, body in enumerate(POISON)}
        invocation_faults = InvocationFaults()
        messages = deliveries(rng, uploads, poison)
        prelabel = reads = None
        if prelabeled:
            images = UploadedImages(seed, uploads)
            bucket = Bucket(s3, images, proposals_in_memory=False)
            # The pre-label stage forwards every event to the launcher's queue, before the launchers run.
            prelabel = PrelabelRun(seed, rng, uploads, bucket, images, queue, invocation_faults, LIMITS)
            prelabel.drain(rng, messages)
            reads = ProposalReads(bucket, images.scenes)
        else:
            queue.waiting = messages
        flaky_s3 = Flaky(s3 if reads is None else reads, invocation_faults, 0.01, serialize=False)
        launcher_s3: Any = flaky_s3
        if reads is not None:
            launcher_s3 = ProposalsApart(
                flaky_s3, Flaky(reads, invocation_faults, PROPOSAL_READ_FAULTS, serialize=False)
            )
        flaky_dynamodb = Flaky(dynamodb, invocation_faults, 0.02, serialize=True, lock=dynamodb_lock)
        clock = SimulatedClock()
        killed: list[str] = []
        kill_lock = threading.Lock()
        backends: list[LabelStudioBackend] = []
        why_retried: defaultdict[str, list[str]] = defaultdict(list)

        def environment() -> handler.Environment:
            backend = LabelStudioBackend(
                LabelStudioApi(proxy_url, label_studio.token, timeout=CLIENT_TIMEOUT),
                flaky_s3,
                settings,
                bucket=BUCKET,
            )
            backends.append(backend)
            launcher = Launcher(
                s3_client=launcher_s3,
                ledger=KillAfterImport(flaky_dynamodb, TABLE, killed, kill_lock),
                backend=backend,
                bucket=BUCKET,
                settings=settings,
                clock=clock.now,
                sleep=lambda _seconds: time.sleep(0.02),
            )
            return handler.Environment(
                BUCKET, "https://sqs.example.com/dlq", flaky_s3, DeadLetterClient(queue), LIMITS, launcher
            )

        def invocation(batch: list[Message], place: str) -> None:
            invocation_faults.rng = random.Random(f"{seed}/{place}")
            event = {"Records": [m.record() for m in batch]}
            try:
                verdict = handler.decide_messages(environment(), event)
            except Killed:
                queue.settle(batch, {m.message_id for m in batch})  # nothing was deleted
                return
            for message_id, reason in verdict.items():
                if reason is not None:
                    why_retried[message_id].append(reason)
            queue.settle(batch, {message_id for message_id, reason in verdict.items() if reason is not None})

        review_project = None
        if reviewing:
            (review_project,) = review_project_ids(direct, settings)  # the deployment made it
        annotators = Annotators(
            direct,
            project.project_id,
            seed,
            by_hand=BY_HAND_WITH_REVIEW if reviewing else BY_HAND,
            review_project=review_project,
        )
        annotating = threading.Thread(target=annotators.run, name="annotators", daemon=True)
        annotating.start()
        ledger = Ledger(dynamodb, TABLE)
        ticks = 0
        try:

            def between_rounds() -> None:
                clock.pass_visibility_timeout()
                faults_log.wait_until_upstream_idle()

            rounds, redriven = drain(queue, rng, invocation, seed, concurrency=CONCURRENCY, after_round=between_rounds)
            launched = time.monotonic()
            valid = {(f"s3://{BUCKET}/{u.key}", u.version) for u in uploads if u.expected_skip is None}
            deadline = time.monotonic() + 300
            while len(annotators.answered) < len(valid) and time.monotonic() < deadline and not annotators.errors:
                time.sleep(0.5)
            line.wait_until_quiet()
            annotated = time.monotonic()
            # The reconciler ticks while the reviewers still answer the review tasks that its ticks (or the webhooks)
            # make; after each tick, until they have answered all there are and their webhooks were handled.
            max_ticks = MAX_RECONCILER_TICKS_WITH_REVIEW if reviewing else MAX_RECONCILER_TICKS
            while ledger.open_jobs(datetime.now(UTC) - timedelta(days=1)) and ticks < max_ticks:
                ticks += 1
                at_once = RECONCILERS_AT_ONCE if reviewing else 1
                with ThreadPoolExecutor(at_once, thread_name_prefix=f"reconciler-{ticks}") as reconcilers:
                    list(reconcilers.map(lambda _n: reconcile(instances), range(at_once)))
                if reviewing and not annotators.errors:
                    # Label Studio sends an answer's webhook before it answers the POST: once the annotators have
                    # nothing left to answer, every webhook of theirs has arrived.
                    annotators.caught_up()
                    line.wait_until_quiet(seconds=0.2)
        finally:
            annotators.stop.set()
            annotators.wake.set()
            annotating.join()
        assert not annotators.errors, f"seed {seed}: the annotators failed: {annotators.errors[0]!r}"

        tasks = list(direct.tasks(project.project_id, {}, with_annotations=True))
        identities = Counter((str(t["data"][TaskData.IMAGE]), str(t["data"][TaskData.VERSION])) for t in tasks)
        duplicated = {identity: n for identity, n in identities.items() if n > 1}
        assert not duplicated, f"seed {seed}: {len(duplicated)} image versions have several tasks"
        lost, extra = valid - set(identities), set(identities) - valid
        assert not lost and not extra, f"seed {seed}: {len(lost)} images lost, {len(extra)} tasks not from uploads"

        jobs = {str(t["data"][TaskData.JOB]) for t in tasks}
        statuses = {job["name"]: job["status"] for job in ledger.jobs(10_000)}
        assert set(statuses) == jobs, f"seed {seed}: the ledger's jobs are not the tasks' jobs"
        unfinished = {job: status for job, status in statuses.items() if status != "COMPLETED"}
        assert not unfinished, f"seed {seed}: jobs left unfinished after {ticks} reconciler ticks: {unfinished}"

        summaries = notifications(sqs, inbox)
        exported = Counter(str(summary["job"]) for summary in summaries)
        assert exported == Counter(dict.fromkeys(jobs, 1)), f"seed {seed}: exports per job {exported}"
        for job in jobs:
            versions = s3.list_object_versions(Bucket=BUCKET, Prefix=f"exports/{job}/coco.json").get("Versions", [])
            assert len(versions) == 1, f"seed {seed}: exports/{job}/coco.json was written {len(versions)} times"
        cocos = {
            job: json.loads(s3.get_object(Bucket=BUCKET, Key=f"exports/{job}/coco.json")["Body"].read()) for job in jobs
        }
        exported_images = {image["source_ref"] for coco in cocos.values() for image in coco["images"]}
        # Answers accepted in bulk with nobody looking end their job but label nothing: those images wait for people.
        answered_images = {image for image, _version in valid} - annotators.skipped_images - annotators.bulk_images
        assert len(exported_images) == len(answered_images), f"seed {seed}: exported images differ from answers"
        job_summaries = {
            job: json.loads(s3.get_object(Bucket=BUCKET, Key=f"exports/{job}/summary.json")["Body"].read())
            for job in jobs
        }
        unreviewed = {
            failed["sourceRef"]
            for summary in job_summaries.values()
            for failed in summary["failedObjects"]
            if failed["reason"] == UNREVIEWED_REASON
        }
        assert unreviewed == annotators.bulk_images, f"seed {seed}: answers made in bulk were exported as labels"

        assert killed and killed[0] in jobs and statuses[killed[0]] == "COMPLETED", f"seed {seed}: the kill"
        expected_skips = {(u.key, u.expected_skip) for u in uploads if u.expected_skip is not None}
        assert skip_log.skipped == expected_skips, f"seed {seed}: skips not accounted for"
        stuck = {m.message_id: (why, why_retried[m.message_id]) for m, why in queue.dead if m.body not in POISON}
        # A poison message can be dead-lettered twice: its invocation killed after sending it there.
        assert {m.body for m, _why in queue.dead} == set(POISON), f"seed {seed}: DLQ holds more: {stuck}"
        assert line.lost > 0 and line.statuses[200] > 0 and line.statuses[403] == 0, f"seed {seed}: {line.statuses}"
        injected = faults_log.counts
        assert injected["refused"] > 0 and injected["lost_answer"] > 0, f"seed {seed}: faults {injected}"
        assert flaky_s3.failures + flaky_dynamodb.failures > 0, f"seed {seed}: no AWS fault was injected"
        if review_project is not None:
            figures = check_review(direct, settings, review_project, tasks, annotators, cocos, job_summaries, s3, seed)
            duplicates = sum(backend.duplicates_deleted for backend in instances.backends)
            print(
                f"\nseed {seed}: review: {figures}; {steps.attempts} review step(s) taken, "
                f"{sum(steps.failed.values())} failed and retried {dict(steps.failed)}; {duplicates} duplicate review "
                f"task(s) deleted; {len(instances.backends)} job-events instance(s)"
            )
        if prelabel is not None and reads is not None:
            coverage = prelabel.coverage()
            check_prelabels(tasks, coverage.proposals, reads.read, s3, seed)
            print(f"\nseed {seed}: {coverage.line()}; without: {coverage.why()}\nseed {seed}: {prelabel.figures()}")
        print(
            f"\nseed {seed}: {len(uploads)} uploads, {len(valid)} images in {len(jobs)} jobs; {rounds} rounds, "
            f"{redriven} redriven; Label Studio faults {dict(injected)} of {faults_log.requests} requests; "
            f"{sum(b.duplicates_deleted for b in backends)} duplicate task(s) removed; webhooks {line.sent} sent, "
            f"{line.lost} lost, answered {dict(line.statuses)}; {ticks} reconciler tick(s); "
            f"{annotators.by_hand} answered by hand ({len(annotators.skipped_images)} skipped), "
            f"{annotators.in_bulk} in bulk; launch {launched - started:.1f} s"
            f"{'' if prelabel is None else f' (pre-label {prelabel.seconds:.1f} s)'}, "
            f"annotate {annotated - launched:.1f} s, "
            f"reconcile{' and review' if reviewing else ''} {time.monotonic() - annotated:.1f} s"
        )
