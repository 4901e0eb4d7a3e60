"""Who may do what in the deployed Label Studio, tried as an attacker would, against the real server behind the
same two layers as deployed: the CloudFront Function's code under Node.js in front (sandbox.label_studio_gate)
and the access middleware inside Label Studio under uwsgi (label_studio_plugin/labeling_gate, started as the ECS
task starts it). Most tests go straight to Label Studio too, so that the middleware alone is shown to hold
whatever sits in front of it.

Two workers, A and B, each chose their own password on the link `workers add` printed; each answered the same
task, saved a draft and has a data-manager tab. B is the attacker.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import choose_password_in_browser, draw_box
from sandbox.label_studio_gate import LabelStudioGate
from sandbox.label_studio_server import LabelStudioServer, route_inventory
from sandbox.simulated_annotators import choose_password, password_link, signed_in_session
from tests.label_studio.pipeline_world import WEBHOOK_SECRET, Pipeline, label_studio_pipeline, png, rectangle, until
from tests.label_studio.record_worker_session import FIXTURE, same_origin_requests

REFUSED = "refused"
SIGN_IN = "sign-in"
# The inventory's stand-in for ids (labeling_gate.inventory.SAMPLE_ID).
SAMPLE_ID = "999999"


@dataclass
class Worker:
    email: str
    password: str
    session: requests.Session
    token: str
    user_id: int


def token_session(token: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Token {token}"
    return session


@dataclass
class World:
    pipeline: Pipeline
    gate: LabelStudioGate
    direct: str
    task_id: int
    a: Worker
    b: Worker
    a_annotation: int
    b_annotation: int
    a_draft: int
    a_view: int
    b_view: int
    invite_token: str


def add_worker(pipeline: Pipeline, base_url: str, email: str, password: str) -> Worker:
    choose_password(password_link(LabelStudioWorkers(pipeline.api).add(email)), password)
    session = signed_in_session(base_url, email, password)
    token = session.get(f"{base_url}/api/current-user/token", timeout=30).json()["token"]
    me = session.get(f"{base_url}/api/current-user/whoami", timeout=30).json()
    return Worker(email, password, session, token, int(me["id"]))


@pytest.fixture(scope="module")
def gate(label_studio: LabelStudioServer) -> Iterator[LabelStudioGate]:
    with LabelStudioGate(label_studio.url) as running:
        yield running


@pytest.fixture(scope="module")
def world(moto_s3_server: MotoServer, label_studio: LabelStudioServer, gate: LabelStudioGate) -> Iterator[World]:
    # The pipeline reaches Label Studio through the edge, as the deployed one reaches it through CloudFront.
    behind_gate = copy.copy(label_studio)
    behind_gate.url = gate.url
    with label_studio_pipeline(moto_s3_server, behind_gate, "Access rules", workersPerImage=2) as pipeline:
        pipeline.upload("images/access/a.png", png(320, 240))
        assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
        (task,) = pipeline.tasks()
        direct = label_studio.url
        a = add_worker(pipeline, direct, "access-a@example.com", "access-a-password-1")
        b = add_worker(pipeline, direct, "access-b@example.com", "access-b-password-1")
        project = pipeline.project_id
        answers = {}
        for worker, label in ((a, "Dog"), (b, "Cat")):
            created = worker.session.post(
                f"{direct}/api/tasks/{task['id']}/annotations?project={project}",
                json={"result": [rectangle(10, 10, 30, 30, label, (320, 240))], "lead_time": 2.0},
                timeout=30,
            )
            assert created.status_code == 201, created.text
            answers[worker.email] = int(created.json()["id"])
        draft = a.session.post(
            f"{direct}/api/tasks/{task['id']}/drafts",
            json={"result": [rectangle(1, 1, 5, 5, "Dog", (320, 240))], "lead_time": 1.0},
            timeout=30,
        )
        assert draft.status_code == 201, draft.text
        views = {}
        for worker in (a, b):
            view = worker.session.post(
                f"{direct}/api/dm/views?project={project}",
                json={"project": project, "data": {"title": "mine"}},
                timeout=30,
            )
            assert view.status_code == 201, view.text
            views[worker.email] = int(view.json()["id"])
        yield World(
            pipeline=pipeline,
            gate=gate,
            direct=direct,
            task_id=int(task["id"]),
            a=a,
            b=b,
            a_annotation=answers[a.email],
            b_annotation=answers[b.email],
            a_draft=int(draft.json()["id"]),
            a_view=views[a.email],
            b_view=views[b.email],
            invite_token=pipeline.api.request("GET", "/api/invite")["token"],
        )


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return route_inventory(tmp_path_factory.mktemp("inventory"))


def worker_rule(route: str, method: str) -> str:
    """The access a worker gets on a route-method, as the middleware would decide it (the table read in this
    process: label_studio_plugin/ is importable without Django for its pure parts)."""
    from labeling_gate.routes import rule_for

    return rule_for(route, method).access.value


# --- the table against Label Studio's own routes --------------------------------------------------------------


def test_every_route_label_studio_serves_is_classified_and_nothing_else(inventory: list[dict[str, Any]]) -> None:
    from labeling_gate.routes import ADMIN_PREFIXES, ROUTES, rules_for

    served = {row["route"] for row in inventory}
    assert len(served) >= 340 and sum(len(row["methods"]) for row in inventory) >= 1700
    assert sorted(route for route in served if rules_for(route) is None) == [], "classify them in routes.py"
    assert sorted(set(ROUTES) - served) == [], "Label Studio no longer serves these: drop them from routes.py"
    # Prefix rules cover only Django's admin site and the job queue.
    assert set(ADMIN_PREFIXES) == {"admin/", "django-rq/"}
    assert {row["route"] for row in inventory if rules_for(row["route"]) is None} == set()


def test_what_a_worker_may_do_is_a_short_list(inventory: list[dict[str, Any]]) -> None:
    allowed = sorted(
        (row["route"], method)
        for row in inventory
        for method in row["methods"]
        if worker_rule(row["route"], method) != "admin" and method not in ("HEAD", "OPTIONS")
    )
    admin = sum(1 for row in inventory for method in row["methods"] if worker_rule(row["route"], method) == "admin")
    assert len(allowed) <= 90 and admin >= 1500, (len(allowed), admin)
    # The data manager's and the editor's writes, and nothing that changes a project, a storage or a member.
    writes = {(route, method) for route, method in allowed if method not in ("GET",)}
    assert ("^api/tasks/<int:pk>/annotations/<int:annotation_id>/drafts", "POST") in writes
    assert not [
        w for w in writes if re.search(r"projects/<int:pk>/$|storages|webhooks|organizations|invite|export", w[0])
    ]


# --- every admin route-method, as a worker, with the session and with the worker's own token ------------------


def _admin_route_methods(inventory: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (row["route"], method, row["path"])
        for row in inventory
        if row["path"]
        for method in row["methods"]
        if worker_rule(row["route"], method) == "admin"
    ]


def test_a_worker_is_refused_every_admin_route_method(world: World, inventory: list[dict[str, Any]]) -> None:
    targets = _admin_route_methods(inventory)
    unreachable = [row["route"] for row in inventory if not row["path"]]
    assert len(unreachable) <= 10, unreachable  # shadowed routes: no path reaches them at all
    project = str(world.pipeline.project_id)

    def attempt(base: str, session: requests.Session, target: tuple[str, str, str]) -> tuple[str, str, int, str | None]:
        route, method, path = target
        # A real project id where a route names one: a wrongly allowed DELETE would really delete.
        path = path.replace(SAMPLE_ID, project, 1) if "projects/" in path else path
        answer = session.request(method, base + path, allow_redirects=False, timeout=60)
        return route, method, answer.status_code, answer.headers.get("X-Labeling-Gate")

    failures = []
    # The session straight to Label Studio (the rules inside it hold alone); the token through the edge too.
    tries = ((world.direct, world.b.session), (world.gate.url, token_session(world.b.token)))
    with ThreadPoolExecutor(4) as pool:
        for base, session in tries:
            for route, method, status, marker in pool.map(lambda t, b=base, s=session: attempt(b, s, t), targets):
                # The edge closes Django's admin site and the job queue's pages to everyone, first.
                if (status, marker) not in ((403, REFUSED), (403, "closed")):
                    failures.append((route, method, status, marker))
    assert failures == [], f"{len(failures)} of {2 * len(targets)} not refused: {failures[:20]}"
    assert len(targets) >= 1500
    # Nothing was harmed.
    assert world.pipeline.api.project(world.pipeline.project_id)["title"] == "Access rules"


def test_the_pipelines_token_and_a_signed_in_administrator_are_not_refused(
    world: World, label_studio: LabelStudioServer
) -> None:
    admin = signed_in_session(world.direct, label_studio.admin_email, label_studio.admin_password)
    pipeline = token_session(label_studio.token)
    project = world.pipeline.project_id
    for session in (admin, pipeline):
        for path in (
            f"/api/webhooks/?project={project}",
            "/api/invite",
            f"/api/projects/{project}/export?exportType=JSON",
            f"/api/projects/{project}/tasks/",
            "/labeling/api/workers/",
        ):
            answer = session.get(world.direct + path, timeout=60)
            assert answer.status_code == 200 and answer.headers.get("X-Labeling-Gate") is None, (
                path,
                answer.status_code,
            )
    # The administrator reads every annotator's answers in full (exports need them).
    (task,) = pipeline.get(f"{world.direct}/api/projects/{project}/tasks/", timeout=60).json()
    assert {a["id"] for a in task["annotations"]} >= {world.a_annotation, world.b_annotation}


def test_two_users_in_one_request_are_refused(world: World, label_studio: LabelStudioServer) -> None:
    answer = world.b.session.get(
        f"{world.direct}/api/webhooks/", headers={"Authorization": f"Token {label_studio.token}"}, timeout=30
    )
    assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, REFUSED)
    # A bad token is no one, whatever the session: Label Studio's 401.
    answer = world.b.session.get(
        f"{world.direct}/api/current-user/whoami", headers={"Authorization": "Token not-a-token"}, timeout=30
    )
    assert answer.status_code == 401


# --- other spellings of an admin route --------------------------------------------------------------------------


def raw_request(
    base_url: str, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, str, bytes]:
    """Sends the request target byte for byte (no client-side normalization of dot segments or encodings)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheader("X-Labeling-Gate") or "", response.read()
    finally:
        connection.close()


