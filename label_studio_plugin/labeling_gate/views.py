"""The worker-account API that the pipeline's CLI calls (administrators only: routes.py), and the page on which
a worker chooses a password (anyone holding a valid link)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest
from django.urls import reverse_lazy
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling_gate import accounts


def _base_url(request: HttpRequest) -> str:
    # The public address (LABEL_STUDIO_HOST), not the load balancer's or the container's.
    return str(getattr(settings, "HOSTNAME", "") or request.build_absolute_uri("/"))


def _email(request: Request) -> str:
    if not isinstance(request.data, dict):
        raise accounts.AccountError("the body must be a JSON object", 400)
    return str(request.data.get("email", ""))


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
        return _answer(lambda: _link(accounts.add_worker(request.user, _email(request), _base_url(request))))


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
