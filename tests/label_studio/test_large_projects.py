"""Label Studio slows down near 100,000 tasks in one project (upstream #9637): the deployment's work goes into
projects of at most projectTaskLimit tasks, its parts. Against the real server, with a limit of 10 tasks and
jobs of 4 images."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from labeling_pipeline.backends import JobRequest
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioNotFound
from labeling_pipeline.backends.label_studio.parts import list_parts, part_number, part_title
from labeling_pipeline.backends.label_studio.project import SECRET_HEADER
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend, task_data
from labeling_pipeline.backends.label_studio.settings import MAX_PROJECT_TITLE
from labeling_pipeline.images import ImageRef
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import (
    WEBHOOK_SECRET,
    CrashAfterImport,
    Pipeline,
    label_studio_pipeline,
    png,
    rectangle,
    resolved_image,
    secret_header,
)

LIMIT = 10
JOB_SIZE = 4
SMALL_PARTS = {"projectTaskLimit": LIMIT, "maxImagesPerJob": JOB_SIZE}
COPIED_FIELDS = ("description", "label_config", "expert_instruction", "maximum_annotations", "skip_queue")
STORAGE_FIELDS = ("bucket", "prefix", "regex_filter", "presign", "presign_ttl", "region_name", "s3_endpoint")


@pytest.fixture(scope="module")
def parts_server(
    label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabelStudioServer]:
    """A Label Studio server of this module's own: these tests delete projects, and SQLite (unlike
    PostgreSQL) gives a deleted project's id to the next project made, which the session's other tests
    would then get with what Label Studio still keeps about the old one."""
    with LabelStudioServer(tmp_path_factory.mktemp("label-studio-parts")) as server:
        yield server


@pytest.fixture
def world(
    moto_s3_server: MotoServer, parts_server: LabelStudioServer, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """A deployment of its own per test (its parts are what the test looks at), titled after the test."""
    title = request.node.name.removeprefix("test_").replace("_", " ")[:30].strip()
    with label_studio_pipeline(moto_s3_server, parts_server, title, **SMALL_PARTS) as pipeline:
        yield pipeline


def upload(pipeline: Pipeline, folder: str, count: int = JOB_SIZE) -> dict[ImageRef, bytes]:
    bodies = {}
    for index in range(count):
        key, body = f"images/{folder}/{index}.png", png(40 + index, 30)
        bodies[ImageRef(pipeline.bucket, key, pipeline.upload(key, body))] = body
    return bodies


def launch(
    pipeline: Pipeline, refs: list[ImageRef], ls: LabelStudioBackend | None = None, ledger: Ledger | None = None
) -> dict[ImageRef, Any]:
    return pipeline.launcher(ledger=ledger, backend=ls).launch(refs)


def start_job(
    pipeline: Pipeline, folder: str, ls: LabelStudioBackend | None = None
) -> tuple[str, dict[ImageRef, bytes]]:
    """A new job of JOB_SIZE images, through the launcher; its name and its images."""
    bodies = upload(pipeline, folder)
    outcomes = launch(pipeline, list(bodies), ls)
    assert all(outcome.ok for outcome in outcomes.values()), outcomes
    (job,) = {outcome.job_name for outcome in outcomes.values()}
    return job, bodies


def tasks_by_project(pipeline: Pipeline) -> dict[int, list[dict[str, Any]]]:
    """Every task of every project with one of the deployment's part titles."""
    return {
        part.id: list(pipeline.api.tasks(part.id, {}, with_annotations=False))
        for part in list_parts(pipeline.api, pipeline.title)
    }


def projects_of_jobs(pipeline: Pipeline) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for project_id, tasks in tasks_by_project(pipeline).items():
        for task in tasks:
            found.setdefault(task["data"]["job"], set()).add(project_id)
    return found


def assert_one_task_per_image(pipeline: Pipeline, refs: list[ImageRef]) -> None:
    counts = dict.fromkeys((ref.source_ref for ref in refs), 0)
    for tasks in tasks_by_project(pipeline).values():
        for task in tasks:
            counts[task["data"]["image"]] = counts.get(task["data"]["image"], 0) + 1
    assert set(counts.values()) == {1}, counts


def test_part_titles_stay_within_label_studios_50_characters_and_are_read_back() -> None:
    assert part_title("Bounding boxes", 1) == "Bounding boxes"
    assert part_title("Bounding boxes", 2) == "Bounding boxes (part 2)"
    longest = "x" * MAX_PROJECT_TITLE
    for number in (2, 10, 12_345):
        title = part_title(longest, number)
        assert len(title) == MAX_PROJECT_TITLE and title.endswith(f" (part {number})")
        assert part_number(longest, title) == number
    assert part_number("Cars", "Cars") == 1 and part_number("Cars", "Cars (part 3)") == 3
    # Not parts of "Cars": another deployment's title, part 1 or a zero-padded number spelled out.
    for other in ("Cars 2", "Cars (part 1)", "Cars (part 02)", "Trucks (part 2)", "Cars (part 2) (part 2)"):
        assert part_number("Cars", other) is None


