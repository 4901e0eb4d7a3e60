"""Reviewers and review projects (label_studio_plugin/labeling_gate/review.py), tried as an attacker would against
the real Label Studio server behind the access rules, and the contract's pure parts.

The world: a labeling project, and a review project (its title ends with " (review)") made through the
administrator's API as the pipeline makes them. Review tasks: T1 of an image that A (and W) annotated, T2 and T4
of images annotated by others, T3 of an image nobody did; T1 carries the consolidated box as its prediction.
Workers, each with a password chosen on the link `workers add` printed: A (a worker first, made a reviewer by
`workers add --reviewer`), R (added as a reviewer) and W, who was a reviewer (answered T3, saved a draft on it,
opened a data-manager tab in the review project) until `workers remove --reviewer` took the role away. W is the
attacker of the review project; A is the reviewer who must never review their own image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from labeling_gate.review import (
    ANNOTATOR_IDS,
    REVIEW_TITLE_SUFFIX,
    REVIEWER_GROUP,
    annotated_by,
    is_task_annotated_by,
    without_review_projects,
    without_tasks_annotated_by,
)
from labeling_gate.routes import Access, rule_for

from labeling_cli import commands
from labeling_pipeline.backends import WorkerError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioRefused
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from sandbox.label_studio_server import LabelStudioServer, route_inventory
from sandbox.simulated_annotators import choose_password, password_link, signed_in_session
from tests.label_studio.pipeline_world import rectangle
from tests.label_studio.test_access_rules import REFUSED, SAMPLE_ID, Worker, raw_request, token_session

LABELING_TITLE = "Review access"
REVIEW_TITLE = "Review access" + REVIEW_TITLE_SUFFIX
LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="Dog"/><Label value="Cat"/></RectangleLabels></View>'
)
# In the review tasks' data only: found in an answer, it means review data reached someone who may not see it.
REVIEW_JOB = "review-access-job-5b1e"
SIZE = (320, 240)
# labeling_gate.review_gate's refusals.
NOT_A_REVIEWER = "only reviewers may see review projects and their tasks"
OWN_IMAGE = "you annotated this image: someone else reviews it"


@dataclass
class World:
    direct: str
    api: LabelStudioApi
    api_token: str
    workers: LabelStudioWorkers
    labeling: int
    review: int
    a: Worker
    r: Worker
    w: Worker
    a_promoted: str
    labeling_task: int
    t1: int
    t2: int
    t3: int
    t4: int
    t1_prediction: int
    w_annotation: int
    w_draft: int
    w_view: int
    w_labeling_view: int


def signed_in_worker(base_url: str, message: str, email: str, password: str) -> Worker:
    choose_password(password_link(message), password)
    session = signed_in_session(base_url, email, password)
    token = session.get(f"{base_url}/api/current-user/token", timeout=30).json()["token"]
    me = session.get(f"{base_url}/api/current-user/whoami", timeout=30).json()
    return Worker(email, password, session, token, int(me["id"]))


def created(answer: requests.Response) -> int:
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def review_task(image: str, annotator_ids: str) -> dict[str, Any]:
    return {"image": image, "job": REVIEW_JOB, "version": "v1", ANNOTATOR_IDS: annotator_ids}


@pytest.fixture(scope="module")
def world(label_studio: LabelStudioServer) -> Iterator[World]:
    direct = label_studio.url
    api = LabelStudioApi(direct, label_studio.token)
    workers = LabelStudioWorkers(api)
    labeling = int(api.create_project({"title": LABELING_TITLE, "label_config": LABEL_CONFIG})["id"])
    review = int(
        api.create_project({"title": REVIEW_TITLE, "label_config": LABEL_CONFIG, "maximum_annotations": 1})["id"]
    )
    try:
        # A: a worker first, then made a reviewer through the CLI's command (no new link: A keeps the password).
        a = signed_in_worker(direct, workers.add("review-a@example.com"), "review-a@example.com", "review-a-pass-1")
        a_promoted = commands.workers_command(workers, "add", "review-a@example.com", reviewer=True)[0]
        r_added = commands.workers_command(workers, "add", "review-r@example.com", reviewer=True)[0]
        r = signed_in_worker(direct, r_added, "review-r@example.com", "review-r-pass-1")
        w_added = workers.add("review-w@example.com", reviewer=True)
        w = signed_in_worker(direct, w_added, "review-w@example.com", "review-w-pass-1")

        (labeling_task,) = api.import_tasks(
            labeling, [{"image": "https://example.invalid/images/a.png", "job": "labeling-job", "version": "v1"}]
        )
        a_answer = a.session.post(
            f"{direct}/api/tasks/{labeling_task}/annotations?project={labeling}",
            json={"result": [rectangle(10, 10, 30, 30, "Dog", SIZE)], "lead_time": 2.0},
            timeout=30,
        )
        created(a_answer)
        consolidated = {
            "model_version": "consolidated",
            "score": 1.0,
            "result": [rectangle(10, 10, 30, 30, "Dog", SIZE)],
        }
        t1, t2, t3, t4 = api.import_tasks(
            review,
            [
                {
                    "data": review_task("https://example.invalid/images/a.png", f",{a.user_id},{w.user_id},"),
                    "predictions": [consolidated],
                },
                {"data": review_task("https://example.invalid/images/b.png", ",999998,")},
                {"data": review_task("https://example.invalid/images/c.png", ",")},
                {"data": review_task("https://example.invalid/images/d.png", ",999997,")},
            ],
        )
        (prediction,) = api.request("GET", f"/api/tasks/{t1}/")["predictions"]

        # W, while a reviewer: an answer, a draft and a tab in the review project, and a tab in the labeling one.
        w_annotation = created(
            w.session.post(
                f"{direct}/api/tasks/{t3}/annotations?project={review}",
                json={"result": [rectangle(5, 5, 20, 20, "Cat", SIZE)], "lead_time": 1.0},
                timeout=30,
            )
        )
        w_draft = created(
            w.session.post(f"{direct}/api/tasks/{t3}/drafts", json={"result": [], "lead_time": 1.0}, timeout=30)
        )
        views = {}
        for project in (review, labeling):
            views[project] = created(
                w.session.post(
                    f"{direct}/api/dm/views?project={project}",
                    json={"project": project, "data": {"title": "mine"}},
                    timeout=30,
                )
            )
        assert (
            "no longer a reviewer"
            in commands.workers_command(workers, "remove", "review-w@example.com", reviewer=True)[0]
        )
        yield World(
            direct=direct,
            api=api,
            api_token=label_studio.token,
            workers=workers,
            labeling=labeling,
            review=review,
            a=a,
            r=r,
            w=w,
            a_promoted=a_promoted,
            labeling_task=labeling_task,
            t1=t1,
            t2=t2,
            t3=t3,
            t4=t4,
            t1_prediction=int(prediction["id"]),
            w_annotation=w_annotation,
            w_draft=w_draft,
            w_view=views[review],
            w_labeling_view=views[labeling],
        )
    finally:
        api.delete_project(review)
        api.delete_project(labeling)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return route_inventory(tmp_path_factory.mktemp("inventory"))


def worker_rule(route: str, method: str) -> str:
    return rule_for(route, method).access.value


def detail(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("detail", ""))
    except ValueError:
        return ""


# --- workers add --reviewer, list, remove --reviewer ------------------------------------------------------------


def test_workers_add_reviewer_sets_the_role_and_list_shows_it(world: World) -> None:
    workers = world.workers
    listing = workers.list()
    assert "review-r@example.com  (reviewer)" in listing and "review-a@example.com  (reviewer)" in listing
    assert "review-w@example.com" in listing  # still a worker, no longer a reviewer
    # An existing worker made a reviewer gets no new link: they keep their password.
    assert "a reviewer" in world.a_promoted and "sign in as before" in world.a_promoted
    with pytest.raises(ValueError, match="no password link"):
        password_link(world.a_promoted)
    rows = {row["email"]: row for row in world.api.request("GET", "/labeling/api/workers/")}
    assert [rows[f"review-{x}@example.com"]["reviewer"] for x in "arw"] == [True, True, False]

    with pytest.raises(WorkerError, match="already a reviewer"):
        workers.add("review-r@example.com", reviewer=True)
    with pytest.raises(WorkerError, match="already a worker"):
        workers.add("review-r@example.com")
    with pytest.raises(WorkerError, match="not a reviewer"):
        workers.remove("review-w@example.com", reviewer=True)
    with pytest.raises(WorkerError, match="not a worker"):
        workers.remove("nobody-here@example.com", reviewer=True)
    with pytest.raises(LabelStudioRefused) as refused:
        world.api.request("POST", "/labeling/api/workers/", body={"email": "review-x@example.com", "reviewer": "yes"})
    assert (refused.value.status, refused.value.detail) == (400, "reviewer must be true or false")

    # Removed altogether, then added again without --reviewer: a plain worker.
    added = workers.add("review-x@example.com", reviewer=True)
    assert "as a reviewer" in added and password_link(added)
    assert "review-x@example.com  (reviewer)  (has not chosen a password yet)" in workers.list()
    workers.remove("review-x@example.com")
    workers.add("review-x@example.com")
    assert "review-x@example.com  (has not chosen a password yet)" in workers.list()

    # A reviewer is a worker: the account API is the administrators'.
    answer = world.r.session.post(
        f"{world.direct}/labeling/api/workers/", json={"email": "review-w@example.com", "reviewer": True}, timeout=30
    )
    assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, REFUSED)
    assert "review-w@example.com  (reviewer)" not in workers.list()


# --- a worker who is not a reviewer: every route that names the review project or anything in it --------------

# What a route's id argument names, read from the route: (the text just before the argument, or its name) -> key.
_ARGUMENT = re.compile(r"<int:(?P<converter>\w+)>|\(\?P<(?P<group>\w+)>")
_OBJECTS = (
    ("projects/", "pk", "project"),
    ("tasks/", "pk", "task"),
    ("annotations/", "pk", "annotation"),
    ("drafts/", "pk", "draft"),
    ("predictions/", "pk", "prediction"),
    ("views/", "pk", "view"),
)
_BY_NAME = {"project_id": "project", "task_id": "task", "annotation_id": "annotation"}


def _is_sample_id(name: str, kind: str) -> bool:
    """Whether the inventory's sample path has SAMPLE_ID for this argument (labeling_gate.inventory)."""
    return kind == "converter" or name.endswith(("pk", "id", "index"))


