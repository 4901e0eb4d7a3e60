"""The review rules (review.py states the contract) where Django runs: which projects and tasks a worker's request
names, whether one is a review project, whether the caller is a reviewer, and the labeling stream that leaves out
a reviewer's own images.

Cheap by design. A request that names no project and no project's object costs no query; one that does costs an
indexed query per kind of object it names (a task with its project's title and its data, in one join) and at
most one more for the titles of projects named by id alone; whether the caller is a reviewer is asked only when a
review project is named (one indexed query, kept on the request).

What names a project (every place Label Studio reads one from, for the routes a worker may call):
- the URL: ``projects/<pk>`` and ``api/projects/<pk>`` (pages and API), ``api/tasks/<pk>``, ``tasks/<task_id>``,
  ``api/annotations/<pk>``, ``annotation_id``, ``api/drafts/<pk>``, ``api/predictions/<pk>``,
  ``api/dm/views/<pk>``;
- the query string and the body (JSON, a form): ``project``, ``view`` (a data-manager tab, whose project the
  task list reads), ``task``, ``annotation``, ``parent_annotation``, ``draft``, ``prediction``,
  ``parent_prediction``; every value given, as Python's ``int`` reads it (as Label Studio does: " 5", "05", "+5"
  and other digits alike), JSON ``true`` as 1;
- nothing, on the two data-manager routes that then take project 1 (``api/dm/columns/``, ``api/dm/project/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.http.request import RawPostDataException

from labeling_gate.review import ANNOTATOR_IDS, REVIEWER_GROUP, annotated_by, annotator_marker, is_review_title

PROJECT, TASK, ANNOTATION, DRAFT, PREDICTION, VIEW = "project", "task", "annotation", "draft", "prediction", "view"
KINDS = (PROJECT, TASK, ANNOTATION, DRAFT, PREDICTION, VIEW)

# A route's `pk`, by the route's beginning.
_PK_KINDS = (
    ("^api/projects/<int:pk>", PROJECT),
    ("^projects/<int:pk>", PROJECT),
    ("^api/tasks/<int:pk>", TASK),
    ("^api/annotations/<int:pk>", ANNOTATION),
    ("^api/drafts/<int:pk>", DRAFT),
    ("^api/predictions/(?P<pk>", PREDICTION),
    ("^api/dm/views/(?P<pk>", VIEW),
)
# Other URL arguments, by name.
_ARGUMENT_KINDS = {"project_id": PROJECT, "task_id": TASK, "annotation_id": ANNOTATION}
# Query and body fields.
FIELD_KINDS = {
    "project": PROJECT,
    "view": VIEW,
    "task": TASK,
    "annotation": ANNOTATION,
    "parent_annotation": ANNOTATION,
    "draft": DRAFT,
    "prediction": PREDICTION,
    "parent_prediction": PREDICTION,
}
# data_manager/api.py: ProjectColumnsAPI and ProjectStateAPI read ``int_from_request(request.GET, 'project', 1)``.
_DEFAULT_PROJECT = {"^api/dm/columns/": 1, "^api/dm/project/": 1}
# More ids than any client of ours sends in one request: refused rather than looked up.
MAX_NAMED = 50
_LARGEST_ID = 2**63 - 1

NOT_A_REVIEWER = "only reviewers may see review projects and their tasks"
OWN_IMAGE = "you annotated this image: someone else reviews it"


class Unreadable(Exception):
    """A body the gate cannot read for the ids it names."""


@dataclass(frozen=True)
class Touched:
    """A project that a request names, with the task's data when it names one of its tasks."""

    project_id: int
    title: str
    task_data: Any = None
    is_task: bool = False


def _ids(value: Any, depth: int = 0) -> Iterator[int]:
    if isinstance(value, bool | int):
        found: int | None = int(value)
    elif isinstance(value, float):
        found = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        try:
            found = int(value)
        except ValueError:
            found = None
    elif isinstance(value, list | tuple) and depth == 0:
        for item in value:
            yield from _ids(item, depth + 1)
        return
    elif isinstance(value, dict) and depth <= 1:
        yield from _ids(value.get("id"), depth + 1)
        return
    else:
        found = None
    if found is not None and 0 < found <= _LARGEST_ID:
        yield found


def _body_fields(request: HttpRequest) -> list[Mapping[str, Any]]:
    """The body's top-level objects (JSON) or its fields (a form), as mappings of field to value(s)."""
    content_type = (request.content_type or "").lower()
    if content_type.startswith("multipart/"):
        if request.method != "POST":
            # Django parses a multipart body only on POST; Label Studio's parsers would read it on any method.
            raise Unreadable("a multipart body is read on POST only: send JSON")
        try:
            return [{field: request.POST.getlist(field) for field in request.POST}]
        except MultiPartParserError as error:
            raise Unreadable("a multipart body that cannot be parsed") from error
    try:
        body = request.body
    except RawPostDataException as error:
        raise Unreadable("the body was read before the gate could check it") from error
    if not body.strip():
        return []
    if "json" in content_type:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return []  # Label Studio's 400 to give.
        items = parsed if isinstance(parsed, list) else [parsed]
        return [item for item in items if isinstance(item, dict)]
    if content_type == "application/x-www-form-urlencoded":
        form = QueryDict(body)
        return [{field: form.getlist(field) for field in form}]
    return []  # No parser of Label Studio's reads it (DRF answers 415, or sees no data without a type).