def spellings(project: int) -> list[tuple[str, str, dict[str, str]]]:
    """(method, request target, extra headers): admin routes written every way a parser might read differently."""
    webhooks = "/api/webhooks/"
    return [
        ("GET", "/%61pi/webhooks/", {}),
        ("GET", "/api/%77ebhooks/", {}),
        ("GET", "/api%2Fwebhooks/", {}),
        ("GET", "/api%2fwebhooks%2f", {}),
        ("GET", "//api/webhooks/", {}),
        ("GET", "/api//webhooks/", {}),
        ("GET", "/api/webhooks//", {}),
        ("GET", "/API/WEBHOOKS/", {}),
        ("GET", "/Api/Webhooks/", {}),
        ("GET", "/api/webhooks;x=1/", {}),
        ("GET", "/api;/webhooks/", {}),
        ("GET", "/api/x/../webhooks/", {}),
        ("GET", "/api/x/%2e%2e/webhooks/", {}),
        ("GET", "/api/x/%2E%2E/webhooks/", {}),
        ("GET", "/api/./webhooks/", {}),
        ("GET", "/static/../api/webhooks/", {}),
        ("GET", "/static/..%2fapi/webhooks/", {}),
        ("GET", "/static/%2e%2e/api/webhooks/", {}),
        ("GET", "/api/webhooks%00/", {}),
        ("GET", "/api/webhooks%20/", {}),
        ("GET", "/api/webhooks/%2e", {}),
        ("GET", "/api\\webhooks\\", {}),
        ("GET", "/api/current-user/../../api/webhooks/", {}),
        ("GET", webhooks + "?format=json", {}),
        ("HEAD", webhooks, {}),
        ("OPTIONS", webhooks, {}),
        ("GET", "/api/invite", {}),
        ("GET", "/api/invite/", {}),
        ("GET", "/api/%69nvite", {}),
        ("GET", "/api/organizations/1", {}),
        ("GET", "/api/organizations/1/", {}),
        ("GET", "/api/organizations/01", {}),
        ("GET", f"/api/projects/{project}/export?exportType=JSON", {}),
        ("GET", f"/api/projects/{project}/export/?exportType=JSON", {}),
        ("GET", f"/api/projects/{project}/%65xport?exportType=JSON", {}),
        ("GET", f"/api/projects/{project}/tasks/", {}),
        ("GET", f"/api/projects/{project}/tasks", {}),
        ("GET", "/api/predictions/", {}),
        ("DELETE", f"/api/current-user/../../api/projects/{project}/", {}),
        ("DELETE", f"/api/projects/{project}/", {}),
        ("DELETE", f"/api/projects/{project}", {}),
        ("DELETE", f"/api/projects/{project}/.", {}),
        ("DELETE", f"/api/projects/{project}/%2e", {}),
        ("DELETE", f"/api/projects/0{project}/", {}),
        ("POST", f"/api/projects/{project}/", {"X-HTTP-Method-Override": "DELETE"}),
        ("POST", f"/api/projects/{project}/", {"X-HTTP-Method": "DELETE"}),
        ("POST", f"/api/projects/{project}/", {"X-Method-Override": "PATCH"}),
        ("PATCH", f"/api/projects/{project}/", {}),
        ("POST", "/api/invite/reset-token", {}),
        ("GET", "/admin/", {}),
        ("GET", "/ADMIN/", {}),
        ("GET", "/admin/users/user/", {}),
        ("GET", "/django-rq/", {}),
        ("GET", "/user/signup/", {}),
        ("GET", "/metrics/", {}),
        ("GET", "/x/metrics/", {}),
    ]