def review_path(route: str, path: str, ids: dict[str, int]) -> str | None:
    """The route's sample path with the review project's objects where its arguments name them; None when it
    names none of them."""
    arguments = [
        (name, route[: match.start()])
        for match in _ARGUMENT.finditer(route)
        if _is_sample_id(name := match.group(match.lastgroup or ""), match.lastgroup or "")
    ]
    if path.count(SAMPLE_ID) != len(arguments):
        return None
    pieces = path.split(SAMPLE_ID)
    result, substituted = pieces[0], False
    for (name, before), piece in zip(arguments, pieces[1:], strict=True):
        key = _BY_NAME.get(name)
        for segment, argument, object_key in _OBJECTS:
            if name == argument and before.endswith(segment):
                key = object_key
        value = ids.get(key or "")
        substituted = substituted or value is not None
        result += (str(value) if value is not None else SAMPLE_ID) + piece
    return result if substituted else None


def _sweep(session: requests.Session, targets: list[tuple[str, str, str]]) -> list[tuple[str, str, int, str, str]]:
    def attempt(target: tuple[str, str, str]) -> tuple[str, str, int, str, str]:
        route, method, url = target
        answer = session.request(method, url, allow_redirects=False, timeout=60)
        text = "" if method == "HEAD" else answer.text
        assert REVIEW_JOB not in text, (route, method)
        return route, method, answer.status_code, answer.headers.get("X-Labeling-Gate") or "", detail(answer)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(attempt, targets))


