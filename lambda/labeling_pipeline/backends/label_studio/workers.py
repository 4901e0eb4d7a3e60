"""Label Studio accounts for `bbox-labeling workers add|reset|remove|list`, through the worker-account API that the
deployment installs into Label Studio (label_studio_plugin/labeling_gate/accounts.py; administrators only).

Sign-up is closed to everyone: no invite token is ever shown or used. `add` makes the account without a password
and prints a one-time link on which the worker chooses their own (Django's password reset token: it expires
after labelStudioPasswordLinkHours, 72 by default, and dies once used). The operator hands the link over; it is
stored nowhere. `reset` prints a new link and makes the old password unusable, which signs the worker out
everywhere. `remove` deactivates the account and ends the membership; their annotations keep their author.

Reviewers (labeling_gate/review.py): `add --reviewer` makes a new account a reviewer (with its link) or an
existing worker one (no link: they keep their password); `remove --reviewer` takes the role away and keeps the
account; `list` marks reviewers.
"""

from __future__ import annotations

from typing import Any

from labeling_pipeline.backends import WorkerError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioNotFound, LabelStudioRefused

WORKERS_PATH = "/labeling/api/workers/"
PASSWORD_LINK_PATH = "/labeling/api/workers/password-link/"
REMOVE_PATH = "/labeling/api/workers/remove/"


class LabelStudioWorkers:
    def __init__(self, api: LabelStudioApi) -> None:
        self._api = api

    def _call(self, path: str, email: str | None = None, **fields: Any) -> Any:
        try:
            if email is None:
                return self._api.request("GET", path)
            return self._api.request("POST", path, body={"email": email.strip().lower(), **fields})
        except LabelStudioNotFound as error:
            if email is not None and error.detail:
                raise WorkerError(error.detail) from None
            raise WorkerError(
                f"Label Studio at {self._api.base_url} has no worker-account API ({path}): is it the deployment's "
                "Label Studio, started with labeling_gate (label_studio_plugin/)?"
            ) from None
        except LabelStudioRefused as error:
            raise WorkerError(error.detail or str(error)) from None

    def list(self) -> list[str]:
        return [
            f"{row['email']}"
            + ("  (reviewer)" if row.get("reviewer") else "")
            + ("" if row.get("has_password") else "  (has not chosen a password yet)")
            for row in self._call(WORKERS_PATH)
        ]

    def add(self, email: str, *, reviewer: bool = False) -> str:
        answer = self._call(WORKERS_PATH, email, **({"reviewer": True} if reviewer else {}))
        where = f"Label Studio at {self._api.base_url}"
        if "password_link" not in answer:
            return (
                f"Made {answer['email']} a reviewer in {where}; they sign in as before (no new link: `workers "
                "reset` makes one if they need it)."
            )
        role = " as a reviewer" if answer.get("reviewer") else ""
        return _link_message(f"Added {answer['email']} to {where}{role}.", answer)

    def reset(self, email: str) -> str:
        answer = self._call(PASSWORD_LINK_PATH, email)
        return _link_message(
            f"{answer['email']}'s old password no longer works and their sessions are signed out.", answer
        )

    def remove(self, email: str, *, reviewer: bool = False) -> str:
        if reviewer:
            answer = self._call(WORKERS_PATH, email, reviewer=False)
            return (
                f"{answer['email']} is no longer a reviewer in Label Studio at {self._api.base_url}; they stay a "
                "worker, and their reviews keep their author."
            )
        answer = self._call(REMOVE_PATH, email)
        return (
            f"Removed {answer['email']} from Label Studio at {self._api.base_url}; their annotations keep their author."
        )


def _link_message(first_line: str, answer: dict[str, Any]) -> str:
    return (
        f"{first_line}\nSend the worker this link, privately; on it they choose their own password (valid "
        f"{answer['expires_in_hours']} hours, once; stored nowhere):\n{answer['password_link']}"
    )