def _leaks(world: World, body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace")
    return [name for name, value in (("webhook", WEBHOOK_SECRET), ("invite", world.invite_token)) if value in text]


@pytest.mark.parametrize("through", ["label-studio", "edge"])
def test_no_spelling_of_an_admin_route_gets_through(world: World, through: str) -> None:
    base = world.direct if through == "label-studio" else world.gate.url
    project = world.pipeline.project_id
    cookie = "; ".join(f"{c.name}={c.value}" for c in world.b.session.cookies)
    csrf = str(world.b.session.cookies["csrftoken"])
    credentials: list[dict[str, str]] = [
        {"Cookie": cookie, "X-CSRFToken": csrf, "Origin": world.direct, "Referer": world.direct + "/"},
        {"Authorization": f"Token {world.b.token}"},
    ]
    outcomes = []
    for headers in credentials:
        for method, target, extra in spellings(project):
            body = b'{"title": "renamed by a worker"}' if method in ("POST", "PATCH") else b""
            status, marker, answer = raw_request(
                base, method, target, {**headers, **extra, "Content-Type": "application/json"}, body
            )
            outcomes.append((method, target, status, marker))
            assert not _leaks(world, answer), (method, target, status)
            # Refused by a layer (401 or 403: by the table, marked), or served by nothing (400, 404, 405): never a
            # success, never a redirect into a page.
            assert status in (400, 401, 403, 404, 405), (method, target, status, marker)
            assert status not in (401, 403) or marker, (method, target, status)
    edge_refusals = {marker for *_rest, marker in outcomes if marker not in ("", REFUSED, SIGN_IN)}
    if through == "edge":
        assert edge_refusals >= {"ambiguous-path", "method-override", "closed"}
    assert world.pipeline.api.project(project)["title"] == "Access rules"
    assert world.pipeline.api.webhooks(project)


# --- what belongs to someone else --------------------------------------------------------------------------------


def test_a_worker_changes_and_deletes_only_their_own_answers_drafts_and_tabs(world: World) -> None:
    b, d = world.b.session, world.direct
    others: list[tuple[str, str, Any]] = [
        ("PATCH", f"/api/annotations/{world.a_annotation}/", {"result": []}),
        ("PUT", f"/api/annotations/{world.a_annotation}/", {"result": []}),
        ("DELETE", f"/api/annotations/{world.a_annotation}/", None),
        ("GET", f"/api/annotations/{world.a_annotation}/", None),
        ("POST", f"/api/annotations/{world.a_annotation}/convert-to-draft", None),
        ("POST", f"/api/tasks/{world.task_id}/annotations/{world.a_annotation}/drafts", {"result": []}),
        ("PATCH", f"/api/drafts/{world.a_draft}/", {"result": []}),
        ("DELETE", f"/api/drafts/{world.a_draft}/", None),
        ("GET", f"/api/drafts/{world.a_draft}/", None),
        ("PATCH", f"/api/dm/views/{world.a_view}/", {"data": {"title": "b was here"}}),
        ("DELETE", f"/api/dm/views/{world.a_view}/", None),
        ("GET", f"/api/dm/views/{world.a_view}/", None),
        # Authorship named in the body: another user as author, or another user's annotation as the parent.
        ("POST", f"/api/tasks/{world.task_id}/annotations", {"result": [], "completed_by": world.a.user_id}),
        ("PATCH", f"/api/annotations/{world.b_annotation}/", {"completed_by": world.a.user_id}),
        ("POST", f"/api/tasks/{world.task_id}/drafts", {"result": [], "annotation": world.a_annotation}),
        ("POST", f"/api/tasks/{world.task_id}/annotations", {"result": [], "parent_annotation": world.a_annotation}),
    ]
    for session in (b, token_session(world.b.token)):
        for method, path, body in others:
            answer = session.request(method, d + path, json=body, timeout=30)
            assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, REFUSED), (method, path)
    admin = world.pipeline.api
    kept = admin.request("GET", f"/api/annotations/{world.a_annotation}/")
    assert kept["completed_by"] == world.a.user_id and kept["result"]
    assert admin.request("GET", f"/api/drafts/{world.a_draft}/")["user"] in (
        world.a.user_id,
        str(world.a.user_id),
        world.a.email,
    )

    # Their own: the editor's requests, the draft of a submitted annotation included.
    own: list[tuple[str, str, Any]] = [
        ("POST", f"/api/tasks/{world.task_id}/annotations/{world.b_annotation}/drafts", {"result": [], "lead_time": 1}),
        (
            "PATCH",
            f"/api/annotations/{world.b_annotation}/",
            {"result": [rectangle(12, 12, 30, 30, "Cat", (320, 240))]},
        ),
        ("PATCH", f"/api/annotations/{world.b_annotation}/", {"completed_by": world.b.user_id}),
        ("GET", f"/api/annotations/{world.b_annotation}/", None),
        ("PATCH", f"/api/dm/views/{world.b_view}/", {"data": {"title": "still mine"}}),
    ]
    for method, path, body in own:
        answer = b.request(method, d + path, json=body, timeout=30)
        assert answer.status_code in (200, 201) and answer.headers.get("X-Labeling-Gate") is None, (
            method,
            path,
            answer.text,
        )