def test_a_worker_who_is_not_a_reviewer_is_refused_every_route_naming_the_review_project(
    world: World, inventory: list[dict[str, Any]]
) -> None:
    ids = {
        "project": world.review,
        "task": world.t3,
        "annotation": world.w_annotation,
        "draft": world.w_draft,
        "prediction": world.t1_prediction,
        "view": world.w_view,
    }
    d = world.direct
    by_path: list[tuple[str, str, str]] = []
    by_query: list[tuple[str, str, str]] = []
    for row in inventory:
        if not row["path"]:
            continue
        for method in row["methods"]:
            if worker_rule(row["route"], method) == Access.PUBLIC.value:
                continue
            path = review_path(row["route"], row["path"], ids)
            if path is not None:
                by_path.append((row["route"], method, d + path))
            if worker_rule(row["route"], method) != Access.ADMIN.value:
                # The data manager's actions: the one a worker may run.
                action = "&id=next_task" if row["route"] == "^api/dm/actions/" else ""
                by_query.append((row["route"], method, f"{d}{row['path']}?project={world.review}{action}"))
    worker_routes = {(route, method) for route, method, _ in by_path if worker_rule(route, method) != "admin"}
    assert len(by_path) >= 180 and len(worker_routes) >= 45, (len(by_path), len(worker_routes))
    assert len(by_query) >= 70

    failures = []
    # The worker's own token first: a wrongly allowed GET of the sign-out page cannot end a token's requests.
    for session in (token_session(world.w.token), world.w.session):
        for route, method, status, marker, why in _sweep(session, by_path + by_query):
            if (status, marker) != (403, REFUSED):
                failures.append((route, method, status, marker))
            # On a route a worker may call otherwise, the refusal is the review rule's own.
            elif worker_rule(route, method) != "admin" and method != "HEAD" and why != NOT_A_REVIEWER:
                failures.append((route, method, status, why))
    assert failures == [], f"{len(failures)} of {2 * (len(by_path) + len(by_query))}: {failures[:20]}"

    # W's answer, draft and tabs are still there; W still labels in the labeling project.
    assert world.api.request("GET", f"/api/annotations/{world.w_annotation}/")["completed_by"] == world.w.user_id
    assert world.api.request("GET", f"/api/drafts/{world.w_draft}/")
    assert world.api.project(world.review)["title"] == REVIEW_TITLE
    w = world.w.session
    assert w.get(f"{d}/api/projects/{world.labeling}/", timeout=30).status_code == 200
    assert w.get(f"{d}/api/tasks/{world.labeling_task}/", timeout=30).status_code == 200
    assert w.get(f"{d}/api/dm/views/{world.w_labeling_view}/", timeout=30).status_code == 200


