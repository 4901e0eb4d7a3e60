"""The rule table applied where the caller is known: after Label Studio's own middleware has found the session's
user (and a JWT's, when its feature is on), and after Django has resolved the route, whatever the path's spelling
(percent-encoding, doubled slashes, dot segments: what is judged is the route that would run).

- Who is asking (``identify``): the session's user and the user of an ``Authorization: Token`` header, as Label
  Studio's API authenticates (its DRF authentication tries the token first, then the session). Different users
  in one request are refused.
- A worker is refused an ADMIN route (403), an object of someone else's (403), and a body that names another
  author or another user's annotation (403); what a worker reads loses other people's answers and every
  credential (redaction.py).
- Review projects (review.py, review_gate.py): a worker who is not a reviewer is refused anything that names
  one (403) and reads the project list without them; a reviewer is refused a review task of an image they
  annotated (403) and reads task lists without those tasks.
- Refusals carry ``X-Labeling-Gate: refused`` so that tests and operators can tell them from Label Studio's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

from labeling_gate import redaction, review, review_gate
from labeling_gate.decision import ANONYMOUS, Caller, Decision, Kind, decide
from labeling_gate.routes import Access, Rule

logger = logging.getLogger("labeling_gate")
REFUSED_HEADER = "X-Labeling-Gate"
JSON_TYPES = ("application/json",)
# Body fields that name a user: a worker may name only themselves.
AUTHOR_FIELDS = ("completed_by", "user", "updated_by")
# Body fields that point at an annotation: a worker may point only at their own.
ANNOTATION_FIELDS = ("annotation", "parent_annotation")


def identify(request: HttpRequest) -> Caller:
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    users: dict[int, Any] = {}
    session_user = getattr(request, "user", None)
    if session_user is not None and session_user.is_authenticated:
        users[session_user.pk] = session_user
    words = request.META.get("HTTP_AUTHORIZATION", "").split()
    if words and words[0].lower() == "token":
        if len(words) != 2:
            return ANONYMOUS
        try:
            token_user, _ = TokenAuthentication().authenticate_credentials(words[1])
        except AuthenticationFailed:
            # Label Studio answers 401 to a bad token, whatever the session: so does the gate.
            return ANONYMOUS
        users[token_user.pk] = token_user
    if not users:
        return ANONYMOUS
    if len(users) > 1:
        return Caller(Kind.CONFLICTING)
    (user,) = users.values()
    if not user.is_active:
        return ANONYMOUS
    return Caller(Kind.ADMIN if user.is_superuser else Kind.WORKER, user.pk)


def refused(reason: str, status: int = 403) -> HttpResponse:
    response = JsonResponse({"detail": reason}, status=status)
    response[REFUSED_HEADER] = "refused"
    return response


def _sign_in(request: HttpRequest, decision: Decision) -> HttpResponse:
    route = request.resolver_match.route if request.resolver_match else ""
    if route.startswith(("^api/", "api/", "labeling/api/")) or request.method not in ("GET", "HEAD"):
        return refused("authentication credentials were not provided", status=401)
    response = redirect_to_login(request.get_full_path())
    response[REFUSED_HEADER] = "sign-in"
    return response


def _owner_of(kind: str, object_id: Any) -> int | None:
    from data_manager.models import View
    from tasks.models import Annotation, AnnotationDraft

    try:
        key = int(object_id)
    except (TypeError, ValueError):
        return None
    if kind == "annotation":
        return Annotation.objects.filter(pk=key).values_list("completed_by_id", flat=True).first()
    if kind == "draft":
        return AnnotationDraft.objects.filter(pk=key).values_list("user_id", flat=True).first()
    if kind == "view":
        return View.objects.filter(pk=key).values_list("user_id", flat=True).first()
    raise ValueError(f"unknown owner kind {kind!r}")


def _object_exists_and_is_not_own(rule: Rule, view_kwargs: dict[str, Any], caller: Caller) -> bool:
    assert rule.owner is not None
    kind, argument = rule.owner.split(":")
    found = _owner_of(kind, view_kwargs.get(argument))
    # A missing object is Label Studio's 404 to give.
    return found is not None and found != caller.user_id


def _body_names_others(request: HttpRequest, caller: Caller) -> str | None:
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    if not request.content_type or not request.content_type.endswith("json"):
        if request.body.strip():
            return "annotations and drafts are sent as JSON"
        return None
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None  # Label Studio's 400 to give.
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict):
            continue
        for field in AUTHOR_FIELDS:
            value = item.get(field)
            if value not in (None, "") and not redaction._same_user(value, caller.user_id or -1):
                return f"{field} may name only yourself"
        for field in ANNOTATION_FIELDS:
            value = item.get(field)
            if value not in (None, "") and _owner_of("annotation", redaction._user_id(value)) not in (
                None,
                caller.user_id,
            ):
                return f"{field} may point only at your own annotation"
    return None


class AccessMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        caller: Caller | None = getattr(request, "labeling_caller", None)
        rule: Rule | None = getattr(request, "labeling_rule", None)
        if caller is not None and caller.is_worker and rule is not None:
            response = self._filtered(request, response, caller, rule)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        match = request.resolver_match
        caller = identify(request)
        decision = decide(match.route if match else None, request.method or "GET", caller, request.GET.getlist("id"))
        if not decision.allowed:
            if decision.sign_in:
                return _sign_in(request, decision)
            logger.info(
                "refused",
                extra={"route": match.route if match else None, "method": request.method, "user": caller.user_id},
            )
            return refused(decision.reason)
        request.labeling_caller = caller
        request.labeling_rule = decision.rule
        if not caller.is_worker:
            return None
        rule = decision.rule
        if rule.owner and _object_exists_and_is_not_own(rule, view_kwargs, caller):
            return refused("this belongs to another user")
        if rule.authorship and (problem := _body_names_others(request, caller)):
            return refused(problem)
        if rule.access != Access.PUBLIC and match is not None:
            assert caller.user_id is not None
            if problem := review_gate.refusal(request, match.route, view_kwargs, caller.user_id):
                return refused(problem)
        return None

    @staticmethod
    def _filtered(request: HttpRequest, response: HttpResponse, caller: Caller, rule: Rule) -> HttpResponse:
        content_type = response.get("Content-Type", "").split(";")[0].strip()
        if getattr(response, "streaming", False) or content_type not in JSON_TYPES or response.status_code >= 300:
            return response
        if response.get("Content-Encoding"):
            return refused("an encoded answer cannot be checked", status=502)
        try:
            data = json.loads(response.content)
        except ValueError:
            return response
        assert caller.user_id is not None
        filtered = redaction.for_worker(data, caller.user_id, rule.redact, keep_credentials=rule.own_credentials)
        if rule.redact == "tasks":
            # The requests are checked first (review_gate.refusal); this holds for whatever answer lists tasks.
            if review.is_task_annotated_by(filtered, caller.user_id):
                return refused(review_gate.OWN_IMAGE)
            filtered = review.without_tasks_annotated_by(filtered, caller.user_id)
        if (
            rule.redact == "projects"
            and review.has_review_project(filtered)
            and not review_gate.is_reviewer(request, caller.user_id)
        ):
            filtered = review.without_review_projects(filtered)
        if filtered == data:
            return response
        response.content = json.dumps(filtered).encode()
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
