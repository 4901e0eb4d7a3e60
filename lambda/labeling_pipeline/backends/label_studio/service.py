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
project's ``skip_queue`` is IGNORE_SKIPPED, so Label Studio's own ``is_labeled`` means the same). An
annotation that the data manager made from a prediction with nobody looking (results.unreviewed_prediction)
counts as an answer here too, as it does for Label Studio (which then serves the task to nobody), but not as a
label: its image is read as one to relabel, with the reason, and the job's counts show it among the failed.

Reading a job costs what changed since the last read, not the job (job_index.py): a description counts the job's
tasks and reads those changed since, and keeps what it read in the bucket, the index (each task's answers counted)
and the task shards (each task as the data manager lists it); the job end reads the shards, each task checked
against the index, and from Label Studio only the tasks a shard lacks or holds as they were before a change.

Pre-labels (``labeling.prelabel``): a task whose image has a proposal goes into the import with its
prediction (predictions.py), and its data says so (``prelabel``: proposed or held-out). Label Studio 1.23.2,
with its default flags, makes the tasks and none of a request's predictions when one of them is malformed
(add_predictions in tasks/serializers.py returns its errors before its bulk_create and leaves
``db_predictions`` unset), then answers 500 (ImportAPI.sync_import reads ``len(serializer.db_predictions)``):
the tasks are committed by then. With ``fflag_feat_utc_210_prediction_validation_15082025`` on, it refuses
the whole request (400, nothing stored). Tasks made are never imported again for their predictions: only
after a 400 is the request sent again, without them. An import answered with Label Studio's own 500 is over
(api.LabelStudioUnavailable.finished): when the job's tasks are then all listed, it made them; otherwise its
outcome stays unknown, as for any failure after the request went out. After a 400, such a 500, an answer
whose ``prediction_count`` falls short, or a retried start (the attempt before may have made the tasks and
not their predictions), each of the job's tasks that lacks its prediction gets it through
``POST /api/predictions/``, one at a time, so that only a malformed one is refused (logged and counted); the
bulk ``import/predictions`` is not used, as it recounts every task of the project (ImportPredictionsAPI).
Then the project's ``model_version`` is made the configured one (project.keep_model_version).
"""

from __future__ import annotations

import hmac
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

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
from labeling_pipeline.backends.label_studio.api import (
    EXPORT_CHUNK,
    LabelStudioApi,
    LabelStudioNotFound,
    LabelStudioRefused,
    LabelStudioUnavailable,
    PredictionsNotMade,
)
from labeling_pipeline.backends.label_studio.job_index import (
    LATE_COMMIT_MARGIN,
    JobIndex,
    answer_kinds,
    filter_time,
    fingerprint,
    read_from,
    seen_until,
)
from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION, Part, canonical, list_parts
from labeling_pipeline.backends.label_studio.predictions import Prelabels, has_prediction, prelabels
from labeling_pipeline.backends.label_studio.project import (
    copy_setup,
    create_part,
    ensure_review_project,
    keep_model_version,
    review_project_ids,
)
from labeling_pipeline.backends.label_studio.results import (
    REVIEW_KEY,
    TaskData,
    read_numbered_tasks,
    read_task,
    task_identity,
)
from labeling_pipeline.backends.label_studio.review import ReviewCandidate, candidate, review_task
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.image_header import HEADER_BYTES, image_size
from labeling_pipeline.images import ImageRef, split_s3_uri
from labeling_pipeline.labels import LabeledImage, ReadStats, ResultsError
from labeling_pipeline.names import JOBS_PREFIX, OUTPUT_PREFIX, JobState
from labeling_pipeline.settings import PipelineSettings

# Tasks per import request: Label Studio imports a request in one transaction, and large ones time out
# behind a proxy (upstream issues #4549, #5873).
IMPORT_CHUNK = 500
TASKS_FILE = "tasks.jsonl"
# The job's index (job_index.py): output/<job>/INDEX_FILE as the job-events function keeps it, and
# jobs/<job>/START_INDEX_FILE as the launcher wrote it when the job started, before anyone answered.
INDEX_FILE = "label-studio-index.json"
START_INDEX_FILE = "label-studio-tasks.json"
# The job's tasks as the data manager last listed them, with their answers (JSON lines), in shards of SHARD_TASKS tasks
# by their place among the job's task ids: output/<job>/TASK_SHARDS/<number>.jsonl. Each description writes the tasks
# it read changed, so the job end reads the job's answers from the bucket, not from Label Studio.
TASK_SHARDS = "label-studio-tasks"
SHARD_TASKS = 500
# How many parts a new job tries before it stays where it is, over the limit (launchers racing for room).
MAX_PLACEMENTS = 5

logger = logging.getLogger(__name__)


class PartGone(TransientBackendError):
    """A part was deleted while a job was being put in it (a duplicate part, deleted by the launcher that
    made it): the next attempt puts the job in the part that is left."""


def task_data(image: ImageRef, job_name: str, prelabel: str | None = None) -> dict[str, str]:
    data = {TaskData.IMAGE: image.source_ref, TaskData.JOB: job_name, TaskData.VERSION: image.version}
    if prelabel is not None:
        data[TaskData.PRELABEL] = prelabel
    return data


def import_task(image: ImageRef, job_name: str, marks: Prelabels) -> dict[str, Any]:
    task: dict[str, Any] = {"data": task_data(image, job_name, marks.marks.get(image))}
    if image in marks.predictions:
        task["predictions"] = [marks.predictions[image]]
    return task


def answers(task: Mapping[str, Any]) -> int:
    """The task's answers, skips included (job_index.answer_kinds)."""
    return sum(answer_kinds(task))


def _unavailable(error: LabelStudioUnavailable) -> NoReturn:
    if error.maybe_done:
        # A timeout or a 5xx after the request went out: Label Studio may have made the tasks, or may still be
        # making them. Another attempt now would find none and import them again.
        raise StartOutcomeUnknown(f"{error} (the import may have been done, or may still be)") from error
    raise error


REVIEW_STEP = "review"


class ReviewState:
    """One job's review step: the images picked for review (review.review_reason) and their review tasks."""

    def __init__(self, candidates: Sequence[ReviewCandidate], review_tasks: Sequence[Mapping[str, Any]]) -> None:
        self.wanted = [found for found in candidates if found.reason is not None]
        self.tasks = list(review_tasks)
        # Per image version, its review task: the first answered, else the first made.
        self.by_identity: dict[tuple[str, str], Mapping[str, Any]] = {}
        for task in sorted(self.tasks, key=lambda task: (answers(task) == 0, int(task["id"]))):
            self.by_identity.setdefault(task_identity(task), task)
        self.missing = [
            found for found in self.wanted if (found.image.source_ref, found.version) not in self.by_identity
        ]
        self.answered = sum(1 for task in self.by_identity.values() if answers(task) > 0)

    @property
    def left(self) -> int:
        return len(self.by_identity) - self.answered + len(self.missing)

    def progress(self) -> str:
        total = len(self.by_identity) + len(self.missing)
        return f"{self.answered} of {total} images reviewed"


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
        self._described: dict[str, JobIndex] = {}  # the index describe_job read, for read_results
        self._labeling_read: dict[str, list[dict[str, Any]]] = {}  # a job's tasks in full, for the review step
        self._reviews_read: dict[str, ReviewState] = {}
        # How far before the moment the read before saw every change up to a read of the changed tasks goes back.
        self.late_commit_margin = LATE_COMMIT_MARGIN
        self._review_ids: list[int] | None = None  # the review projects (the lowest id is the one used)
        self._review_project: int | None = None  # the one used, once this instance has set it up
        self.duplicates_deleted = 0
        self.jobs_moved = 0
        # Set while a job starts when some of its tasks may lack their predictions (a retried start, an import
        # that answered with fewer predictions or failed after committing): the tasks are then listed.
        self._predictions_unsure = False
        self.predictions_added = 0  # after the import, to tasks that lacked them
        self.predictions_refused = 0  # Label Studio refused them one by one as well: the task has none
        self.tasks_read_again = 0  # at the job end, tasks their shard lacked or held as before a change

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
        if project in {str(part.id) for part in self.parts(refresh=True)}:  # a part made since
            return True
        return self._settings.review is not None and project in {str(found) for found in self.review_projects(True)}

    def review_projects(self, refresh: bool = False) -> list[int]:
        if self._review_ids is None or refresh:
            self._review_ids = review_project_ids(self.api, self._settings)
        return self._review_ids

    def _tasks_in(self, project_id: int, job_name: str, *, with_annotations: bool) -> list[dict[str, Any]]:
        """The job's tasks in one project; none when the project is gone."""
        try:
            return list(self.api.tasks(project_id, {TaskData.JOB: job_name}, with_annotations=with_annotations))
        except LabelStudioNotFound:
            return []

    def _find_job(self, job_name: str) -> tuple[int, list[dict[str, Any]]] | None:
        """The project that holds the job's tasks, and the tasks: the one this instance last saw them in,
        else every part, newest first (parts listed afresh: one may have been made since)."""
        known = self._job_projects.get(job_name)
        if known is not None:
            tasks = self._tasks_in(known, job_name, with_annotations=False)
            if tasks:
                return known, tasks
            del self._job_projects[job_name]
        for part in sorted(self.parts(refresh=True), key=lambda part: (-part.number, -part.id)):
            if part.id == known:
                continue
            tasks = self._tasks_in(part.id, job_name, with_annotations=False)
            if tasks:
                self._job_projects[job_name] = part.id
                return part.id, tasks
        return None

    # --- starting a job -------------------------------------------------------------------------
    def create_job(self, request: JobRequest) -> str:
        marks = prelabels(request.proposals, self._settings)
        self._predictions_unsure = False
        found = self._find_job(request.name)
        if found is not None:  # a retry: the rest goes where the job's tasks are
            project_id = found[0]
            tasks = self._import_missing(project_id, request, found[1], marks)
            self._predictions_unsure = True  # the attempt before may have made tasks and not their predictions
        else:
            project_id, tasks = self._place(request, marks)
        self._job_projects[request.name] = project_id
        if marks.predictions:
            self._finish_predictions(project_id, request.name, marks)
        self._start_index(request.name, project_id, tasks)
        return f"{self.api.base_url}/projects/{project_id}/data"

    def _start_index(self, job_name: str, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> None:
        """The job's index as it starts (job_index.py), so that the job-events function never reads the whole job
        to describe it: the tasks as listed after the import, while none has an answer. A start that finds a task
        answered (a retried start of a job that people saw) writes none: the one an earlier attempt wrote stays, and
        without one the first description reads the job in full."""
        if not tasks:
            return
        # The listing was made after the newest of its tasks was stamped, and before now.
        newest = max(str(task.get("updated_at")) for task in tasks)
        index = JobIndex.build(
            project_id, seen_until(newest, datetime.now(UTC)), tasks, self._settings.workers_per_image
        )
        if any(row.answers for row in index.rows.values()):
            return
        self._save_index(job_name, index, self._job_key(job_name, START_INDEX_FILE, JOBS_PREFIX))

    def _finish_predictions(self, project_id: int, job_name: str, marks: Prelabels) -> None:
        assert marks.model_version is not None
        if self._predictions_unsure:
            self._add_missing_predictions(project_id, job_name, marks)
        try:
            keep_model_version(self.api, project_id, marks.model_version)
        except LabelStudioRefused as error:
            # The tasks are in and will be labeled, without their proposals shown: not a reason to start again.
            logger.warning("model_version %s not set on project %s: %s", marks.model_version, project_id, error)

    def _add_missing_predictions(self, project_id: int, job_name: str, marks: Prelabels) -> None:
        assert marks.model_version is not None
        wanted = {(image.source_ref, image.version): made for image, made in marks.predictions.items()}
        self._add_predictions(project_id, job_name, marks.model_version, wanted)

    def _add_predictions(
        self, project_id: int, job_name: str, model_version: str, wanted: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> None:
        """Give each of the job's tasks in the project that lacks its prediction (`wanted`, by image version) that
        prediction, one request each. A refusal is counted and logged; Label Studio unavailable is raised, and the
        retried start or step comes back here."""
        for task in self._tasks_in(project_id, job_name, with_annotations=True):
            made = wanted.get(task_identity(task))
            if made is None or has_prediction(task, model_version):
                continue
            try:
                self.api.create_prediction({"task": int(task["id"]), **made})
            except LabelStudioRefused as error:
                self.predictions_refused += 1
                logger.warning("prediction refused: task %s (%s): %s", task["id"], task_identity(task)[0], error)
                continue
            self.predictions_added += 1

    def _place(self, request: JobRequest, marks: Prelabels) -> tuple[int, list[dict[str, Any]]]:
        """Import a new job's tasks into the newest part with room for them, and keep them there unless
        launchers that raced for that room took the part past the limit before this job's last task."""
        limit = self._settings.project_task_limit
        lowest = 1
        for _attempt in range(MAX_PLACEMENTS - 1):
            part = self._part_with_room(len(request.images), lowest)
            tasks = self._import_missing(part.id, request, [], marks)
            last = max(int(task["id"]) for task in tasks)
            if any(answers(task) for task in tasks) or self.api.count_tasks(part.id, id_at_most=last) <= limit:
                return part.id, tasks
            self.api.delete_tasks(part.id, [int(task["id"]) for task in tasks])
            self.jobs_moved += 1
            lowest = part.number + 1
        part = self._part_with_room(len(request.images), lowest)
        return part.id, self._import_missing(part.id, request, [], marks)

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
        self, project_id: int, request: JobRequest, tasks: list[dict[str, Any]], marks: Prelabels
    ) -> list[dict[str, Any]]:
        """Import the job's image versions that have no task in the project; the job's tasks after it."""
        have = {task_identity(task) for task in tasks}
        missing = [image for image in request.images if (image.source_ref, image.version) not in have]
        if not missing:
            # An earlier attempt's import that landed late can have doubled some: remove those not answered.
            return self._delete_duplicates(project_id, request.name) if len(have) < len(tasks) else tasks
        try:
            for start in range(0, len(missing), IMPORT_CHUNK):
                chunk = missing[start : start + IMPORT_CHUNK]
                self._import(project_id, request.name, chunk, marks)
            kept = self._delete_duplicates(project_id, request.name)
        except LabelStudioNotFound:
            kept = []
        if not kept:
            self._parts = None
            raise PartGone(f"Label Studio project {project_id} was deleted while job {request.name} was imported")
        return kept

    def _import(self, project_id: int, job_name: str, images: Sequence[ImageRef], marks: Prelabels) -> None:
        tasks = [import_task(image, job_name, marks) for image in images]
        try:
            self.api.import_tasks(project_id, tasks)
        except PredictionsNotMade as error:
            logger.warning("import into project %s: %s", project_id, error)
            self._predictions_unsure = True
        except LabelStudioRefused as error:
            if error.status != 400 or not any("predictions" in task for task in tasks):
                raise
            # Its prediction validation refused the request before storing anything (fflag_feat_utc_210_...
            # on: ImportAPI.sync_import, or add_predictions inside the import's transaction).
            logger.warning("import into project %s refused, again without predictions: %s", project_id, error)
            self._send(project_id, [{"data": task["data"]} for task in tasks])
            self._predictions_unsure = True
        except LabelStudioUnavailable as error:
            if not (error.finished and self._all_imported(project_id, job_name, images)):
                _unavailable(error)
            # Label Studio's own 500 after its transaction committed (a malformed prediction, module doc).
            logger.warning("import into project %s made its tasks, then failed: %s", project_id, error)
            self._predictions_unsure = True

    def _send(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        try:
            self.api.import_tasks(project_id, tasks)
        except LabelStudioUnavailable as error:
            _unavailable(error)

    def _all_imported(self, project_id: int, job_name: str, images: Sequence[ImageRef]) -> bool:
        have = {task_identity(task) for task in self._tasks_in(project_id, job_name, with_annotations=False)}
        return all((image.source_ref, image.version) in have for image in images)

    def _delete_duplicates(self, project_id: int, job_name: str) -> list[dict[str, Any]]:
        """Delete the newer of two tasks of one image version while nobody has answered it; the rest."""
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for task in self.api.tasks(project_id, {TaskData.JOB: job_name}, with_annotations=False):
            by_image.setdefault(task_identity(task), []).append(task)
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
    def _job_key(self, job_name: str, file_name: str, prefix: str = OUTPUT_PREFIX) -> str:
        return f"{prefix}{job_name}/{file_name}"

    def _load_index(self, job_name: str) -> JobIndex | None:
        """The job's index as the last invocation kept it, else as the launcher wrote it; None when neither can
        be read (a job started before indexes were kept, or a caller without access): the job is then read in
        full once."""
        for key in (self._job_key(job_name, INDEX_FILE), self._job_key(job_name, START_INDEX_FILE, JOBS_PREFIX)):
            try:
                raw = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    logger.warning("job %s: index s3://%s/%s not read: %s", job_name, self._bucket, key, error)
                continue
            try:
                return JobIndex.from_json(raw)
            except (ValueError, KeyError, TypeError) as error:
                logger.warning("job %s: s3://%s/%s is not an index: %s", job_name, self._bucket, key, error)
        return None

    def _save_index(self, job_name: str, index: JobIndex, key: str | None = None) -> None:
        """Kept for the next invocation; one that cannot be written costs the next one a full read."""
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key or self._job_key(job_name, INDEX_FILE),
                Body=index.to_json(),
                ContentType="application/json",
            )
        except ClientError as error:
            logger.warning("job %s: index not kept: %s", job_name, error)

    def _locate(self, job_name: str) -> tuple[int, int] | None:
        """The part that holds the job's tasks, and their number: one request per part, newest part first (parts
        listed afresh: one may have been made since)."""
        for part in sorted(self.parts(refresh=True), key=lambda part: (-part.number, -part.id)):
            total = self._count(part.id, job_name)
            if total:
                return part.id, total
        return None

    def _count(self, project_id: int, job_name: str) -> int:
        try:
            return self.api.count_matching(project_id, {TaskData.JOB: job_name})
        except LabelStudioNotFound:
            return 0

    def job_index(self, job_name: str) -> JobIndex | None:
        """The job's tasks counted as they are now, in two requests whatever the job's size: its number of tasks,
        then the tasks changed since the index was kept (job_index.py). A job without an index, or whose number of
        tasks differs from the index's, is read in full. None: no task of the job is in Label Studio."""
        index = self._load_index(job_name)
        read_at = datetime.now(UTC)
        project_id = index.project_id if index is not None else self._job_projects.get(job_name)
        total = self._count(project_id, job_name) if project_id is not None else 0
        if not total:
            found = self._locate(job_name)
            if found is None:
                return None
            project_id, total = found
        assert project_id is not None
        self._job_projects[job_name] = project_id
        workers = self._settings.workers_per_image
        if index is None or index.project_id != project_id or len(index.rows) != total:
            index = JobIndex(project_id, filter_time(read_at))
            self._read_in_full(job_name, index)
        else:
            changed = list(
                self.api.tasks(
                    project_id,
                    {TaskData.JOB: job_name},
                    with_annotations=True,
                    updated_after=read_from(index.seen_until, self.late_commit_margin),
                )
            )
            index.apply(changed, workers)
            index.seen_until = filter_time(read_at)
            self._keep_tasks(job_name, index, changed)
        self._save_index(job_name, index)
        return index

    def _read_in_full(self, job_name: str, index: JobIndex) -> None:
        """Every task of the job, page by page, into the index and the task shards (one shard held at a time)."""
        workers = self._settings.workers_per_image
        keep_all = self._settings.review is not None  # picking images for review reads them all
        every: list[dict[str, Any]] = []
        shard: dict[int, dict[str, Any]] = {}
        try:
            for task in self.api.tasks(index.project_id, {TaskData.JOB: job_name}, with_annotations=True):
                index.apply([task], workers)
                shard[int(task["id"])] = task
                if keep_all:
                    every.append(task)
                if len(shard) == SHARD_TASKS:
                    self._write_shard(job_name, (len(index.rows) - 1) // SHARD_TASKS, shard)
                    shard = {}
        except LabelStudioNotFound:
            pass
        if shard:
            self._write_shard(job_name, (len(index.rows) - 1) // SHARD_TASKS, shard)
        if keep_all:
            self._labeling_read = {job_name: every}  # the last job read only, as for _described

    def _shard_key(self, job_name: str, number: int) -> str:
        return f"{OUTPUT_PREFIX}{job_name}/{TASK_SHARDS}/{number:05d}.jsonl"

    def _read_shard(self, job_name: str, number: int) -> dict[int, dict[str, Any]]:
        """A shard's tasks by id; none when it is not there (or not readable: its tasks are read again)."""
        try:
            raw = self._s3.get_object(Bucket=self._bucket, Key=self._shard_key(job_name, number))["Body"].read()
        except ClientError:
            return {}
        found: dict[int, dict[str, Any]] = {}
        for line in raw.splitlines():
            try:
                task = json.loads(line)
                found[int(task["id"])] = task
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def _write_shard(self, job_name: str, number: int, tasks: Mapping[int, Mapping[str, Any]]) -> None:
        body = b"".join(
            json.dumps(task, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for _task_id, task in sorted(tasks.items())
        )
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._shard_key(job_name, number),
                Body=body,
                ContentType="application/x-ndjson",
            )
        except ClientError as error:
            # The job end reads again from Label Studio what a shard lacks.
            logger.warning("job %s: task shard %d not kept: %s", job_name, number, error)

    def _keep_tasks(self, job_name: str, index: JobIndex, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Write the tasks read changed into their shards."""
        if not tasks:
            return
        places = {task_id: place for place, task_id in enumerate(sorted(index.rows))}
        by_shard: dict[int, dict[int, Mapping[str, Any]]] = {}
        for task in tasks:
            place = places.get(int(task["id"]))
            if place is not None:
                by_shard.setdefault(place // SHARD_TASKS, {})[int(task["id"])] = task
        for number, changed in by_shard.items():
            kept: dict[int, Mapping[str, Any]] = dict(self._read_shard(job_name, number))
            kept.update(changed)
            self._write_shard(job_name, number, kept)

    def describe_job(self, name: str) -> JobDescription:
        index = self.job_index(name)
        review: ReviewState | None = None
        pending_step = None
        if index is None or not index.rows:
            state, status, reason = JobState.FAILED, "NoTasks", "the job's tasks are not in Label Studio (deleted?)"
        elif index.ended and self._settings.review is not None:
            review = self._review_state(name, self._labeling_tasks(name, index))
            state, status, reason = JobState.IN_PROGRESS, "InReview", None
            if review.missing:
                status, pending_step = "ReviewPending", REVIEW_STEP
            elif not review.left:
                state, status = JobState.COMPLETED, "Completed"
        elif index.ended:
            state, status, reason = JobState.COMPLETED, "Completed", None
        else:
            state, status, reason = JobState.IN_PROGRESS, "InProgress", None
        # Only the job described last: the caller's next step is about it (a sweep describes many jobs in turn).
        self._described = {name: index} if index is not None else {}
        ended = state == JobState.COMPLETED
        return JobDescription(
            name=name,
            state=state,
            backend_status=status,
            results_uri=f"s3://{self._bucket}/{OUTPUT_PREFIX}{name}/{TASKS_FILE}" if ended else None,
            failure_reason=reason,
            labeled=index.annotated if index is not None else 0,
            failed_objects=index.skipped + index.unreviewed if index is not None else 0,
            unlabeled=index.left if index is not None else 0,
            results_version=index.version(review.tasks if review is not None else ()) if index is not None else None,
            pending_step=pending_step,
            step_progress=review.progress() if review is not None else None,
        )

    def _labeling_tasks(self, job_name: str, index: JobIndex) -> list[dict[str, Any]]:
        """The job's tasks with their answers in full (what picking images for review needs): the ones this
        invocation read, else from the job's task shards."""
        found = self._labeling_read.pop(job_name, None)
        return found if found is not None else list(self._job_tasks_kept(job_name, index))

    # --- the review step (review.py) ----------------------------------------------------------------
    def _review_tasks(self, job_name: str) -> list[dict[str, Any]]:
        return [
            task
            for project_id in self.review_projects(refresh=True)
            for task in self._tasks_in(project_id, job_name, with_annotations=True)
        ]

    def _review_state(self, job_name: str, tasks: Sequence[Mapping[str, Any]]) -> ReviewState:
        settings = self._settings.review
        assert settings is not None
        stats = ReadStats()
        candidates = []
        for task in tasks:
            try:
                image = read_task(task, 0, job_name, stats)
            except ResultsError as error:
                # Exported as it can be (read_results raises on it, and says where); not shown to a reviewer.
                logger.warning("task %s not considered for review: %s", task.get("id"), error)
                continue
            candidates.append(candidate(task, image, settings))
        found = ReviewState(candidates, self._review_tasks(job_name))
        self._reviews_read[job_name] = found
        return found

    def take_step(self, description: JobDescription) -> str:
        """Make the review tasks of the job's images picked for review that have none, exactly once: the caller
        holds the job's lease; an import whose outcome is unknown is found by the next attempt, and a duplicate
        that a lapsed lease let through is deleted while nobody has answered it."""
        if description.pending_step != REVIEW_STEP:
            raise PermanentBackendError(f"job {description.name}: no step {description.pending_step!r}")
        name = description.name
        index = self._described.get(name) or self.job_index(name)
        tasks = self._labeling_tasks(name, index) if index is not None else []
        # Listed again, under the lease: describe_job listed them before the caller took it, and another invocation
        # may have made them in between (its import is then not repeated, nor left doubled by a lost answer).
        self._reviews_read.pop(name, None)
        review = self._review_state(name, tasks)
        if not review.missing:
            return "every review task was there"
        if self._review_project is None:
            # Its fields, storage and webhook checked once per instance, as a new part's are (a warm function's
            # later steps go straight to the import).
            self._review_project = ensure_review_project(self.api, self._settings, self._bucket)
            self._review_ids = None
        project_id = self._review_project
        labels = list(self._settings.labels)
        review_tasks = [review_task(name, found, labels) for found in review.missing]
        predictions_unsure = False
        for start in range(0, len(review_tasks), IMPORT_CHUNK):
            try:
                self._send(project_id, review_tasks[start : start + IMPORT_CHUNK])
            except PredictionsNotMade as error:
                logger.warning("review tasks of job %s made without some predictions: %s", name, error)
                predictions_unsure = True
        if predictions_unsure:
            wanted = {task_identity(made): made["predictions"][0] for made in review_tasks}
            self._add_predictions(project_id, name, CONSOLIDATED_VERSION, wanted)
        self._delete_duplicates(project_id, name)
        try:
            keep_model_version(self.api, project_id, CONSOLIDATED_VERSION)
        except LabelStudioRefused as error:
            logger.warning("model_version %s not set on project %s: %s", CONSOLIDATED_VERSION, project_id, error)
        return f"{len(review_tasks)} review tasks made in project {project_id}"

    def read_results(self, description: JobDescription, stats: ReadStats) -> Iterator[LabeledImage]:
        """The job's tasks from its task shards, shard by shard, each checked against the index (its answers'
        fingerprint): a task a shard lacks, or holds as it was before a change, is read again through Label Studio's
        export endpoint, EXPORT_CHUNK at a time. Each is written to output/<job>/tasks.jsonl (one JSON line each,
        uploaded at the end) and read into the neutral stream; memory holds one shard."""
        name = description.name
        index = self._described.pop(name, None) or self.job_index(name)
        if index is None or not index.rows:
            raise ResultsNotFound(f"job {description.name} has no tasks in Label Studio")
        reviews: Mapping[tuple[str, str], Mapping[str, Any]] = {}
        if self._settings.review is not None:
            review = self._reviews_read.pop(name, None) or ReviewState([], self._review_tasks(name))
            reviews = review.by_identity
        return self._stream(name, index, reviews, stats)

    def _stream(
        self, name: str, index: JobIndex, reviews: Mapping[tuple[str, str], Mapping[str, Any]], stats: ReadStats
    ) -> Iterator[LabeledImage]:
        self.tasks_read_again = 0
        with tempfile.TemporaryDirectory(prefix="tasks-") as work:
            written = f"{work}/{TASKS_FILE}"
            with open(written, "wb") as out:
                for image, line in self._lines(self._job_tasks_kept(name, index), reviews, name, stats):
                    out.write(line)
                    yield image
            self._s3.upload_file(
                written,
                self._bucket,
                self._job_key(name, TASKS_FILE),
                ExtraArgs={"ContentType": "application/x-ndjson"},
            )
        logger.info("job %s: %d of %d tasks read again from Label Studio", name, self.tasks_read_again, len(index.rows))

    def _job_tasks_kept(self, name: str, index: JobIndex) -> Iterator[dict[str, Any]]:
        """Each task of the job, by id, from its shard when the shard holds it as the index counted it."""
        ids = sorted(index.rows)
        for number, start in enumerate(range(0, len(ids), SHARD_TASKS)):
            chunk = ids[start : start + SHARD_TASKS]
            kept = self._read_shard(name, number)
            stale = {
                task_id
                for task_id in chunk
                if task_id not in kept or fingerprint(kept[task_id]) != index.rows[task_id].marks
            }
            fresh = {int(task["id"]): task for task in self._export(index.project_id, sorted(stale))}
            if stale:
                self.tasks_read_again += len(stale)
                self._write_shard(name, number, {**kept, **fresh})
            for task_id in chunk:
                if task_id in fresh:
                    yield fresh[task_id]
                elif task_id not in stale:
                    yield kept[task_id]
                # else: deleted in Label Studio since the index was read

    def _export(self, project_id: int, task_ids: Sequence[int]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(task_ids), EXPORT_CHUNK):
            yield from self.api.export_tasks(project_id, task_ids[start : start + EXPORT_CHUNK])

    def _lines(
        self,
        tasks: Iterable[dict[str, Any]],
        reviews: Mapping[tuple[str, str], Mapping[str, Any]],
        name: str,
        stats: ReadStats,
    ) -> Iterator[tuple[LabeledImage, bytes]]:
        """Each task as its tasks.jsonl line (with its review task's answer, when it has one) and as read."""
        for line_number, task in enumerate(tasks, start=1):
            task.pop(REVIEW_KEY, None)
            if task_identity(task) in reviews:
                task[REVIEW_KEY] = reviews[task_identity(task)]
            line = json.dumps(task, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            version = str((task.get("data") or {}).get(TaskData.VERSION, ""))
            for image in read_numbered_tasks([(line_number, task)], name, stats):
                yield self._with_size(image, version), line

    def _with_size(self, image: LabeledImage, version: str) -> LabeledImage:
        """An image answered with no box has no size in Label Studio's JSON: read it from the file's header, so
        that it is exported as an image with nothing on it (YOLO's empty label file), not left out."""
        if image.failure_reason is None and image.width <= 0:
            size = self._size_from_header(image.source_ref, version)
            if size is not None:
                image = image._replace(width=size[0], height=size[1])
        return image

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