def test_what_names_the_review_project_in_a_query_or_a_body_is_refused(world: World) -> None:
    w, d, review, labeling = world.w.session, world.direct, world.review, world.labeling
    tries: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/tasks?view={world.w_view}", {}),
        ("GET", f"/api/tasks?view={world.w_view}&project={labeling}", {}),
        ("GET", f"/api/tasks?project={labeling}&project={review}", {}),
        ("GET", f"/api/tasks?project={review}&project={labeling}", {}),
        ("GET", "/api/tasks", {"json": {"project": review}}),
        ("GET", "/api/tasks", {"json": {"view": world.w_view}}),
        ("GET", "/api/tasks", {"json": {"project": str(review)}}),
        ("GET", "/api/tasks", {"json": {"project": float(review)}}),
        ("GET", "/api/tasks", {"json": [{"project": labeling}, {"project": review}]}),
        ("POST", f"/api/dm/views?project={labeling}", {"json": {"project": review, "data": {"title": "x"}}}),
        ("POST", "/api/dm/views", {"data": {"project": str(review)}}),  # a form
        ("POST", "/api/dm/views", {"files": {"project": (None, str(review))}}),  # multipart
        ("PATCH", f"/api/dm/views/{world.w_labeling_view}/", {"json": {"project": review}}),
        ("PATCH", f"/api/dm/views/{world.w_labeling_view}/", {"files": {"project": (None, str(labeling))}}),
        ("POST", f"/api/dm/actions?id=next_task&project={review}", {"json": {}}),
        ("POST", f"/api/tasks/{world.labeling_task}/annotations", {"json": {"result": [], "task": world.t3}}),
        (
            "POST",
            f"/api/tasks/{world.labeling_task}/annotations",
            {"json": {"result": [], "parent_prediction": world.t1_prediction}},
        ),
        ("PATCH", f"/api/annotations/{world.w_annotation}/", {"json": {"task": world.labeling_task}}),
        ("GET", f"/api/users?project={review}", {}),
        ("GET", f"/api/ml?project={review}", {}),
        ("GET", f"/api/label_links?project={review}", {}),
        ("GET", f"/api/dm/columns?project={review}", {}),
        ("GET", f"/api/dm/project?project={review}", {}),
        ("GET", f"/api/current-user/whoami?task={world.t1}", {}),
    ]
    for method, path, options in tries:
        answer = w.request(method, d + path, timeout=30, **options)
        assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, REFUSED), (method, path)
        assert REVIEW_JOB not in answer.text
    # The labeling project's own, through the same routes: not refused.
    for path in (f"/api/tasks?view={world.w_labeling_view}", f"/api/dm/project?project={labeling}"):
        answer = w.get(d + path, timeout=30)
        assert answer.status_code == 200 and answer.headers.get("X-Labeling-Gate") is None, (path, answer.text)