def named_objects(request: HttpRequest, route: str, view_kwargs: Mapping[str, Any]) -> dict[str, set[int]]:
    named: dict[str, set[int]] = {kind: set() for kind in KINDS}
    for argument, value in view_kwargs.items():
        kind = _ARGUMENT_KINDS.get(argument)
        if argument == "pk":
            kind = next((kind for prefix, kind in _PK_KINDS if route.startswith(prefix)), None)
        if kind is not None:
            named[kind].update(_ids(value))
    for field, kind in FIELD_KINDS.items():
        named[kind].update(_ids(request.GET.getlist(field)))
    for item in _body_fields(request):
        for field, kind in FIELD_KINDS.items():
            if field in item:
                named[kind].update(_ids(item[field]))
    if route in _DEFAULT_PROJECT and "project" not in request.GET:
        named[PROJECT].add(_DEFAULT_PROJECT[route])
    return named


def touched(named: Mapping[str, set[int]]) -> list[Touched]:
    """The projects the named objects belong to, each task with its data: one query per kind named."""
    from data_manager.models import View
    from projects.models import Project  # type: ignore[import-not-found]
    from tasks.models import Annotation, AnnotationDraft, Prediction, Task

    found: list[Touched] = []

    def add(project_id: int | None, title: str | None, task_data: Any = None, *, is_task: bool = False) -> None:
        if project_id is not None:
            found.append(Touched(int(project_id), title or "", task_data, is_task))

    if named[TASK]:
        for row in Task.objects.filter(pk__in=named[TASK]).values_list("project_id", "project__title", "data"):
            add(*row, is_task=True)
    via_task = ("task__project_id", "task__project__title", "task__data")
    for model, kind in ((Annotation, ANNOTATION), (Prediction, PREDICTION)):
        # Both name their project and their task.
        if named[kind]:
            rows = model.objects.filter(pk__in=named[kind])
            for project_id, title, *task in rows.values_list("project_id", "project__title", *via_task):
                add(project_id, title)
                add(*task, is_task=True)
    if named[DRAFT]:
        via_annotation = tuple(f"annotation__{field}" for field in via_task)
        for row in AnnotationDraft.objects.filter(pk__in=named[DRAFT]).values_list(*via_task, *via_annotation):
            add(*row[:3], is_task=True)
            add(*row[3:], is_task=True)
    if named[VIEW]:
        for row in View.objects.filter(pk__in=named[VIEW]).values_list("project_id", "project__title"):
            add(*row)
    unknown = named[PROJECT] - {one.project_id for one in found}
    if unknown:
        for row in Project.objects.filter(pk__in=unknown).values_list("pk", "title"):
            add(*row)
    return found


def is_reviewer(request: HttpRequest, user_id: int) -> bool:
    """Whether the caller is in the reviewers' group; asked once per request."""
    cached = getattr(request, "labeling_reviewer", None)
    if cached is None:
        from django.contrib.auth.models import Group

        cached = Group.objects.filter(name=REVIEWER_GROUP, user__pk=user_id).exists()
        request.labeling_reviewer = cached
    return bool(cached)


def refusal(request: HttpRequest, route: str, view_kwargs: Mapping[str, Any], user_id: int) -> str | None:
    """Why a worker's request is refused by the review rules, or None."""
    try:
        named = named_objects(request, route, view_kwargs)
    except Unreadable as error:
        return str(error)
    count = sum(len(ids) for ids in named.values())
    if count == 0:
        return None
    if count > MAX_NAMED:
        return f"a request may name at most {MAX_NAMED} projects, tasks, annotations, drafts, predictions or tabs"
    review = [one for one in touched(named) if is_review_title(one.title)]
    if not review:
        return None
    if not is_reviewer(request, user_id):
        return NOT_A_REVIEWER
    if any(one.is_task and annotated_by(one.task_data, user_id) for one in review):
        return OWN_IMAGE
    return None


# --- the labeling stream -------------------------------------------------------------------------------------


def exclude_annotated_by(queryset: Any, project: Any, user: Any) -> Any:
    """A review project's tasks without those of images the user annotated (the same test as
    review.annotated_by, in SQL: works on SQLite and PostgreSQL). Any other project's tasks are left as they are.
    Applies to whoever asks, administrators included: nobody is served their own image to review."""
    if not is_review_title(getattr(project, "title", None)) or user is None or not user.is_authenticated:
        return queryset
    return queryset.exclude(**{f"data__{ANNOTATOR_IDS}__icontains": annotator_marker(user.pk)})


def install_next_task_action() -> None:
    """The data manager's ``next_task`` action (what the labeling stream in the browser calls) with the same
    exclusion: its entry point wrapped in Label Studio's action registry."""
    import data_manager.actions  # noqa: F401  (registers Label Studio's actions)
    from django.conf import settings

    action = settings.DATA_MANAGER_ACTIONS.get("next_task")
    if action is None or getattr(action["entry_point"], "labeling_gate", False):
        return
    original = action["entry_point"]

    def next_task(project: Any, queryset: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request")
        queryset = exclude_annotated_by(queryset, project, getattr(request, "user", None))
        return original(project, queryset, **kwargs)

    next_task.labeling_gate = True  # type: ignore[attr-defined]
    action["entry_point"] = next_task
