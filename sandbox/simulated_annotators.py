"""Simulated annotators for the Label Studio demo: boxes nobody drew, submitted through Label Studio's HTTP API as
its editor submits them.

An annotator is a worker account (made with `bbox-labeling workers add`, as for a person) that signs in with its
password through the login form, takes its own API token (what its Account page shows), and works through the
project's labeling stream (`GET /api/projects/<id>/next` until Label Studio has no task left for it). For each
task it opens the image as the editor does (Label Studio's link, a redirect to a presigned S3 URL), and submits
pseudo-random boxes, fixed per image by the same rule as the Ground Truth demo's (sandbox.simulated_workers), as
rectanglelabels results in percent of the image: so the annotations carry that worker, not the pipeline's admin.

With pre-labels, a task comes with the detector's proposals as its prediction (the labeling stream hands over what
the editor shows). The annotator then corrects them as `simulated_workers.correct_proposals` decides, and submits
what the editor would: the annotation names the prediction it started from (``parent_prediction``), a kept region
keeps the prediction's region as it was (its id, ``origin: prediction``), a moved or relabeled one says
``prediction-changed`` and a drawn one ``manual``, and the lead time grows with the work done (simulated too).
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from PIL import Image

from labeling_pipeline.backends.label_studio.project import CONTROL_NAME
from labeling_pipeline.backends.label_studio.results import RECTANGLE_RESULT, TaskData
from sandbox.simulated_workers import (
    ACCEPTED_ORIGIN,
    MANUAL_ORIGIN,
    Correction,
    correct_proposals,
    seconds_without_proposals,
    simulated_boxes,
)

TIMEOUT_SECONDS = 30
# What a simulated annotator says it spent on a task (Label Studio's lead_time, seconds).
LEAD_TIME_SECONDS = 4.0
CORRECTION_KEYS = ("accepted", "moved", "relabeled", "deleted", "added")


class LabelStudioClient:
    """Label Studio's HTTP API with one account's token, on loopback (never through a proxy)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Token {token}"

    @classmethod
    def signed_in(cls, base_url: str, email: str, password: str) -> LabelStudioClient:
        return cls(base_url, worker_token(base_url, email, password))

    def request(self, method: str, path: str, **options: Any) -> Any:
        answer = self.http.request(method, f"{self.base_url}{path}", timeout=TIMEOUT_SECONDS, **options)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def me(self) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", "/api/current-user/whoami")
        return found

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The labeling stream's next task for this account; None when it has none left."""
        answer = self.http.get(f"{self.base_url}/api/projects/{project_id}/next", timeout=TIMEOUT_SECONDS)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        task: dict[str, Any] = answer.json()
        return task

    def source_ref(self, task_id: int) -> str:
        """The task's image as the pipeline imported it (s3://bucket/key), not the link made for a browser."""
        task = self.request("GET", f"/api/tasks/{task_id}", params={"resolve_uri": "false"})
        return str(task["data"][TaskData.IMAGE])

    def open_image(self, task_id: int) -> bytes:
        """The task's image as a browser gets it: Label Studio's link, redirected to a presigned URL."""
        link = str(self.request("GET", f"/api/tasks/{task_id}")["data"][TaskData.IMAGE])
        if link.startswith("/"):
            link = self.base_url + link
        # requests drops the Authorization header on the redirect to another port (the presigned URL's).
        answer = self.http.get(link, timeout=TIMEOUT_SECONDS)
        answer.raise_for_status()
        return answer.content

    def submit(
        self,
        task_id: int,
        result: list[dict[str, Any]],
        *,
        skipped: bool = False,
        lead_time: float = LEAD_TIME_SECONDS,
        parent_prediction: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"result": result, "was_cancelled": skipped, "lead_time": lead_time}
        if parent_prediction is not None:
            body["parent_prediction"] = parent_prediction
        created: dict[str, Any] = self.request("POST", f"/api/tasks/{task_id}/annotations", json=body)
        return created


# `workers add` and `workers reset` end with the link on a line of its own (LabelStudioWorkers).
PASSWORD_LINK = re.compile(r"^(https?://\S+/labeling/password/\S+/)$", re.MULTILINE)