def test_jobs_roll_over_into_new_parts_that_copy_the_first_and_no_part_passes_the_limit(world: Pipeline) -> None:
    ls = world.backend()
    jobs = [start_job(world, f"roll/{index}", ls) for index in range(5)]
    assert ls.jobs_moved == 0  # each job went straight to its part: none imported twice
    parts = list_parts(world.api, world.title)
    assert [(part.number, part.task_number) for part in parts] == [(1, 8), (2, 8), (3, 4)]
    assert parts[0].id == world.project_id  # part 1 is the project the deployment made
    titles = [world.api.project(part.id)["title"] for part in parts]
    assert titles == [world.title, f"{world.title} (part 2)", f"{world.title} (part 3)"]
    where = projects_of_jobs(world)
    assert [where[job] for job, _ in jobs] == [
        {parts[0].id},
        {parts[0].id},
        {parts[1].id},
        {parts[1].id},
        {parts[2].id},
    ]
    assert_one_task_per_image(world, [ref for _, bodies in jobs for ref in bodies])
    # The ledger keeps the part's page as the job's input.
    item = world.client("dynamodb").get_item(
        TableName=world.environment[Env.LEDGER_TABLE_NAME], Key={"pk": {"S": f"job#{jobs[4][0]}"}}
    )
    assert item["Item"]["manifest_uri"]["S"] == f"{world.label_studio.url}/projects/{parts[2].id}/data"

    first = world.api.project(parts[0].id)
    (first_storage,) = world.api.s3_import_storages(parts[0].id)
    (first_hook,) = world.api.webhooks(parts[0].id)
    for part in parts[1:]:
        project = world.api.project(part.id)
        assert {key: project[key] for key in COPIED_FIELDS} == {key: first[key] for key in COPIED_FIELDS}
        (storage,) = world.api.s3_import_storages(part.id)
        assert {key: storage[key] for key in STORAGE_FIELDS} == {key: first_storage[key] for key in STORAGE_FIELDS}
        (hook,) = world.api.webhooks(part.id)
        assert (hook["url"], hook["headers"], sorted(hook["actions"])) == (
            first_hook["url"],
            {SECRET_HEADER: WEBHOOK_SECRET},
            sorted(first_hook["actions"]),
        )
    # A worker's browser opens a part-3 task's image through the storage the launcher copied.
    job, bodies = jobs[4]
    task = next(iter(world.api.tasks(parts[2].id, {"job": job}, with_annotations=False)))
    ref = next(ref for ref in bodies if ref.source_ref == task["data"]["image"])
    assert resolved_image(world, task) == bodies[ref]


def test_a_retried_job_stays_in_the_part_that_holds_its_tasks(world: Pipeline) -> None:
    crashed = list(upload(world, "retry/crashed"))
    crashing = CrashAfterImport(world.client("dynamodb"), world.environment[Env.LEDGER_TABLE_NAME])
    assert all(not outcome.ok and outcome.retryable for outcome in launch(world, crashed, ledger=crashing).values())
    start_job(world, "retry/second")  # part 1: 8 tasks
    # Another job whose import died half-way: 2 of its 4 tasks are in part 1.
    partial = list(upload(world, "retry/partial"))
    partial_job = "lsbox-partial-000000000000"
    world.api.import_tasks(world.project_id, [{"data": task_data(ref, partial_job)} for ref in partial[:2]])
    third, _ = start_job(world, "retry/third")  # 10 + 4 > 10: part 2
    part_1, part_2 = (part.id for part in list_parts(world.api, world.title))
    assert projects_of_jobs(world)[third] == {part_2}

    # SQS's redelivery of the crashed job: its tasks are found in part 1 and the job is marked there.
    outcomes = launch(world, crashed)
    assert all(outcome.ok for outcome in outcomes.values())
    (job,) = {outcome.job_name for outcome in outcomes.values()}
    assert world.ledger.job_created(job) and projects_of_jobs(world)[job] == {part_1}
    # The half-imported job gets its other 2 tasks in part 1 too (a retry never splits a job; part 1 ends
    # 2 over the limit, the one way past it).
    uri = world.backend().create_job(JobRequest(partial_job, tuple(partial), world.bucket, "jobs/p/", "output/"))
    assert uri.endswith(f"/projects/{part_1}/data") and projects_of_jobs(world)[partial_job] == {part_1}
    assert [part.task_number for part in list_parts(world.api, world.title)] == [12, 4]
    assert_one_task_per_image(world, crashed + partial)


