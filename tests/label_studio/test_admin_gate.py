"""Workers can only label, with the deployed site's rules in front of a real Label Studio (sandbox's gate runs
the CloudFront Function's code, labeling_pipeline.backends.label_studio.access, under Node.js).

Through the gate: the pipeline (its API token is the credential) makes the project, its storage and its
webhook, imports a job's tasks and adds a worker; the worker labels in Label Studio's own UI, in a real browser,
and every request of that session passes; the same worker's session cookie, or its own API token, cannot
delete or rename the project, export it, read the webhook, turn the invite over or remove a member (403), which
Label Studio itself would allow (Community has no roles); the pipeline still can.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labeling_pipeline.backends.label_studio import setup_handler
from labeling_pipeline.backends.label_studio.access import ADMIN_DIGEST_RESOURCE_TYPE, credential_digest
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import draw_box
from sandbox.label_studio_gate import LabelStudioGate
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import FakeContext, Pipeline, label_studio_pipeline, png, until
from tests.label_studio.record_worker_session import FIXTURE, same_origin_requests

WORKER = "gated-worker@example.com"


@pytest.fixture(scope="module")
def gate(label_studio: LabelStudioServer) -> Iterator[LabelStudioGate]:
    with LabelStudioGate(label_studio.url, label_studio.token) as running:
        yield running


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer, gate: LabelStudioGate) -> Iterator[Pipeline]:
    # The pipeline reaches Label Studio only through the gate, as the deployed one reaches it through CloudFront.
    behind_gate = copy.copy(label_studio)
    behind_gate.url = gate.url
    with label_studio_pipeline(moto_s3_server, behind_gate, "Behind the gate") as world:
        yield world


def sign_in(base_url: str, email: str, password: str) -> requests.Session:
    """A browser's session: the login form with Django's CSRF cookie; later writes carry the CSRF token."""
    session = requests.Session()
    session.get(f"{base_url}/user/login/", timeout=30).raise_for_status()
    answer = session.post(
        f"{base_url}/user/login/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "email": email, "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.status_code
    csrf = str(session.cookies["csrftoken"])
    session.headers.update({"X-CSRFToken": csrf, "Origin": base_url, "Referer": base_url})
    return session


def test_the_pipeline_and_a_worker_through_the_gate(
    chromium: str, pipeline: Pipeline, gate: LabelStudioGate, label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    # The pipeline's own calls went through: the project, its storage and webhook (ensure_project), the import.
    pipeline.upload("images/gated/a.png", png(640, 480))
    assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    (task,) = pipeline.tasks()
    message = LabelStudioWorkers(pipeline.api).add(WORKER)
    password = message.split("hand it over privately): ")[1].split()[0]
    assert gate.refused == []
    assert ("POST", f"/api/projects/{pipeline.project_id}/import?return_task_ids=true") in gate.passed

    # A worker labels in the browser, through the gate: nothing of that session is refused.
    seen: list[tuple[str, str]] = []
    draw_box(gate.url, WORKER, password, pipeline.project_id, "Dog", (0.3, 0.3), (0.6, 0.6), requests_made=seen)
    assert gate.refused == []
    until(lambda: pipeline.webhook_calls, timeout=30)
    # The recorded session (the fixture the stack's test replays) still holds every API call a worker makes.
    recorded = {_shape(r) for r in json.loads(FIXTURE.read_text())["requests"]}
    made = {_shape(r) for r in same_origin_requests(gate.url, seen) if str(r["path"]).startswith("/api/")}
    assert made <= recorded, f"re-record with `python -m tests.label_studio.record_worker_session`: {made - recorded}"

    # The same worker, signed in (session cookie) or with its own API token, is refused what only the
    # pipeline may do.
    project = f"/api/projects/{pipeline.project_id}"
    organization = pipeline.api.current_user()["active_organization"]
    worker_id = next(u["id"] for u in pipeline.api.users() if u["email"] == WORKER)
    browser = sign_in(gate.url, WORKER, password)
    worker_token = browser.get(f"{gate.url}/api/current-user/token", timeout=30).json()["token"]
    with_token = requests.Session()
    with_token.headers["Authorization"] = f"Token {worker_token}"
    harmful = [
        ("DELETE", project, None),
        ("PATCH", project, {"title": "renamed by a worker"}),
        ("GET", f"{project}/export?exportType=JSON", None),
        ("GET", f"/api/webhooks/?project={pipeline.project_id}", None),
        ("POST", "/api/invite/reset-token", None),
        ("DELETE", f"/api/organizations/{organization}/memberships/{worker_id}", None),
        ("DELETE", f"/api/tasks/{task['id']}", None),
        ("POST", f"/api/dm/actions?id=delete_tasks&project={pipeline.project_id}", {"selectedItems": {"all": True}}),
    ]
    for session in (browser, with_token):
        for method, path, body in harmful:
            answer = session.request(method, f"{gate.url}{path}", json=body, timeout=30)
            assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, "admin-only"), (method, path)
    # Label Studio itself would have answered the worker: Community has no roles, the gate is what stops it.
    direct = requests.get(
        f"{label_studio.url}{project}/export?exportType=JSON",
        headers={"Authorization": f"Token {worker_token}"},
        timeout=30,
    )
    assert direct.status_code == 200 and direct.json()

    # Nothing was harmed, and the pipeline, with its credential, still administers through the gate.
    assert pipeline.api.project(pipeline.project_id)["title"] == pipeline.settings.project_title  # type: ignore[attr-defined]
    export = pipeline.api.request("GET", f"{project}/export", query={"exportType": "JSON"})
    assert [t["id"] for t in export] == [task["id"]] and export[0]["annotations"]
    assert pipeline.api.webhooks(pipeline.project_id)
    assert WORKER in LabelStudioWorkers(pipeline.api).list()
    LabelStudioWorkers(pipeline.api).remove(WORKER)
    assert WORKER not in LabelStudioWorkers(pipeline.api).list()


def _shape(request: dict[str, Any]) -> tuple[str, str]:
    return str(request["method"]), re.sub(r"\d+", "N", str(request["path"]))


def test_the_setup_function_gives_the_deployment_the_credentials_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []

    def secret_reader(_make_client: Any, region: str, secret_id: str) -> Any:
        read.append(f"{region} {secret_id}")
        return lambda: "0123456789abcdef0123456789abcdef01234567"

    monkeypatch.setattr(setup_handler, "secret_reader", secret_reader)
    event = {
        "RequestType": "Create",
        "ResourceType": ADMIN_DIGEST_RESOURCE_TYPE,
        "ResourceProperties": {"ApiTokenSecretArn": "arn:token", "Region": "eu-west-1"},
    }
    answer = setup_handler.on_event(event, FakeContext())  # type: ignore[arg-type]
    assert answer["Data"] == {"Digest": credential_digest("0123456789abcdef0123456789abcdef01234567")}
    assert read == ["eu-west-1 arn:token"]
    assert setup_handler.on_event({**event, "RequestType": "Delete", "PhysicalResourceId": "x"}, FakeContext()) == {  # type: ignore[arg-type]
        "PhysicalResourceId": "x"
    }