def password_link(message: str) -> str:
    found = PASSWORD_LINK.search(message)
    if found is None:
        raise ValueError(f"no password link in: {message!r}")
    return found.group(1)


def choose_password(link: str, password: str) -> None:
    """What a worker does with the link `workers add` printed: opens it and chooses a password (Django's password
    reset confirmation: the token moves into the session, then the form is posted)."""
    session = requests.Session()
    session.trust_env = False
    page = session.get(link, timeout=TIMEOUT_SECONDS)
    page.raise_for_status()
    if 'name="new_password1"' not in page.text:
        raise PermissionError(f"the password link no longer works: {link}")
    chosen = session.post(
        page.url,
        data={
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "new_password1": password,
            "new_password2": password,
        },
        headers={"Referer": page.url},
        allow_redirects=False,
        timeout=TIMEOUT_SECONDS,
    )
    if chosen.status_code != 302 or not chosen.headers.get("Location", "").endswith("/labeling/password/done/"):
        raise PermissionError(
            f"Label Studio did not take the password (HTTP {chosen.status_code}): {chosen.text[:300]}"
        )


def signed_in_session(base_url: str, email: str, password: str, page: str | None = None) -> requests.Session:
    """A browser's session: the login form with Django's CSRF cookie; then its unsafe requests carry the CSRF
    token, and the site (or `page`) as Origin and Referer, as a browser's do. PermissionError when refused."""
    session = requests.Session()
    session.trust_env = False
    session.get(f"{base_url}/user/login/", timeout=TIMEOUT_SECONDS).raise_for_status()
    answer = session.post(
        f"{base_url}/user/login/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "email": email, "password": password},
        headers={"Referer": f"{base_url}/user/login/"},
        allow_redirects=False,
        timeout=TIMEOUT_SECONDS,
    )
    if answer.status_code != 302:
        raise PermissionError(f"Label Studio refused the sign-in of {email} (HTTP {answer.status_code})")
    session.headers.update(
        {"X-CSRFToken": str(session.cookies["csrftoken"]), "Origin": base_url, "Referer": page or f"{base_url}/"}
    )
    return session


def signs_in(base_url: str, email: str, password: str) -> bool:
    try:
        signed_in_session(base_url, email, password)
    except PermissionError:
        return False
    return True


def worker_token(base_url: str, email: str, password: str) -> str:
    """An account's own API token, as its Account page shows it: signed in through the login form first."""
    answer = signed_in_session(base_url, email, password).get(
        f"{base_url}/api/current-user/token", timeout=TIMEOUT_SECONDS
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def image_size(picture: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(picture)) as image:
        return image.width, image.height


def rectangle(
    label: str,
    left: float,
    top: float,
    width: float,
    height: float,
    size: tuple[int, int],
    *,
    region_id: str | None = None,
    origin: str | None = None,
) -> dict:
    """A box in pixels as Label Studio's editor writes it: percent of the image it was drawn on (with the editor's
    region id and origin, when given)."""
    image_width, image_height = size
    extra = {key: value for key, value in (("id", region_id), ("origin", origin)) if value is not None}
    return {
        **extra,
        "type": RECTANGLE_RESULT,
        "from_name": CONTROL_NAME,
        "to_name": TaskData.IMAGE,
        "original_width": image_width,
        "original_height": image_height,
        "image_rotation": 0,
        "value": {
            "x": left * 100 / image_width,
            "y": top * 100 / image_height,
            "width": width * 100 / image_width,
            "height": height * 100 / image_height,
            "rotation": 0,
            RECTANGLE_RESULT: [label],
        },
    }


def simulated_boxes_for(source_ref: str, size: tuple[int, int], labels: list[str]) -> list[list[Any]]:
    """The boxes the simulated annotator draws on this image, [label, left, top, width, height] in pixels: the
    same ones on every run."""
    return [
        [labels[box["class_id"]], box["left"], box["top"], box["width"], box["height"]]
        for box in simulated_boxes(source_ref, size[0], size[1], len(labels))
    ]


@dataclass
class Answer:
    task_id: int
    source_ref: str
    width: int
    height: int
    boxes: list[list[Any]] = field(default_factory=list)  # [label, left, top, width, height] in pixels
    # With pre-labels: how many proposals the task showed (None: none, the task had no prediction), what the
    # annotator did with them, and the lead time it reported.
    proposals: int | None = None
    correction: dict[str, int] | None = None
    lead_time: float = LEAD_TIME_SECONDS


def shown_prediction(task: dict[str, Any]) -> dict[str, Any] | None:
    """The prediction the editor opens a task with: the labeling stream sends only those of the project's model
    version."""
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict) and p.get("result") is not None]
    return predictions[0] if predictions else None


