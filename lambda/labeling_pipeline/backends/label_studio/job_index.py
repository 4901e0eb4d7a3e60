"""One job's tasks as the pipeline last read them from Label Studio, kept between invocations (in S3, by the
service) so that describing a job reads only what changed since: every change to an answer moves its task's
``updated_at`` (an annotation added, updated, deleted one at a time or in bulk, made from a prediction in bulk,
a skip: measured on Label Studio 1.23.2, docs/performance.md), and the data manager filters on it.

What is kept per task is what the job's state needs, each answer counted by kind as `gt-labeling status`
shows it, with a fingerprint of its annotations for the results version; not the answers themselves (the job
end reads those with Label Studio's export endpoint, by task id).

Each read starts LATE_COMMIT_MARGIN before the moment the one before was made (the function's clock, taken before its
first request): a change whose transaction stamped its time before that read but committed after it would otherwise
be missed, and no transaction outlives the margin. Two invocations that save at once leave either one's index, and
each is right for the moment it was read at.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labeling_pipeline.backends.label_studio.api import FILTER_DATETIME
from labeling_pipeline.backends.label_studio.results import unreviewed_prediction

# Label Studio's requests are killed after 110 s (uwsgi's harakiri, label_studio_plugin/labeling_gate/uwsgi.ini), so a
# transaction commits within 110 s of stamping updated_at; 10 s more for the clocks of the function and the server.
LATE_COMMIT_MARGIN = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task: its overlap, its answers by kind (by people, made from predictions with nobody looking,
    skipped) and a fingerprint of its annotations (ids, times, skips)."""

    overlap: int
    people: int
    unreviewed: int
    skipped: int
    marks: str

    @property
    def answers(self) -> int:
        return self.people + self.unreviewed + self.skipped


def annotation_marks(tasks: Iterable[Mapping[str, Any]]) -> list[tuple[int, str, bool]]:
    return sorted(
        (int(annotation.get("id") or 0), str(annotation.get("updated_at")), bool(annotation.get("was_cancelled")))
        for task in tasks
        for annotation in task.get("annotations") or []
        if isinstance(annotation, Mapping)
    )


def answer_kinds(task: Mapping[str, Any]) -> tuple[int, int, int]:
    """The task's answers by kind: by people, made from predictions with nobody looking, skipped. From its annotations
    when the listing carries them (``fields=all``), as its counters are updated only after a bulk action's webhook is
    sent (predictions_to_annotations in label_studio/data_manager/actions/predictions_to_annotations.py); without
    them, from its counters."""
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        return int(task.get("total_annotations") or 0), 0, int(task.get("cancelled_annotations") or 0)
    answers = [annotation for annotation in annotations if isinstance(annotation, Mapping)]
    skipped = sum(1 for annotation in answers if annotation.get("was_cancelled"))
    unreviewed = sum(1 for annotation in answers if unreviewed_prediction(annotation))
    return len(answers) - unreviewed - skipped, unreviewed, skipped


def fingerprint(task: Mapping[str, Any]) -> str:
    """Of the task's annotations (ids, times, skips); empty when it has none listed."""
    marks = annotation_marks([task])
    return hashlib.sha256(json.dumps(marks).encode()).hexdigest()[:16] if marks else ""


def task_row(task: Mapping[str, Any], workers_per_image: int) -> TaskRow:
    # A task imported before workersPerImage changed keeps the overlap it was imported with.
    overlap = int(task.get("overlap") or workers_per_image)
    return TaskRow(overlap, *answer_kinds(task), fingerprint(task))


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def filter_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(FILTER_DATETIME)


def read_from(seen_until: str | None, margin: timedelta = LATE_COMMIT_MARGIN) -> str | None:
    """The time a read of the tasks changed since a read that saw every change up to `seen_until` starts at, in the
    data manager's filter format; None: read them all."""
    return None if seen_until is None else filter_time(parse_time(seen_until) - margin)


def seen_until(newest: str | None, read_at: datetime) -> str | None:
    """What a listing that found `newest` as its tasks' newest updated_at, and was made before `read_at`, saw every
    change up to: the earlier of the two (the listing was made after its newest task was stamped)."""
    return None if newest is None else filter_time(min(parse_time(newest), read_at))


@dataclass
class JobIndex:
    project_id: int
    # Every change up to this time was read (`seen_until`): the next read starts there, less the margin.
    seen_until: str | None
    rows: dict[int, TaskRow] = field(default_factory=dict)

    @classmethod
    def build(
        cls, project_id: int, until: str | None, tasks: Iterable[Mapping[str, Any]], workers_per_image: int
    ) -> JobIndex:
        index = cls(project_id, until)
        index.apply(tasks, workers_per_image)
        return index

    def apply(self, tasks: Iterable[Mapping[str, Any]], workers_per_image: int) -> bool:
        """Take these tasks as they are now; whether anything changed."""
        changed = False
        for task in tasks:
            row = task_row(task, workers_per_image)
            task_id = int(task["id"])
            if self.rows.get(task_id) != row:
                self.rows[task_id] = row
                changed = True
        return changed

    # --- the job's state, counted as JobDescription carries it -------------------------------------
    @property
    def annotated(self) -> int:
        return sum(1 for row in self.rows.values() if row.people > 0)

    @property
    def unreviewed(self) -> int:
        """Tasks whose only submitted answers were made from predictions with nobody looking: images to relabel."""
        return sum(1 for row in self.rows.values() if row.people == 0 and row.unreviewed > 0)

    @property
    def skipped(self) -> int:
        return sum(1 for row in self.rows.values() if row.people == row.unreviewed == 0 and row.skipped > 0)

    @property
    def left(self) -> int:
        return sum(1 for row in self.rows.values() if row.answers < row.overlap)

    @property
    def ended(self) -> bool:
        return bool(self.rows) and self.left == 0

    def version(self, review_tasks: Iterable[Mapping[str, Any]] = ()) -> str:
        """A fingerprint of every answer (the review tasks' too): it changes when an annotation is added, changed
        or deleted, or a task is gone."""
        marks = [[task_id, row.marks] for task_id, row in sorted(self.rows.items())]
        review = annotation_marks(review_tasks)
        return hashlib.sha256(json.dumps([marks, review]).encode()).hexdigest()[:16]

    # --- kept as JSON ----------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        return json.dumps(
            {
                "project": self.project_id,
                "seenUntil": self.seen_until,
                "tasks": [
                    [task_id, row.overlap, row.people, row.unreviewed, row.skipped, row.marks]
                    for task_id, row in sorted(self.rows.items())
                ],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> JobIndex:
        """Raises ValueError (KeyError and TypeError included) on anything that is not an index."""
        found = json.loads(raw)
        index = cls(int(found["project"]), found.get("seenUntil"))
        for task_id, overlap, people, unreviewed, skipped, marks in found["tasks"]:
            index.rows[int(task_id)] = TaskRow(int(overlap), int(people), int(unreviewed), int(skipped), str(marks))
        return index
