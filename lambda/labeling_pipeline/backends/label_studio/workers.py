"""Label Studio accounts for `gt-labeling workers add|remove|list`.

Sign-up stays closed (DISABLE_SIGNUP_WITHOUT_LINK): Label Studio Community creates an account with a
password only through its sign-up form with the organization's invite token, and its API cannot set a
password. So `add` turns the invite token over, signs the worker up through the form with a random
temporary password (20 bytes from `secrets`, far above Cognito's default temporary password), and turns the
token over again at once: no invite link is open to anyone, before or after. The temporary password is
printed once, to the operator who ran the command, and stored nowhere; the worker changes it after the
first sign-in (Account & Settings). `remove` ends the worker's membership of the organization (their
annotations keep their author); `list` shows the members.
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import urllib3

from labeling_pipeline.backends import WorkerError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioRefused

TEMPORARY_PASSWORD_BYTES = 20


def temporary_password() -> str:
    return secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)


class LabelStudioWorkers:
    def __init__(self, api: LabelStudioApi, make_password: Any = temporary_password) -> None:
        self._api = api
        self._make_password = make_password

    def _members(self) -> list[dict[str, Any]]:
        organization = self._api.current_user()["active_organization"]
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._api.request(
                "GET", f"/api/organizations/{organization}/memberships", query={"page": page, "page_size": 100}
            )
            rows = answer.get("results", answer) if isinstance(answer, dict) else answer
            found.extend(rows)
            if not isinstance(answer, dict) or not answer.get("next"):
                return found
            page += 1

    def list(self) -> list[str]:
        me = self._api.current_user()
        return sorted(
            str(member["user"]["email"])
            for member in self._members()
            if isinstance(member.get("user"), dict)
            # A removed member stays listed, masked as "Deleted" and with no active organization.
            and member["user"].get("active_organization") == me["active_organization"]
            and member["user"].get("email") != me["email"]
        )

    def add(self, email: str) -> str:
        email = email.strip().lower()
        if email in self.list():
            raise WorkerError(f"{email} is already a worker")
        password = self._make_password()
        self._api.request("POST", "/api/invite/reset-token")
        try:
            token = self._api.request("GET", "/api/invite")["token"]
            self._sign_up(email, password, token)
        finally:
            # The token that let this one sign-up through is dead as soon as it is used (or failed).
            self._api.request("POST", "/api/invite/reset-token")
        return (
            f"Added {email} to Label Studio at {self._api.base_url}. Temporary password (shown once, stored "
            f"nowhere; hand it over privately): {password}\n"
            f"The worker signs in at {self._api.base_url}/user/login and changes it under Account & Settings."
        )

    def _sign_up(self, email: str, password: str, token: str) -> None:
        pool = urllib3.PoolManager()
        url = f"{self._api.base_url}/user/signup/?{urlencode({'token': token})}"
        page = pool.request("GET", url, redirect=False, retries=False, timeout=30.0)
        cookie = SimpleCookie()
        for header in page.headers.getlist("Set-Cookie"):
            cookie.load(header)
        if "csrftoken" not in cookie:
            raise WorkerError(f"Label Studio's sign-up page at {url} set no CSRF cookie (HTTP {page.status})")
        csrf = cookie["csrftoken"].value
        answer = pool.request(
            "POST",
            url,
            body=urlencode({"csrfmiddlewaretoken": csrf, "email": email, "password": password}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf}",
                "Referer": url,
                "X-CSRFToken": csrf,
            },
            redirect=False,
            retries=False,
            timeout=30.0,
        )
        if answer.status not in (301, 302, 303):
            text = answer.data.decode("utf-8", "replace")
            reason = (
                "an account with this email already exists" if "already exists" in text else f"HTTP {answer.status}"
            )
            raise WorkerError(f"Label Studio did not create the account for {email}: {reason}")

    def remove(self, email: str) -> str:
        email = email.strip().lower()
        organization = self._api.current_user()["active_organization"]
        for member in self._members():
            user = member.get("user")
            if (
                isinstance(user, dict)
                and str(user.get("email", "")).lower() == email
                and user.get("active_organization") == organization
            ):
                try:
                    self._api.request("DELETE", f"/api/organizations/{organization}/memberships/{user['id']}")
                except LabelStudioRefused as error:
                    raise WorkerError(f"Label Studio refused to remove {email}: {error}") from None
                return (
                    f"Removed {email} from Label Studio at {self._api.base_url}; their annotations keep their author."
                )
        raise WorkerError(f"{email} is not a worker")
