"""What a worker's JSON answers lose: other people's answers, other users' details, and any credential.

Pure functions on parsed JSON. Label Studio Community shows every member every task with every annotation (the
data manager's task list with ``fields=all``, a task's detail, the labeling stream's next task); a worker keeps
their own annotations and drafts, the task's data and its predictions (the pre-labels they are meant to see),
and the counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Keys whose values are someone's credential or a way in; removed from everything a worker reads, except the
# answers that are the worker's own token (routes.Rule.own_credentials).
CREDENTIAL_KEYS = frozenset(
    {
        "token",
        "invite_url",
        "task_data_login",
        "task_data_password",
        "basic_auth_user",
        "basic_auth_pass",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "google_application_credentials",
        "password",
        "headers",
        "refresh",
        "access",
    }
)
# A task's keys that tell whose answers exist and what they say: the data manager's summary columns.
TASK_KEYS_OF_OTHERS = ("annotations_results", "annotations_ids", "annotators", "comment_authors", "reviewers")
USER_FIELDS = ("id", "first_name", "last_name", "username", "avatar", "initials")
ML_BACKEND_FIELDS = ("id", "title", "is_interactive", "state", "project")


def _user_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def _same_user(value: Any, user_id: int) -> bool:
    found = _user_id(value)
    try:
        return found is not None and int(found) == user_id
    except (TypeError, ValueError):
        return False


def without_credentials(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: without_credentials(value) for key, value in data.items() if key not in CREDENTIAL_KEYS}
    if isinstance(data, list):
        return [without_credentials(item) for item in data]
    return data


def tasks(data: Any, user_id: int) -> Any:
    """Every task object anywhere in the answer keeps only the caller's own annotations and drafts."""
    if isinstance(data, list):
        return [tasks(item, user_id) for item in data]
    if not isinstance(data, dict):
        return data
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key == "annotations" and isinstance(value, list):
            kept[key] = [
                tasks(a, user_id) for a in value if isinstance(a, dict) and _same_user(a.get("completed_by"), user_id)
            ]
        elif key == "drafts" and isinstance(value, list):
            kept[key] = [d for d in value if isinstance(d, dict) and _same_user(d.get("user"), user_id)]
        elif key in TASK_KEYS_OF_OTHERS:
            kept[key] = [] if isinstance(value, list) else ""
        else:
            kept[key] = tasks(value, user_id)
    return kept


def own_annotations(data: Any, user_id: int) -> Any:
    """A list of annotations (a task's): the caller's own."""
    return _each(data, lambda one: tasks(one, user_id) if _same_user(one.get("completed_by"), user_id) else None)


def own_drafts(data: Any, user_id: int) -> Any:
    """A list of drafts (a task's, or an annotation's): the caller's own."""
    return _each(data, lambda one: one if _same_user(one.get("user"), user_id) else None)


def _each(data: Any, one: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Any:
    """Applies `one` to each object of a list or of a paginated answer's results (None drops it)."""
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return {**data, "results": _each(data["results"], one)}
    if isinstance(data, list):
        return [kept for item in data if isinstance(item, dict) and (kept := one(item)) is not None]
    if isinstance(data, dict):
        return one(data) or {}
    return data


def users(data: Any, user_id: int) -> Any:
    def one(user: dict[str, Any]) -> dict[str, Any]:
        fields = (*USER_FIELDS, "email") if _same_user(user.get("id"), user_id) else USER_FIELDS
        return {key: user[key] for key in fields if key in user}

    return _each(data, one)


def views(data: Any, user_id: int) -> Any:
    return _each(data, lambda view: view if _same_user(view.get("user"), user_id) else None)


def ml_backends(data: Any, user_id: int) -> Any:
    return _each(data, lambda backend: {key: backend[key] for key in ML_BACKEND_FIELDS if key in backend})


def projects(data: Any, user_id: int) -> Any:
    return data


REDACTIONS: dict[str, Callable[[Any, int], Any]] = {
    "tasks": tasks,
    "annotations": own_annotations,
    "drafts": own_drafts,
    "users": users,
    "views": views,
    "ml-backends": ml_backends,
    "projects": projects,
}


def for_worker(data: Any, user_id: int, redaction: str | None, *, keep_credentials: bool) -> Any:
    if redaction is not None:
        data = REDACTIONS[redaction](data, user_id)
    return data if keep_credentials else without_credentials(data)