def _fullwidth(number: int) -> str:
    return quote("".join(chr(0xFF10 + int(digit)) for digit in str(number)))


def test_no_spelling_of_a_review_id_gets_through(world: World) -> None:
    review, t1, d = world.review, world.t1, world.direct
    encoded = "".join(f"%3{digit}" for digit in str(review))
    spellings = [
        f"/api/projects/{review}/",
        f"/api/projects/0{review}/",
        f"/api/%70rojects/{review}/",
        f"/api/projects/{encoded}/",
        f"/api/projects/{review}/next/",
        f"/api/projects/{review}/next",
        f"/api/projects/{review}/./next/",
        f"/api/projects/{review}/x/../next/",
        f"/api/projects/{review}/%2e/next/",
        f"/api/x/../projects/{review}/",
        f"/api//projects/{review}/",
        f"/api/tasks/{t1}/",
        f"/api/tasks/0{t1}",
        f"/api/tasks/{t1}/x/..",
        f"/tasks/{t1}/resolve/?fileuri=x",
        f"/projects/{review}/data/",
        f"/projects/{review}/",
        f"/api/tasks?project={encoded}",
        f"/api/tasks?project=0{review}",
        f"/api/tasks?project=+{review}",
        f"/api/tasks?project=%20{review}%20",
        f"/api/tasks?project={_fullwidth(review)}",
        f"/api/tasks?%70roject={review}",
        f"/api/tasks?project={review}&fields=all",
        f"/api/dm/project?project={_fullwidth(review)}",
    ]
    headers = {"Authorization": f"Token {world.w.token}", "Content-Type": "application/json"}
    for target in spellings:
        status, marker, body = raw_request(d, "GET", target, headers)
        assert REVIEW_JOB.encode() not in body and REVIEW_TITLE.encode() not in body, (target, status)
        # Refused by the rules (marked), or served by nothing: never a success.
        assert status in (400, 401, 403, 404, 405), (target, status, marker)
        assert status not in (401, 403) or marker == REFUSED, (target, status)


def test_the_project_list_shows_review_projects_to_reviewers_only(world: World) -> None:
    def titles(session: requests.Session, query: str = "") -> list[str]:
        answer = session.get(f"{world.direct}/api/projects/{query}", timeout=30)
        assert answer.status_code == 200, answer.text
        return [project["title"] for project in answer.json()["results"]]

    for query in ("", "?title=review", "?page_size=1000&ordering=-id", f"?ids={world.review}"):
        seen = titles(world.w.session, query)
        assert REVIEW_TITLE not in seen, query
    assert LABELING_TITLE in titles(world.w.session)
    assert {LABELING_TITLE, REVIEW_TITLE} <= set(titles(world.r.session))
    assert {LABELING_TITLE, REVIEW_TITLE} <= set(titles(token_session(world.api_token)))


# --- reviewers: never their own image -----------------------------------------------------------------------------


