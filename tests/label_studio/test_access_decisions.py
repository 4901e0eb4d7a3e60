"""The pure parts of labeling_gate, without Django: the decision for each kind of caller, and the redaction of
what a worker reads, including answers of odd shapes (fuzzed): it never fails and never lets another user's
annotation, draft or a credential through."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from labeling_gate.decision import ANONYMOUS, Caller, Kind, decide
from labeling_gate.redaction import CREDENTIAL_KEYS, for_worker
from labeling_gate.routes import ROUTES, Access, rule_for

WORKER = Caller(Kind.WORKER, 7)
ADMIN = Caller(Kind.ADMIN, 1)


def test_each_kind_of_caller_on_each_kind_of_route() -> None:
    webhooks, annotation, login = "^api/webhooks/", "^api/annotations/<int:pk>/", "^user/login/"
    assert decide(webhooks, "GET", ADMIN).allowed
    assert not decide(webhooks, "GET", WORKER).allowed and not decide(webhooks, "GET", WORKER).sign_in
    assert decide(webhooks, "GET", ANONYMOUS).sign_in
    assert not decide(webhooks, "GET", Caller(Kind.CONFLICTING)).allowed
    assert decide(annotation, "PATCH", WORKER).rule.owner == "annotation:pk"
    assert decide(login, "POST", ANONYMOUS).allowed
    # Anything the table does not name is the administrators'.
    assert not decide("^api/something/new/", "GET", WORKER).allowed
    assert not decide(None, "GET", WORKER).allowed
    assert decide("admin/users/user/", "GET", ADMIN).allowed and not decide("admin/users/user/", "GET", WORKER).allowed


def test_the_data_managers_actions_are_refused_but_the_next_task() -> None:
    actions = "^api/dm/actions/"
    assert decide(actions, "POST", WORKER, ["next_task"]).allowed
    for ids in ([], ["delete_tasks"], ["next_task", "delete_tasks"], ["retrieve_tasks_predictions"]):
        assert not decide(actions, "POST", WORKER, ids).allowed, ids


def test_head_follows_get_and_other_methods_fall_to_the_administrators() -> None:
    assert rule_for("^api/tasks/<int:pk>/", "HEAD") == rule_for("^api/tasks/<int:pk>/", "GET")
    assert rule_for("^api/tasks/<int:pk>/", "DELETE").access == Access.ADMIN
    assert rule_for("^api/tasks/<int:pk>/", "OPTIONS").access == Access.ADMIN


def test_every_rule_says_why() -> None:
    for route, rules in ROUTES.items():
        for method, rule in rules.items():
            assert len(rule.why) >= 5, (route, method)
            assert (rule.access == Access.OWNER) == (rule.owner is not None), (route, method)


def test_a_workers_task_keeps_their_own_answers_and_the_predictions() -> None:
    task = {
        "id": 3,
        "data": {"image": "s3://bucket/images/a.png"},
        "annotations": [
            {"id": 1, "completed_by": 7, "result": [{"value": {"rectanglelabels": ["Cat"]}}]},
            {"id": 2, "completed_by": {"id": 8, "email": "other@example.com"}, "result": ["Dog"]},
        ],
        "drafts": [{"id": 5, "user": 8}, {"id": 6, "user": "7"}],
        "predictions": [{"id": 9, "result": ["Bird"]}],
        "annotations_results": "Cat, Dog",
        "annotators": [7, 8],
        "total_annotations": 2,
    }
    seen = for_worker({"tasks": [task], "total": 1}, 7, "tasks", keep_credentials=False)
    (kept,) = seen["tasks"]
    assert [a["id"] for a in kept["annotations"]] == [1] and [d["id"] for d in kept["drafts"]] == [6]
    assert kept["predictions"] == task["predictions"] and kept["total_annotations"] == 2
    assert kept["annotations_results"] == "" and kept["annotators"] == []


def test_credentials_are_removed_unless_the_answer_is_the_callers_own() -> None:
    answer = {"id": 1, "token": "x", "organization": {"invite_url": "/user/signup/?token=y", "title": "o"}}
    assert for_worker(answer, 7, None, keep_credentials=False) == {"id": 1, "organization": {"title": "o"}}
    assert for_worker({"token": "mine"}, 7, None, keep_credentials=True) == {"token": "mine"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["annotations", "drafts", "completed_by", "user", "id", "token", "results", "x", "password"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


def _others(data: Any, user_id: int) -> list[Any]:
    """Annotations and drafts of another user, and credential keys, anywhere in the data."""
    found: list[Any] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in CREDENTIAL_KEYS:
                found.append(key)
            if key in ("annotations", "drafts") and isinstance(value, list):
                owner_key = "completed_by" if key == "annotations" else "user"
                for item in value:
                    owner = item.get(owner_key) if isinstance(item, dict) else item
                    owner = owner.get("id") if isinstance(owner, dict) else owner
                    if not (isinstance(owner, int | str) and str(owner) == str(user_id)):
                        found.append(item)
            found += _others(value, user_id)
    elif isinstance(data, list):
        for item in data:
            found += _others(item, user_id)
    return found


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["tasks", "annotations", "drafts", "users", "views", "ml-backends", None]))
def test_redaction_of_any_answer_never_fails_and_never_leaks(data: Any, redaction: str | None) -> None:
    redacted = for_worker(data, 7, redaction, keep_credentials=False)
    json.dumps(redacted)
    leaks = _others(redacted, 7)
    assert [found for found in leaks if isinstance(found, str) and found in CREDENTIAL_KEYS] == []
    if redaction == "tasks":
        assert leaks == []