def _pixels(region: dict[str, Any]) -> tuple[str, float, float, float, float]:
    value, width, height = region["value"], region["original_width"], region["original_height"]
    return (
        str(value[RECTANGLE_RESULT][0]),
        value["x"] * width / 100,
        value["y"] * height / 100,
        value["width"] * width / 100,
        value["height"] * height / 100,
    )


def corrected_result(
    source_ref: str, prediction: dict[str, Any], size: tuple[int, int], labels: list[str]
) -> tuple[list[dict[str, Any]], Correction]:
    """The result the editor submits once the annotator has corrected the prediction's regions."""
    regions = [r for r in prediction["result"] if r.get("type") == RECTANGLE_RESULT]
    correction = correct_proposals(source_ref, [_pixels(region) for region in regions], size, labels)
    result = []
    for index, box in enumerate(correction.boxes):
        if box.proposal is not None and box.origin == ACCEPTED_ORIGIN:
            # Kept as it was: the prediction's region, to the last decimal, as the editor submits it.
            result.append({**copy.deepcopy(regions[box.proposal]), "origin": ACCEPTED_ORIGIN})
            continue
        # A changed region keeps its prediction's id, as in the editor; a drawn one gets its own.
        region_id = str(regions[box.proposal]["id"]) if box.proposal is not None else _drawn_id(source_ref, index)
        result.append(
            rectangle(box.label, box.left, box.top, box.width, box.height, size, region_id=region_id, origin=box.origin)
        )
    return result, correction


def _drawn_id(source_ref: str, index: int) -> str:
    return hashlib.sha256(f"{MANUAL_ORIGIN}\n{source_ref}\n{index}".encode()).hexdigest()[:10]


class SimulatedAnnotator:
    """With `timed`, an image labeled from scratch reports a lead time by its boxes (for a report that compares
    images with and without proposals); otherwise LEAD_TIME_SECONDS, as before pre-labels."""

    def __init__(self, client: LabelStudioClient, project_id: int, labels: list[str], *, timed: bool = False) -> None:
        self.client = client
        self.project_id = project_id
        self.labels = labels
        self.timed = timed

    def label_all(self, report: Callable[[Answer], None]) -> list[Answer]:
        """Every task the labeling stream hands this account, answered in turn; `report` hears of each."""
        answers = []
        while (task := self.client.next_task(self.project_id)) is not None:
            task_id = int(task["id"])
            source_ref = self.client.source_ref(task_id)
            size = image_size(self.client.open_image(task_id))
            prediction = shown_prediction(task)
            if prediction is None:
                answer = Answer(task_id, source_ref, *size, boxes=simulated_boxes_for(source_ref, size, self.labels))
                answer.lead_time = seconds_without_proposals(len(answer.boxes)) if self.timed else LEAD_TIME_SECONDS
                result = [rectangle(label, x, y, w, h, size) for label, x, y, w, h in answer.boxes]
                self.client.submit(task_id, result, lead_time=answer.lead_time)
            else:
                result, correction = corrected_result(source_ref, prediction, size, self.labels)
                answer = Answer(
                    task_id,
                    source_ref,
                    *size,
                    boxes=[[b.label, b.left, b.top, b.width, b.height] for b in correction.boxes],
                    proposals=len(prediction["result"]),
                    correction={key: getattr(correction, key) for key in CORRECTION_KEYS},
                    lead_time=correction.seconds(),
                )
                self.client.submit(task_id, result, lead_time=answer.lead_time, parent_prediction=int(prediction["id"]))
            answers.append(answer)
            report(answer)
        return answers