def _annotation_ids(data: Any) -> set[int]:
    found: set[int] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "annotations" and isinstance(value, list):
                found |= {int(a["id"]) for a in value if isinstance(a, dict) and "id" in a}
            found |= _annotation_ids(value)
    elif isinstance(data, list):
        for item in data:
            found |= _annotation_ids(item)
    return found


def test_a_worker_reads_only_their_own_answers(world: World) -> None:
    b, d, project = world.b.session, world.direct, world.pipeline.project_id
    reads: dict[str, Callable[[], requests.Response]] = {
        "task": lambda: b.get(f"{d}/api/tasks/{world.task_id}/", timeout=30),
        "task list, fields=all": lambda: b.get(f"{d}/api/tasks?project={project}&fields=all", timeout=30),
        "task list": lambda: b.get(f"{d}/api/tasks?project={project}&page=1&page_size=30", timeout=30),
        "task's annotations": lambda: b.get(f"{d}/api/tasks/{world.task_id}/annotations/", timeout=30),
        "next task": lambda: b.post(f"{d}/api/dm/actions?id=next_task&project={project}", json={}, timeout=30),
        "project next": lambda: b.get(f"{d}/api/projects/{project}/next/", timeout=30),
    }
    seen_any = False
    for name, read in reads.items():
        answer = read()
        assert answer.status_code in (200, 404), (name, answer.status_code, answer.text[:200])
        if answer.status_code != 200:
            continue
        data = answer.json()
        assert world.a_annotation not in _annotation_ids(data), name
        assert "Dog" not in json.dumps(data), (name, json.dumps(data)[:3000])  # A's label anywhere
        seen_any = seen_any or world.b_annotation in _annotation_ids(data)
    assert seen_any, "B's own annotation is shown to B"
    drafts = b.get(f"{d}/api/tasks/{world.task_id}/drafts", timeout=30).json()
    assert all(
        int(draft.get("user") if not isinstance(draft.get("user"), dict) else draft["user"]["id"]) == world.b.user_id
        for draft in drafts
    )
    views = b.get(f"{d}/api/dm/views?project={project}", timeout=30).json()
    assert {v["id"] for v in views} == {world.b_view}
    people = b.get(f"{d}/api/users?project={project}", timeout=30).json()
    assert {p.get("email") for p in people} == {world.b.email, None}
    # The administrator still sees both answers.
    (task,) = [t for t in world.pipeline.tasks() if t["id"] == world.task_id]
    assert {a["id"] for a in task["annotations"]} >= {world.a_annotation, world.b_annotation}


