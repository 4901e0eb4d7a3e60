"""Reviewers and review projects: the contract between the pipeline and the gate. Pure: no Django.

The contract:
- **A review project** is a Label Studio project whose title ends with ``REVIEW_TITLE_SUFFIX`` (" (review)", e.g.
  "Bounding boxes (review)"); the pipeline makes one per deployment. Only administrators create or rename
  projects (routes.py: ``POST /api/projects/`` and ``PATCH /api/projects/<pk>/`` are ADMIN), so no worker can
  make a project a review project, or stop one from being one.
- **A review task** is a task of a review project. Its ``data`` holds ``image``, ``job``, ``version`` and
  ``ANNOTATOR_IDS`` ("annotatorIds"): the Label Studio user ids of the people who annotated that image in the
  labeling project, as one string, comma-delimited with a leading and a trailing comma (",3,7,"; "," when none),
  so that ``",<id>,"`` is a plain substring test in Python and in SQL (``data__annotatorIds__icontains``, on
  SQLite and PostgreSQL alike). Its predictions are the consolidated boxes, shown to the reviewer as pre-labels;
  the reviewer's annotation is final.
- **A reviewer** is a worker in the Django auth group ``REVIEWER_GROUP`` ("labeling-reviewers"), which
  ``bbox-labeling workers add --reviewer`` fills (accounts.py; the group is made on first use).

What the gate makes of it (review_gate.py, middleware.py):
- A worker who is not a reviewer is refused (403) every request that names a review project or anything in it:
  the project in the path, a ``project`` (or data-manager ``view``) in the query or the body, a task, annotation,
  draft or prediction of it. The project list a worker reads leaves review projects out.
- A reviewer is refused a review task whose ``annotatorIds`` names them (reading it, answering it, drafting on
  it, changing an answer on it); the labeling stream (``/api/projects/<pk>/next/`` and the data manager's
  ``next_task``) never serves it to them, and the task lists they read leave it out.
- Administrators (the pipeline's token) are not affected.
"""

from __future__ import annotations

from typing import Any

REVIEWER_GROUP = "labeling-reviewers"
REVIEW_TITLE_SUFFIX = " (review)"
ANNOTATOR_IDS = "annotatorIds"


def is_review_title(title: Any) -> bool:
    return isinstance(title, str) and title.endswith(REVIEW_TITLE_SUFFIX)


def annotator_marker(user_id: int) -> str:
    """What ``annotatorIds`` holds when the user annotated the image: ",<id>,"."""
    return f",{int(user_id)},"


def annotated_by(data: Any, user_id: int) -> bool:
    """Whether a task's data names the user among the image's annotators: the same substring test as the
    labeling stream's query (review_gate.exclude_annotated_by), so that what the stream serves a reviewer is
    what the gate lets them answer. A value that is not a string names nobody."""
    value = data.get(ANNOTATOR_IDS) if isinstance(data, dict) else None
    return isinstance(value, str) and annotator_marker(user_id) in value


def _is_task_of(item: Any, user_id: int) -> bool:
    return isinstance(item, dict) and annotated_by(item.get("data"), user_id)


def without_tasks_annotated_by(data: Any, user_id: int) -> Any:
    """The tasks whose data names the user among the annotators, anywhere inside the answer, are dropped from
    their list (or become null as a field's value). The answer itself is left to is_task_annotated_by."""
    if isinstance(data, list):
        return [without_tasks_annotated_by(item, user_id) for item in data if not _is_task_of(item, user_id)]
    if isinstance(data, dict):
        return {
            key: None if _is_task_of(value, user_id) else without_tasks_annotated_by(value, user_id)
            for key, value in data.items()
        }
    return data


def is_task_annotated_by(data: Any, user_id: int) -> bool:
    """Whether the answer itself is one task whose data names the user (a task's detail, the next task)."""
    return _is_task_of(data, user_id)


def has_review_project(data: Any) -> bool:
    return any(is_review_title(project.get("title")) for project in _projects(data))


def without_review_projects(data: Any) -> Any:
    """A project list (a list, or a paginated answer's ``results``) without the review projects."""
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return {**data, "results": without_review_projects(data["results"])}
    if isinstance(data, list):
        return [item for item in data if not (isinstance(item, dict) and is_review_title(item.get("title")))]
    return data


def _projects(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    return []
