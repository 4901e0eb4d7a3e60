"""The worker-account API that the pipeline's CLI calls (administrators only: routes.py), the page on which a
worker chooses a password (anyone holding a valid link), and Label Studio's next-task API with a reviewer's own
images left out (review.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest
from django.urls import reverse_lazy
from projects import api as projects_api  # type: ignore[import-not-found]
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling_gate import accounts
from labeling_gate.review_gate import exclude_annotated_by


def _base_url(request: HttpRequest) -> str:
    # The public address (LABEL_STUDIO_HOST), not the load balancer's or the container's.
    return str(getattr(settings, "HOSTNAME", "") or request.build_absolute_uri("/"))


def _email(request: Request) -> str:
    if not isinstance(request.data, dict):
        raise accounts.AccountError("the body must be a JSON object", 400)
    return str(request.data.get("email", ""))


def _reviewer(request: Request) -> bool | None:
    """The body's optional ``reviewer``: True, False, or None when it is not given."""
    value = request.data.get("reviewer") if isinstance(request.data, dict) else None
    if value is None or isinstance(value, bool):
        return value
    raise accounts.AccountError("reviewer must be true or false", 400)


def _answer(run: Any) -> Response:
    try:
        return Response(run(), status=200)
    except accounts.AccountError as error:
        return Response({"detail": str(error)}, status=error.status)


def _link(link: accounts.PasswordLink) -> dict[str, Any]:
    return {"email": link.email, "password_link": link.url, "expires_in_hours": link.hours}


class AdminApi(APIView):
    """Label Studio's own API authentication (its token, then the session with CSRF); superusers only, which the
    middleware has already enforced."""

    permission_classes = (IsAuthenticated, IsAdminUser)


class Workers(AdminApi):
    def get(self, request: Request) -> Response:
        return _answer(lambda: accounts.list_workers(request.user))

    def post(self, request: Request) -> Response:
        """``{"email": ..., "reviewer": true|false}`` (``reviewer`` optional): a new account, with its password
        link; or, for an existing worker with ``reviewer`` given, the reviewer role added or taken away (no link:
        they keep their password). accounts.add_worker says which."""

        def run() -> dict[str, Any]:
            email, reviewer = _email(request), _reviewer(request)
            added = accounts.add_worker(request.user, email, _base_url(request), reviewer=reviewer)
            if added.link is None:
                return {"email": added.email, "reviewer": added.reviewer, "role_changed": True}
            return {**_link(added.link), "reviewer": added.reviewer}

        return _answer(run)


class PasswordLink(AdminApi):
    def post(self, request: Request) -> Response:
        return _answer(lambda: _link(accounts.new_password_link(request.user, _email(request), _base_url(request))))


class RemoveWorker(AdminApi):
    def post(self, request: Request) -> Response:
        def run() -> dict[str, Any]:
            email = _email(request)
            accounts.remove_worker(request.user, email)
            return {"email": accounts.normalized(email), "removed": True}

        return _answer(run)


class ChoosePassword(auth_views.PasswordResetConfirmView):
    """Django's own password reset confirmation: the link's token is checked, moved into the session and taken
    off the URL, and the new password goes through AUTH_PASSWORD_VALIDATORS (Label Studio's length rule)."""

    template_name = "labeling_gate/choose_password.html"
    success_url = reverse_lazy("labeling-password-chosen")


class PasswordChosen(auth_views.PasswordResetCompleteView):
    template_name = "labeling_gate/password_chosen.html"


class ReviewAwareNextTaskAPI(projects_api.ProjectNextTaskAPI):
    """``GET /api/projects/<pk>/next/`` (urls.py puts it before Label Studio's own): Label Studio 1.23.2's
    ProjectNextTaskAPI.get, with one line added: on a review project, the tasks it picks from leave out the
    images the caller annotated (review_gate.exclude_annotated_by)."""

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        project = self.get_object()
        dm_queue = projects_api.filters_ordering_selected_items_exist(request.data)
        prepared_tasks = projects_api.get_prepared_queryset(request, project)
        prepared_tasks = exclude_annotated_by(prepared_tasks, project, request.user)
        next_task, queue_info = projects_api.get_next_task(request.user, prepared_tasks, project, dm_queue)
        if next_task is None:
            raise projects_api.NotFound(f"There are no tasks for {request.user}")
        context = {"request": request, "project": project, "resolve_uri": True, "annotations": False}
        response = projects_api.NextTaskSerializer(next_task, context=context).data
        response["queue"] = queue_info
        return Response(response)