class RacingApi(LabelStudioApi):
    """Label Studio's API as one of two launchers sees it, held at `step` until the other gets there too:
    right before creating a project, or right before its first import."""

    def __init__(self, pipeline: Pipeline, barrier: threading.Barrier, step: str) -> None:
        super().__init__(pipeline.label_studio.url, pipeline.label_studio.token)
        self._barrier, self._step, self._held = barrier, step, False
        self.created: list[int] = []
        # Creates answered with an error (SQLite busy under load): the project may have been made all the same.
        self.create_failures = 0

    def _hold(self, step: str) -> None:
        if step == self._step and not self._held:
            self._held = True
            self._barrier.wait(timeout=60)

    def create_project(self, fields: Any) -> dict[str, Any]:
        # Held before the create: both launchers have listed the parts and found no room, whatever the load.
        self._hold("create")
        try:
            created = super().create_project(fields)
        except Exception:
            self.create_failures += 1
            raise
        self.created.append(int(created["id"]))
        return created

    def import_tasks(self, project_id: int, tasks: Any) -> list[int]:
        self._hold("import")
        return super().import_tasks(project_id, tasks)


def race(pipeline: Pipeline, step: str, batches: list[list[ImageRef]]) -> list[LabelStudioBackend]:
    """Two launchers at once, each with its batch, held together at `step`; a batch that failed on a
    transient error (SQLite busy) is delivered again, as SQS would, to the same launcher."""
    barrier = threading.Barrier(len(batches))
    backends = [pipeline.backend() for _ in batches]
    for ls in backends:
        ls.api = RacingApi(pipeline, barrier, step)
    errors: list[BaseException] = []
    retried: list[ImageRef] = []

    def run(ls: LabelStudioBackend, batch: list[ImageRef]) -> None:
        try:
            for _delivery in range(3):
                batch = [ref for ref, outcome in launch(pipeline, batch, ls).items() if not outcome.ok]
                if not batch:
                    return
            retried.extend(batch)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(backends, batches, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    if retried:
        assert all(outcome.ok for outcome in launch(pipeline, retried).values())
    return backends


def test_two_launchers_that_roll_over_at_once_end_with_one_new_part(world: Pipeline) -> None:
    start_job(world, "race/a")
    start_job(world, "race/b")  # part 1 is at 8: neither batch below fits
    batches = [list(upload(world, "race/c")), list(upload(world, "race/d"))]
    backends = race(world, "create", batches)
    parts = list_parts(world.api, world.title)
    # Both made a part 2; only the lowest id is left, the others deleted, empty. (On SQLite, Label Studio
    # may replay a create whose first try met a locked database, DatabaseIsLockedRetryMiddleware in
    # label_studio/core/middleware.py, and make a third: the same rule keeps the lowest.)
    racing = [ls.api for ls in backends if isinstance(ls.api, RacingApi)]
    made = sorted(project for api in racing for project in api.created)
    assert len(made) + sum(api.create_failures for api in racing) >= 2 and made
    assert [(part.number, part.task_number) for part in parts] == [(1, 8), (2, 8)] and parts[1].id <= made[0]
    for project in set(made) - {parts[1].id}:
        with pytest.raises(LabelStudioNotFound):
            world.api.project(project)
    where = projects_of_jobs(world)
    racers = {task["data"]["job"] for task in world.api.tasks(parts[1].id, {}, with_annotations=False)}
    assert len(where) == 4 and len(racers) == 2 and all(where[job] == {parts[1].id} for job in racers)
    assert_one_task_per_image(world, [ref for batch in batches for ref in batch])
    # Each set up the part's storage and webhook: one of each is left.
    assert len(world.api.s3_import_storages(parts[1].id)) == 1 and len(world.api.webhooks(parts[1].id)) == 1


def test_two_launchers_that_fill_a_part_at_once_keep_it_within_the_limit(world: Pipeline) -> None:
    start_job(world, "crowd/a")  # part 1 is at 4: either batch below fits, not both
    batches = [list(upload(world, "crowd/b")), list(upload(world, "crowd/c"))]
    backends = race(world, "import", batches)
    parts = list_parts(world.api, world.title)
    assert [(part.number, part.task_number) for part in parts] == [(1, 8), (2, 4)]
    assert sum(ls.jobs_moved for ls in backends) == 1  # the one imported second moved on
    where = projects_of_jobs(world)
    assert len(where) == 3 and all(len(projects) == 1 for projects in where.values())
    assert_one_task_per_image(world, [ref for batch in batches for ref in batch])


def test_a_part_2_job_ends_by_its_webhook_and_by_the_reconciler(world: Pipeline) -> None:
    first, _ = start_job(world, "ends/first")
    # A webhook from part 1 before part 2 exists: the job-events function has read the parts already.
    task = next(iter(world.tasks(first)))
    world.annotate(task["id"], [rectangle(10, 10, 20, 20, "Dog", (40, 30))])
    assert world.wait_for_webhooks(1)[-1].body == {"action": "not-terminal", "job": first}
    start_job(world, "ends/second")
    by_webhook, _ = start_job(world, "ends/by-webhook")
    part_2 = list_parts(world.api, world.title)[1].id
    *first_tasks, last_task = world.api.tasks(part_2, {"job": by_webhook}, with_annotations=False)
    world.drop_webhooks = True  # (quicker: the last answer's webhook is the one that ends the job)
    try:
        for task in first_tasks:
            world.annotate(task["id"], [rectangle(10, 10, 50, 50, "Cat", (40, 30))])
    finally:
        world.drop_webhooks = False
    calls = len(world.webhook_calls)
    world.annotate(last_task["id"], [rectangle(10, 10, 50, 50, "Cat", (40, 30))])
    (answer,) = world.wait_for_webhooks(calls + 1)[calls:]
    assert (answer.status, answer.body) == (200, {"action": "exported", "job": by_webhook})
    summary = json.loads(world.exports(by_webhook)["summary.json"])
    assert summary["imagesLabeled"] == JOB_SIZE

    # Webhooks lost: the reconciler finds the job in part 2.
    by_reconciler, _ = start_job(world, "ends/by-reconciler")
    world.drop_webhooks = True
    try:
        for task in world.api.tasks(part_2, {"job": by_reconciler}, with_annotations=False):
            world.annotate(task["id"], [], cancelled=True)
    finally:
        world.drop_webhooks = False
    assert by_reconciler in world.reconcile()["finished"]
    assert len(json.loads(world.exports(by_reconciler)["summary.json"])["failedObjects"]) == JOB_SIZE  # skipped

    # Part 2's id with the secret is let in; an id that is none of the deployment's parts is still refused.
    for project, status in ((part_2, 200), (part_2 + 1000, 403)):
        body: dict[str, Any] = {
            "action": "ANNOTATION_UPDATED",
            "project": {"id": project},
            "task": {"data": {"job": by_webhook}},
        }
        assert requests.post(world.webhook_url, json=body, headers=secret_header(), timeout=30).status_code == status


@pytest.fixture
def fresh_world(
    moto_s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """A deployment on a Label Studio server of its own. After this module's other tests, the same server
    does not record the label of an annotation in the new part's summary (created_labels), the record that
    keeps a label in use (project.used_labels): Label Studio's summary is a read-modify-write that SQLite
    does not lock (select_for_update is a no-op there), which PostgreSQL does."""
    with LabelStudioServer(tmp_path_factory.mktemp("label-studio-fresh")) as server:
        title = request.node.name.removeprefix("test_").replace("_", " ")[:30].strip()
        with label_studio_pipeline(moto_s3_server, server, title, **SMALL_PARTS) as pipeline:
            yield pipeline


def test_the_deployment_keeps_every_part_in_step(fresh_world: Pipeline) -> None:
    world = fresh_world
    start_job(world, "deploy/a")
    start_job(world, "deploy/b")
    in_part_2, _ = start_job(world, "deploy/c")
    part_1, part_2 = (part.id for part in list_parts(world.api, world.title))
    task = next(iter(world.api.tasks(part_2, {"job": in_part_2}, with_annotations=False)))
    world.drop_webhooks = True  # the webhook's secret changes below
    world.annotate(task["id"], [rectangle(10, 10, 20, 20, "Cat", (40, 30))])

    changed = world.settings.model_copy(
        update={"labels": ("Dog", "Bird"), "short_instructions": "Box every animal.", "presign_minutes": 30}
    )
    report = world.deploy(changed, "a-new-webhook-secret-0123456789")
    assert report.project_id == part_1
    assert report.changed == [
        "project fields expert_instruction, label_config",
        "S3 storage presign_ttl",
        "webhook headers",
        f"part 2 (project {part_2}): project fields expert_instruction, label_config",
        f"part 2 (project {part_2}): S3 storage presign_ttl",
        f"part 2 (project {part_2}): webhook headers",
    ]
    configs = {project: world.api.project(project)["label_config"] for project in (part_1, part_2)}
    assert all(
        '"Bird"' in config and "Box every animal." in world.api.project(project)["expert_instruction"]
        for project, config in configs.items()
    )
    # Cat stays where an annotation uses it (part 2), and leaves part 1.
    assert ['"Cat"' in configs[part_1], '"Cat"' in configs[part_2]] == [False, True]
    for project in (part_1, part_2):
        (hook,) = world.api.webhooks(project)
        assert hook["headers"] == {SECRET_HEADER: "a-new-webhook-secret-0123456789"}
        (storage,) = world.api.s3_import_storages(project)
        assert storage["presign_ttl"] == 30
    assert world.deploy(changed, "a-new-webhook-secret-0123456789").changed == []