def test_nothing_a_worker_reads_holds_a_credential(
    world: World, inventory: list[dict[str, Any]], label_studio: LabelStudioServer
) -> None:
    """Every route a worker may GET, with real ids where it names one: no invite token, no webhook secret, no
    other user's token (the worker's own token is theirs to read)."""
    b, d, project = world.b.session, world.direct, world.pipeline.project_id
    ids = {"task_id": world.task_id, "pk": project, "annotation_id": world.b_annotation}
    secrets = {"invite token": world.invite_token, "webhook secret": WEBHOOK_SECRET, "admin token": label_studio.token}
    secrets["A's token"] = world.a.token
    checked = 0
    for row in inventory:
        if not row["path"] or worker_rule(row["route"], "GET") == "admin" or "GET" not in row["methods"]:
            continue
        if row["route"] == "^logout/?$":
            continue  # a GET that signs the worker out
        path = row["path"]
        for name, value in ids.items():
            if f"<int:{name}>" in row["route"]:
                path = path.replace(SAMPLE_ID, str(value), 1)
        if "annotations/<int:pk>" in row["route"]:
            path = f"/api/annotations/{world.b_annotation}/"
        answer = b.get(f"{d}{path}?project={project}", allow_redirects=False, timeout=60)
        checked += 1
        leaked = [name for name, value in secrets.items() if value and value in answer.text]
        assert leaked == [], (row["route"], leaked)
    for path in ("/api/organizations/1", "/api/invite", f"/api/webhooks/?project={project}"):
        assert b.get(d + path, timeout=30).status_code == 403
    assert checked >= 30


