"""Label Studio as a labeling backend: a job (the pipeline's batch) is a set of tasks in one of the
deployment's projects (its parts, parts.py), each task one image version, tagged with its job in the task's
data.

Exactly once: Label Studio's import is not idempotent (the same image imported twice makes two tasks), so
starting a job is a reconciliation, under the launcher's start lease on the job (`idempotent_start` is
False): look for the job's tasks in every part, import only the image versions that have none, list again,
and delete any duplicate that a lapsed lease let through (the newer one, and only while nobody has answered
it). A crash between the import and the ledger's mark leaves tasks that the next attempt finds and keeps,
in the part that holds them: a job is never split over two parts.

Where a new job goes: into the newest part when its tasks fit under ``projectTaskLimit``, else into the
next part, which the launcher creates (project.create_part). Launchers that start jobs at the same moment
each see the part before the others' tasks are in it, and together they could pass the limit; so after
its import a new job checks its place: if the part holds more than the limit of tasks up to the job's
last task id (the tasks imported before its own, and its own), the job's tasks, none of them answered
yet, are deleted and the job goes to the next part. The job that came first stays. A job whose tasks were
found (a retry) stays where they are.

A job ends when each of its tasks has `workersPerImage` answers, a skip counting as an answer (the
project's ``skip_queue`` is IGNORE_SKIPPED, so Label Studio's own ``is_labeled`` means the same).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.backends import (
    JobDescription,
    JobEvent,
    JobRequest,
    PermanentBackendError,
    ResultsNotFound,
    StartOutcomeUnknown,
    TransientBackendError,
    UnauthenticatedJobEvent,
)
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioNotFound, LabelStudioUnavailable
from labeling_pipeline.backends.label_studio.parts import Part, canonical, list_parts
from labeling_pipeline.backends.label_studio.project import copy_setup, create_part
from labeling_pipeline.backends.label_studio.results import TaskData, read_tasks
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.image_header import HEADER_BYTES, image_size
from labeling_pipeline.images import ImageRef, split_s3_uri
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.names import OUTPUT_PREFIX, JobState
from labeling_pipeline.settings import PipelineSettings

# Tasks per import request: Label Studio imports a request in one transaction, and large ones time out
# behind a proxy (upstream issues #4549, #5873).
IMPORT_CHUNK = 500
TASKS_FILE = "tasks.jsonl"
# How many parts a new job tries before it stays where it is, over the limit (launchers racing for room).
MAX_PLACEMENTS = 5


class PartGone(TransientBackendError):
    """A part was deleted while a job was being put in it (a duplicate part, deleted by the launcher that
    made it): the next attempt puts the job in the part that is left."""


def task_data(image: ImageRef, job_name: str) -> dict[str, str]:
    return {TaskData.IMAGE: image.source_ref, TaskData.JOB: job_name, TaskData.VERSION: image.version}


def _identity(task: Mapping[str, Any]) -> tuple[str, str]:
    data = task.get("data") or {}
    return str(data.get(TaskData.IMAGE)), str(data.get(TaskData.VERSION))


def answer_counts(task: Mapping[str, Any]) -> tuple[int, int]:
    """The task's submitted and skipped answers. From its annotations when the listing carries them: the
    task's counters are updated after the annotations of a bulk action, and its webhook is sent before them
    (predictions_to_annotations in label_studio/data_manager/actions/predictions_to_annotations.py)."""
    annotations = task.get("annotations")
    if isinstance(annotations, list):
        skipped = sum(1 for annotation in annotations if annotation.get("was_cancelled"))
        return len(annotations) - skipped, skipped
    return int(task.get("total_annotations") or 0), int(task.get("cancelled_annotations") or 0)


def answers(task: Mapping[str, Any]) -> int:
    return sum(answer_counts(task))


class JobTasks:
    """One job's tasks as Label Studio holds them, counted the way `gt-labeling status` shows them."""

    def __init__(self, tasks: Sequence[Mapping[str, Any]], workers_per_image: int) -> None:
        self.tasks = list(tasks)
        counts = [answer_counts(task) for task in self.tasks]
        self.annotated = sum(1 for submitted, _skipped in counts if submitted > 0)
        self.skipped = sum(1 for submitted, skipped in counts if submitted == 0 and skipped > 0)
        # A task imported before workersPerImage changed keeps the overlap it was imported with.
        self.left = sum(1 for task in self.tasks if answers(task) < int(task.get("overlap") or workers_per_image))

    @property
    def ended(self) -> bool:
        return bool(self.tasks) and self.left == 0

    def version(self) -> str:
        """A fingerprint of every answer: it changes when an annotation is added, changed or deleted."""
        marks = sorted(
            (int(annotation.get("id") or 0), str(annotation.get("updated_at")), bool(annotation.get("was_cancelled")))
            for task in self.tasks
            for annotation in task.get("annotations") or []
        )
        return hashlib.sha256(json.dumps(marks).encode()).hexdigest()[:16]


