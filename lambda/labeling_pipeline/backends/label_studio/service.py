"""Label Studio as a labeling backend: a job (the pipeline's batch) is a set of tasks in the deployment's one
project, each task one image version, tagged with its job in the task's data.

Exactly once: Label Studio's import is not idempotent (the same image imported twice makes two tasks), so
starting a job is a reconciliation, under the launcher's start lease on the job (`idempotent_start` is
False): list the job's tasks, import only the image versions that have none, list again, and delete any
duplicate that a lapsed lease let through (the newer one, and only while nobody has answered it). A crash
between the import and the ledger's mark leaves tasks that the next attempt finds and keeps.

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
    UnauthenticatedJobEvent,
)
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioNotFound
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


def task_data(image: ImageRef, job_name: str) -> dict[str, str]:
    return {TaskData.IMAGE: image.source_ref, TaskData.JOB: job_name, TaskData.VERSION: image.version}


def _identity(task: Mapping[str, Any]) -> tuple[str, str]:
    data = task.get("data") or {}
    return str(data.get(TaskData.IMAGE)), str(data.get(TaskData.VERSION))


def answers(task: Mapping[str, Any]) -> int:
    return int(task.get("total_annotations") or 0) + int(task.get("cancelled_annotations") or 0)


class JobTasks:
    """One job's tasks as Label Studio holds them, counted the way `gt-labeling status` shows them."""

    def __init__(self, tasks: Sequence[Mapping[str, Any]], workers_per_image: int) -> None:
        self.tasks = list(tasks)
        self.annotated = sum(1 for task in self.tasks if int(task.get("total_annotations") or 0) > 0)
        self.skipped = sum(
            1
            for task in self.tasks
            if int(task.get("total_annotations") or 0) == 0 and int(task.get("cancelled_annotations") or 0) > 0
        )
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
        self._project_id: int | None = None
        self._read: dict[str, JobTasks] = {}
        self.duplicates_deleted = 0

    def authenticate(self, event: JobEvent) -> None:
        secret = self._webhook_secret()
        presented = event.credential or ""
        if not secret or not hmac.compare_digest(presented.encode(), secret.encode()):
            raise UnauthenticatedJobEvent("the webhook did not present the pipeline's secret header")
        if event.project is not None and event.project != str(self.project_id()):
            raise UnauthenticatedJobEvent(f"the webhook is about project {event.project}, not this deployment's")

    # --- the project ----------------------------------------------------------------------------
    def project_id(self) -> int:
        if self._project_id is None:
            title = self._settings.project_title
            found = self.api.projects_titled(title)
            if not found:
                raise PermanentBackendError(
                    f"Label Studio at {self.api.base_url} has no project titled {title!r}: it was deleted, or the "
                    "deployment has not created it yet. Run `make deploy` (it creates the project, its storage "
                    "and its webhook), then redrive the dead-letter queue"
                )
            self._project_id = int(found[0]["id"])
        return self._project_id

    def _job_tasks(self, job_name: str, *, with_annotations: bool) -> list[dict[str, Any]]:
        try:
            return list(self.api.tasks(self.project_id(), {TaskData.JOB: job_name}, with_annotations=with_annotations))
        except LabelStudioNotFound as error:
            self._project_id = None
            raise PermanentBackendError(
                f"Label Studio project {self._settings.project_title!r} is gone ({error}): run `make deploy` to "
                "create it again, then redrive the dead-letter queue"
            ) from error

    # --- starting a job -------------------------------------------------------------------------
    def create_job(self, request: JobRequest) -> str:
        project_id = self.project_id()
        have = {_identity(task) for task in self._job_tasks(request.name, with_annotations=False)}
        missing = [image for image in request.images if (image.source_ref, image.version) not in have]
        for start in range(0, len(missing), IMPORT_CHUNK):
            chunk = missing[start : start + IMPORT_CHUNK]
            self.api.import_tasks(project_id, [{"data": task_data(image, request.name)} for image in chunk])
        if missing:
            self._delete_duplicates(request.name)
        return f"{self.api.base_url}/projects/{project_id}/data"

    def _delete_duplicates(self, job_name: str) -> None:
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for task in self._job_tasks(job_name, with_annotations=False):
            by_image.setdefault(_identity(task), []).append(task)
        for tasks in by_image.values():
            for extra in sorted(tasks, key=lambda task: int(task["id"]))[1:]:
                if answers(extra) == 0:
                    self.api.delete_task(int(extra["id"]))
                    self.duplicates_deleted += 1

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