# --- a person, in a real browser, through both layers --------------------------------------------------------------


def test_a_new_worker_chooses_a_password_and_labels_in_the_browser_through_both_layers(
    chromium: str, world: World, tmp_path: Path
) -> None:
    gate = world.gate
    message = LabelStudioWorkers(world.pipeline.api).add("browser-access@example.com")
    link = password_link(message)
    assert link.startswith(gate.url)
    page_text = choose_password_in_browser(link, "Tulip-harbor-81", screenshot_dir=tmp_path)
    assert "password is set" in page_text
    refused_before = list(gate.refused)
    seen: list[tuple[str, str]] = []
    world.pipeline.upload("images/access/browser.png", png(400, 300))
    assert world.pipeline.launch(world.pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    draw_box(
        gate.url,
        "browser-access@example.com",
        "Tulip-harbor-81",
        world.pipeline.project_id,
        "Dog",
        (0.3, 0.3),
        (0.6, 0.6),
        screenshot_dir=tmp_path,
        requests_made=seen,
    )
    assert gate.refused == refused_before
    until(lambda: world.pipeline.webhook_calls, timeout=30)
    # The recorded session (which the stack's test replays through the template's function) still holds every
    # API call a worker's browser makes.
    recorded = {_shape(r) for r in json.loads(FIXTURE.read_text())["requests"]}
    made = {_shape(r) for r in same_origin_requests(gate.url, seen) if str(r["path"]).startswith("/api/")}
    assert made <= recorded, f"re-record with `python -m tests.label_studio.record_worker_session`: {made - recorded}"
    # The link is spent.
    with pytest.raises(PermissionError):
        choose_password(link, "someone-else-5")


def _shape(request: dict[str, Any]) -> tuple[str, str]:
    return str(request["method"]), re.sub(r"\d+", "N", str(request["path"]))