class LabelStudioBackend:
    idempotent_start = False

    def __init__(
        self,
        api: LabelStudioApi,
        s3_client: Any,
        settings: PipelineSettings,
        *,
        bucket: str,
        webhook_secret: Callable[[], str] = lambda: "",
    ) -> None:
        assert isinstance(settings, LabelStudioSettings)
        self.api = api
        self._webhook_secret = webhook_secret
        self._s3 = s3_client
        self._settings = settings
        self._bucket = bucket
        self._parts: list[Part] | None = None
        self._ready: set[int] = set()  # parts >= 2 whose storage and webhook this instance has checked
        self._job_projects: dict[str, int] = {}  # job -> the project that holds its tasks
        self._read: dict[str, JobTasks] = {}
        self.duplicates_deleted = 0
        self.jobs_moved = 0

    def authenticate(self, event: JobEvent) -> None:
        secret = self._webhook_secret()
        presented = event.credential or ""
        if not secret or not hmac.compare_digest(presented.encode(), secret.encode()):
            raise UnauthenticatedJobEvent("the webhook did not present the pipeline's secret header")
        if event.project is not None and not self._is_part(event.project):
            raise UnauthenticatedJobEvent(f"the webhook is about project {event.project}, not this deployment's")

    # --- the projects ---------------------------------------------------------------------------
    def parts(self, *, refresh: bool = False) -> list[Part]:
        """The deployment's projects (every part, duplicates too), by part number then id."""
        if self._parts is None or refresh:
            title = self._settings.project_title
            found = list_parts(self.api, title)
            if 1 not in canonical(found):
                raise PermanentBackendError(
                    f"Label Studio at {self.api.base_url} has no project titled {title!r}: it was deleted, or the "
                    "deployment has not created it yet. Run `make deploy` (it creates the project, its storage "
                    "and its webhook), then redrive the dead-letter queue"
                )
            self._parts = found
        return self._parts

    def _is_part(self, project: str) -> bool:
        if project in {str(part.id) for part in self.parts()}:
            return True
        return project in {str(part.id) for part in self.parts(refresh=True)}  # a part made since

    def _tasks_in(self, project_id: int, job_name: str, *, with_annotations: bool) -> list[dict[str, Any]]:
        """The job's tasks in one project; none when the project is gone."""
        try:
            return list(self.api.tasks(project_id, {TaskData.JOB: job_name}, with_annotations=with_annotations))
        except LabelStudioNotFound:
            return []

    def _find_job(self, job_name: str, *, with_annotations: bool) -> tuple[int, list[dict[str, Any]]] | None:
        """The project that holds the job's tasks, and the tasks: the one this instance last saw them in,
        else every part, newest first (parts listed afresh: one may have been made since)."""
        known = self._job_projects.get(job_name)
        if known is not None:
            tasks = self._tasks_in(known, job_name, with_annotations=with_annotations)
            if tasks:
                return known, tasks
            del self._job_projects[job_name]
        for part in sorted(self.parts(refresh=True), key=lambda part: (-part.number, -part.id)):
            if part.id == known:
                continue
            tasks = self._tasks_in(part.id, job_name, with_annotations=with_annotations)
            if tasks:
                self._job_projects[job_name] = part.id
                return part.id, tasks
        return None

    def _job_tasks(self, job_name: str, *, with_annotations: bool) -> list[dict[str, Any]]:
        found = self._find_job(job_name, with_annotations=with_annotations)
        return found[1] if found else []

    # --- starting a job -------------------------------------------------------------------------
    def create_job(self, request: JobRequest) -> str:
        found = self._find_job(request.name, with_annotations=False)
        if found is not None:  # a retry: the rest goes where the job's tasks are
            project_id = found[0]
            self._import_missing(project_id, request, found[1])
        else:
            project_id = self._place(request)
        self._job_projects[request.name] = project_id
        return f"{self.api.base_url}/projects/{project_id}/data"

    def _place(self, request: JobRequest) -> int:
        """Import a new job's tasks into the newest part with room for them, and keep them there unless
        launchers that raced for that room took the part past the limit before this job's last task."""
        limit = self._settings.project_task_limit
        lowest = 1
        for _attempt in range(MAX_PLACEMENTS - 1):
            part = self._part_with_room(len(request.images), lowest)
            tasks = self._import_missing(part.id, request, [])
            last = max(int(task["id"]) for task in tasks)
            if any(answers(task) for task in tasks) or self.api.count_tasks(part.id, id_at_most=last) <= limit:
                return part.id
            self.api.delete_tasks(part.id, [int(task["id"]) for task in tasks])
            self.jobs_moved += 1
            lowest = part.number + 1
        part = self._part_with_room(len(request.images), lowest)
        self._import_missing(part.id, request, [])
        return part.id

    def _part_with_room(self, size: int, lowest: int) -> Part:
        """The newest part (if it is part `lowest` or later) when `size` more tasks keep it within the
        limit; otherwise the next part, made now. Its storage and webhook are checked once per instance."""
        parts = canonical(self.parts(refresh=True))
        newest = parts[max(parts)]
        if newest.number < lowest or newest.task_number + size > self._settings.project_task_limit:
            number = newest.number + 1
            newest = Part(number, create_part(self.api, self._settings, number), 0)
            self._parts = None
        if newest.number > 1 and newest.id not in self._ready:
            copy_setup(self.api, self._settings, parts[1].id, newest.id, self._bucket)
            self._ready.add(newest.id)
        return newest

    def _import_missing(
        self, project_id: int, request: JobRequest, tasks: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Import the job's image versions that have no task in the project; the job's tasks after it."""
        have = {_identity(task) for task in tasks}
        missing = [image for image in request.images if (image.source_ref, image.version) not in have]
        if not missing:
            # An earlier attempt's import that landed late can have doubled some: remove those not answered.
            return self._delete_duplicates(project_id, request.name) if len(have) < len(tasks) else tasks
        try:
            for start in range(0, len(missing), IMPORT_CHUNK):
                chunk = missing[start : start + IMPORT_CHUNK]
                self._import(project_id, [{"data": task_data(image, request.name)} for image in chunk])
            kept = self._delete_duplicates(project_id, request.name)
        except LabelStudioNotFound:
            kept = []
        if not kept:
            self._parts = None
            raise PartGone(f"Label Studio project {project_id} was deleted while job {request.name} was imported")
        return kept

    def _import(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        try:
            self.api.import_tasks(project_id, tasks)
        except LabelStudioUnavailable as error:
            if error.maybe_done:
                # A timeout or a 5xx after the request went out: Label Studio may have made the tasks, or may
                # still be making them. Another attempt now would find none and import them again.
                raise StartOutcomeUnknown(f"{error} (the import may have been done, or may still be)") from error
            raise

    def _delete_duplicates(self, project_id: int, job_name: str) -> list[dict[str, Any]]:
        """Delete the newer of two tasks of one image version while nobody has answered it; the rest."""
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for task in self.api.tasks(project_id, {TaskData.JOB: job_name}, with_annotations=False):
            by_image.setdefault(_identity(task), []).append(task)
        kept = []
        for tasks in by_image.values():
            first, *extras = sorted(tasks, key=lambda task: int(task["id"]))
            kept.append(first)
            for extra in extras:
                if answers(extra) == 0:
                    self.api.delete_task(int(extra["id"]))
                    self.duplicates_deleted += 1
                else:
                    kept.append(extra)
        return kept

    # --- the job's state and results --------------------------------------------------------------
    def job_tasks(self, job_name: str) -> JobTasks:
        found = JobTasks(self._job_tasks(job_name, with_annotations=True), self._settings.workers_per_image)
        self._read[job_name] = found
        return found

    def describe_job(self, name: str) -> JobDescription:
        tasks = self.job_tasks(name)
        if not tasks.tasks:
            state, status, reason = JobState.FAILED, "NoTasks", "the job's tasks are not in Label Studio (deleted?)"
        elif tasks.ended:
            state, status, reason = JobState.COMPLETED, "Completed", None
        else:
            state, status, reason = JobState.IN_PROGRESS, "InProgress", None
        return JobDescription(
            name=name,
            state=state,
            backend_status=status,
            results_uri=f"s3://{self._bucket}/{OUTPUT_PREFIX}{name}/{TASKS_FILE}" if tasks.ended else None,
            failure_reason=reason,
            labeled=tasks.annotated,
            failed_objects=tasks.skipped,
            unlabeled=tasks.left,
            results_version=tasks.version(),
        )

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        """Write the job's raw tasks (one JSON line each) to output/<job>/tasks.jsonl, then read them."""
        tasks = self._read.pop(description.name, None) or self.job_tasks(description.name)
        if not tasks.tasks:
            raise ResultsNotFound(f"job {description.name} has no tasks in Label Studio")
        lines = [json.dumps(task, ensure_ascii=False, separators=(",", ":")) for task in tasks.tasks]
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"{OUTPUT_PREFIX}{description.name}/{TASKS_FILE}",
            Body=("\n".join(lines) + "\n").encode(),
            ContentType="application/x-ndjson",
        )
        versions = {
            str(task["data"].get(TaskData.IMAGE)): str(task["data"].get(TaskData.VERSION)) for task in tasks.tasks
        }
        return self._with_sizes(read_tasks(lines, description.name, stats), versions)

    def _with_sizes(self, images: Iterator[LabeledImage], versions: Mapping[str, str]) -> Iterator[LabeledImage]:
        """An image answered with no box has no size in Label Studio's JSON: read it from the file's header, so
        that it is exported as an image with nothing on it (YOLO's empty label file), not left out."""
        for image in images:
            if image.failure_reason is None and image.width <= 0:
                size = self._size_from_header(image.source_ref, versions.get(image.source_ref, ""))
                if size is not None:
                    image = image._replace(width=size[0], height=size[1])
            yield image

    def _size_from_header(self, source_ref: str, version: str) -> tuple[int, int] | None:
        bucket, key = split_s3_uri(source_ref)
        request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{HEADER_BYTES - 1}"}
        if version and version != "null" and not version.startswith("etag-"):
            request["VersionId"] = version
        try:
            header = self._s3.get_object(**request)["Body"].read()
        except ClientError:
            return None  # exported without a size, and listed under imagesWithoutSize
        return image_size(header)