def test_a_reviewer_is_never_given_an_image_they_annotated(world: World) -> None:
    a, r, d, review = world.a.session, world.r.session, world.direct, world.review

    def dm_next(session: requests.Session) -> requests.Response:
        return session.post(f"{d}/api/dm/actions?id=next_task&project={review}", json={}, timeout=30)

    def next_task(session: requests.Session) -> requests.Response:
        return session.get(f"{d}/api/projects/{review}/next/", timeout=30)

    # T1 is the first open task, and A's own image: the stream serves A the others, through both of its routes.
    first = dm_next(a)
    assert first.status_code == 200, first.text
    assert first.json()["id"] in (world.t2, world.t4)
    again = next_task(a)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    answered = []
    for _ in range(2):
        task = next_task(a).json()
        answered.append(task["id"])
        created(
            a.post(
                f"{d}/api/tasks/{task['id']}/annotations?project={review}",
                json={"result": [rectangle(10, 10, 30, 30, "Dog", SIZE)], "lead_time": 3.0},
                timeout=30,
            )
        )
    assert sorted(answered) == sorted([world.t2, world.t4])
    draft = created(a.post(f"{d}/api/tasks/{world.t4}/drafts", json={"result": [], "lead_time": 1.0}, timeout=30))

    # Only T1 is left, unanswered and held by nobody: A gets "no tasks" from both routes.
    assert world.api.request("GET", f"/api/tasks/{world.t1}/")["total_annotations"] == 0
    for answer in (next_task(a), dm_next(a)):
        assert answer.status_code == 404 and "There are no tasks" in answer.text, answer.text
        assert answer.headers.get("X-Labeling-Gate") is None  # Label Studio's own answer, not a refusal

    # Nor can A reach T1 any other way.
    own_image: list[tuple[str, str, Any]] = [
        ("GET", f"/api/tasks/{world.t1}/", None),
        ("GET", f"/api/tasks/{world.t1}/annotations/", None),
        ("POST", f"/api/tasks/{world.t1}/annotations?project={review}", {"result": [], "lead_time": 1.0}),
        ("POST", f"/api/tasks/{world.t1}/drafts", {"result": [], "lead_time": 1.0}),
        ("GET", f"/api/tasks/{world.t1}/drafts", None),
        ("GET", f"/tasks/{world.t1}/resolve/?fileuri=eA", None),
        ("POST", f"/api/tasks/{world.t2}/annotations", {"result": [], "task": world.t1}),
    ]
    for method, path, body in own_image:
        answer = a.request(method, d + path, json=body, timeout=30)
        assert (answer.status_code, answer.headers.get("X-Labeling-Gate")) == (403, REFUSED), (method, path)
        assert detail(answer) == OWN_IMAGE, (method, path, answer.text)
    # The data manager's task list leaves T1 out of what A reads.
    for query in ("", "&fields=all"):
        listed = a.get(f"{d}/api/tasks?project={review}&page=1&page_size=30{query}", timeout=30)
        assert listed.status_code == 200
        ids = {task["id"] for task in listed.json()["tasks"]}
        assert world.t1 not in ids and {world.t2, world.t4} <= ids, ids

    # R, who did not annotate it, is served T1 with the consolidated box as the pre-label, and answers it.
    served = next_task(r)
    assert served.status_code == 200 and served.json()["id"] == world.t1, served.text
    (shown,) = served.json()["predictions"]
    assert shown["result"][0]["value"]["rectanglelabels"] == ["Dog"]
    assert r.get(f"{d}/api/tasks/{world.t1}/", timeout=30).status_code == 200
    final = created(
        r.post(
            f"{d}/api/tasks/{world.t1}/annotations?project={review}",
            json={
                "result": [rectangle(11, 10, 30, 30, "Dog", SIZE)],
                "lead_time": 2.0,
                "parent_prediction": shown["id"],
            },
            timeout=30,
        )
    )
    assert r.patch(f"{d}/api/annotations/{final}/", json={"lead_time": 2.5}, timeout=30).status_code == 200

    # The record of T4's annotators is corrected to name A: A's own answer and draft on it are closed to A.
    data = world.api.request("GET", f"/api/tasks/{world.t4}/")["data"]
    world.api.request(
        "PATCH", f"/api/tasks/{world.t4}/", body={"data": {**data, ANNOTATOR_IDS: f",{world.a.user_id},"}}
    )
    a_on_t4 = [
        answer["id"]
        for answer in world.api.request("GET", f"/api/tasks/{world.t4}/annotations/")
        if answer["completed_by"] == world.a.user_id
    ]
    assert len(a_on_t4) == 1
    closed: list[tuple[str, str, Any]] = [
        ("GET", f"/api/annotations/{a_on_t4[0]}/", None),
        ("PATCH", f"/api/annotations/{a_on_t4[0]}/", {"result": []}),
        ("DELETE", f"/api/annotations/{a_on_t4[0]}/", None),
        ("POST", f"/api/annotations/{a_on_t4[0]}/convert-to-draft", None),
        ("POST", f"/api/tasks/{world.t4}/annotations/{a_on_t4[0]}/drafts", {"result": []}),
        ("GET", f"/api/drafts/{draft}/", None),
        ("PATCH", f"/api/drafts/{draft}/", {"result": []}),
        ("DELETE", f"/api/drafts/{draft}/", None),
    ]
    for method, path, body in closed:
        answer = a.request(method, d + path, json=body, timeout=30)
        assert (answer.status_code, detail(answer)) == (403, OWN_IMAGE), (method, path, answer.text)
    assert world.api.request("GET", f"/api/annotations/{a_on_t4[0]}/")["result"]
    # A's own work elsewhere is A's as before.
    assert a.get(f"{d}/api/tasks/{world.t2}/", timeout=30).status_code == 200


def test_administrators_are_not_affected(world: World) -> None:
    admin = token_session(world.api_token)
    d = world.direct
    for path in (
        f"/api/tasks/{world.t1}/",
        f"/api/projects/{world.review}/",
        f"/api/projects/{world.review}/tasks/",
        f"/api/annotations/{world.w_annotation}/",
        f"/api/tasks?project={world.review}&fields=all",
    ):
        answer = admin.get(d + path, timeout=30)
        assert answer.status_code == 200 and answer.headers.get("X-Labeling-Gate") is None, (path, answer.text)
    tasks = admin.get(f"{d}/api/tasks?project={world.review}", timeout=30).json()["tasks"]
    assert {world.t1, world.t2, world.t3, world.t4} <= {task["id"] for task in tasks}


# --- the contract's pure parts -------------------------------------------------------------------------------------


def test_projects_are_made_and_renamed_by_administrators_only() -> None:
    """A review project is known by its title: no worker may make one, or rename one."""
    assert rule_for("^api/projects/", "POST").access == Access.ADMIN
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert rule_for("^api/projects/<int:pk>/", method).access == Access.ADMIN, method
    assert rule_for("^api/projects/<int:pk>/import", "POST").access == Access.ADMIN
    assert REVIEWER_GROUP == "labeling-reviewers" and REVIEW_TITLE_SUFFIX == " (review)"


def test_annotator_ids_name_whole_ids_only() -> None:
    assert annotated_by({ANNOTATOR_IDS: ",3,7,"}, 7) and annotated_by({ANNOTATOR_IDS: ",7,"}, 7)
    for data in (
        {ANNOTATOR_IDS: ",37,"},
        {ANNOTATOR_IDS: ",3,77,"},
        {ANNOTATOR_IDS: ","},
        {},
        {ANNOTATOR_IDS: 7},
        None,
    ):
        assert not annotated_by(data, 7), data
    answer = {"tasks": [{"id": 1, "data": {ANNOTATOR_IDS: ",7,"}}, {"id": 2, "data": {ANNOTATOR_IDS: ",8,"}}]}
    assert without_tasks_annotated_by(answer, 7) == {"tasks": [{"id": 2, "data": {ANNOTATOR_IDS: ",8,"}}]}
    assert is_task_annotated_by({"id": 1, "data": {ANNOTATOR_IDS: ",7,"}}, 7)
    listing = {"count": 2, "results": [{"id": 1, "title": "Boxes"}, {"id": 2, "title": "Boxes (review)"}]}
    assert without_review_projects(listing) == {"count": 2, "results": [{"id": 1, "title": "Boxes"}]}


tasks_strategy = st.recursive(
    st.builds(
        lambda ids, extra: {"id": 1, "data": {ANNOTATOR_IDS: ids, **extra}},
        st.sampled_from([",", ",7,", ",3,7,", ",77,", ",3,"]),
        st.dictionaries(st.sampled_from(["image", "job"]), st.text(max_size=3), max_size=2),
    )
    | st.none()
    | st.integers(0, 9),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["tasks", "x"]), children),
    max_leaves=15,
)


def _tasks_naming(data: Any, user_id: int) -> list[Any]:
    if isinstance(data, list):
        return [found for item in data for found in _tasks_naming(item, user_id)]
    if isinstance(data, dict):
        own = [data] if annotated_by(data.get("data"), user_id) else []
        return own + [found for value in data.values() for found in _tasks_naming(value, user_id)]
    return []


@settings(max_examples=200, deadline=None)
@given(tasks_strategy)
def test_no_list_a_reviewer_reads_holds_a_task_of_their_own_image(data: Any) -> None:
    kept = without_tasks_annotated_by(data, 7)
    json.dumps(kept)
    # What is left naming them is the answer itself (refused whole by the middleware), never an item of a list.
    assert _tasks_naming(kept, 7) == ([kept] if is_task_annotated_by(kept, 7) else [])
