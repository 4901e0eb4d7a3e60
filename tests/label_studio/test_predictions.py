"""Pre-labels in Label Studio, against the real server: a detector's proposals ride in the tasks' import as
predictions, a malformed one leaves the tasks imported once and the others their predictions, the project's
model_version follows the setting, and annotations made from predictions in bulk do not pass for labels.

One server for the module (the session's), plus one started with Label Studio's prediction validation flag on
(fflag_feat_utc_210_prediction_validation_15082025), which 1.23.2 ships off, for the test of what it refuses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from labeling_pipeline.backends import JobRequest
from labeling_pipeline.backends.label_studio import service
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.predictions import Prelabels, prediction, prelabels, region_id
from labeling_pipeline.backends.label_studio.project import ensure_project
from labeling_pipeline.backends.label_studio.results import (
    UNREVIEWED_REASON,
    PrelabelMark,
    read_task,
    read_tasks,
    unreviewed_prediction,
)
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box, ReadStats
from labeling_pipeline.launcher import job_images
from labeling_pipeline.names import OUTPUT_PREFIX
from labeling_pipeline.prelabel.proposals import Proposal, encode, proposal_key, read_proposals
from labeling_pipeline.settings import PipelineSettings, validate_json
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import LabelStudioClient, choose_password, password_link
from tests.label_studio.pipeline_world import REGION, Pipeline, label_studio_pipeline, png, settings_json

TITLE = "Prelabel tests"
PRELABEL = {
    "modelUri": "s3://models-example/detector.onnx",
    "classMap": {"0": "Dog", "1": "Cat"},
    "modelVersion": "det-v1",
    "holdOutPercent": 10,
}
VALIDATION_FLAG = "fflag_feat_utc_210_prediction_validation_15082025"
WORKER_EMAIL, WORKER_PASSWORD = "prelabel-worker@example.com", "lantern-orbit-417-quiet"


def settings_for(model_version: str = "det-v1", labels: tuple[str, ...] = ("Dog", "Cat")) -> PipelineSettings:
    class_map = {str(number): label for number, label in enumerate(labels)}
    text = settings_json(
        TITLE, labels=list(labels), prelabel={**PRELABEL, "modelVersion": model_version, "classMap": class_map}
    )
    return validate_json(settings_model("label-studio"), text)


class Recording(LabelStudioApi):
    """The pipeline's API client, noting each call and how it ended (ok, or the error's class)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.calls: list[tuple[str, str, str]] = []

    def request(self, method: str, path: str, *, body: Any = None, query: Any = None) -> Any:
        try:
            answer = super().request(method, path, body=body, query=query)
        except Exception as error:
            self.calls.append((method, path, f"{type(error).__name__}: {error}"))
            raise
        self.calls.append((method, path, "ok"))
        return answer

    def outcomes(self, method: str, path_end: str) -> list[str]:
        return [outcome for m, path, outcome in self.calls if m == method and path.endswith(path_end)]


@pytest.fixture(scope="module")
def world(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, TITLE, prelabel=PRELABEL) as pipeline:
        yield pipeline


@pytest.fixture(scope="module")
def worker(world: Pipeline) -> LabelStudioClient:
    """A worker account, signed in with its own token: what the labeling stream shows a person."""
    choose_password(password_link(LabelStudioWorkers(world.api).add(WORKER_EMAIL)), WORKER_PASSWORD)
    return LabelStudioClient.signed_in(world.label_studio.url, WORKER_EMAIL, WORKER_PASSWORD)


def recording_backend(world: Pipeline, settings: PipelineSettings | None = None) -> LabelStudioBackend:
    api = Recording(world.label_studio.url, world.label_studio.token)
    return LabelStudioBackend(api, world.client("s3"), settings or world.settings, bucket=world.bucket)


def calls(backend: LabelStudioBackend) -> Recording:
    assert isinstance(backend.api, Recording)
    return backend.api


def upload(world: Pipeline, sizes: dict[str, tuple[int, int]]) -> dict[str, ImageRef]:
    return {key: ImageRef(world.bucket, key, world.upload(key, png(*size))) for key, size in sizes.items()}


def propose(world: Pipeline, proposal: Proposal) -> None:
    world.client("s3").put_object(
        Bucket=world.bucket, Key=proposal_key(proposal.model_version, proposal.image), Body=encode(proposal)
    )


def launch(world: Pipeline, refs: dict[str, ImageRef], backend: LabelStudioBackend | None = None) -> str:
    """The launcher on these images (they make one job); the job's name."""
    outcomes = world.launcher(backend=backend).launch(list(refs.values()))
    assert all(outcome.ok for outcome in outcomes.values()), outcomes
    (job,) = {outcome.job_name for outcome in outcomes.values()}
    assert job is not None
    return job


def by_key(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {task["data"]["image"].split("/", 3)[3]: task for task in tasks}


def worker_view(client: LabelStudioClient, project_id: int, task_id: int) -> dict[str, Any]:
    """The task as the labeling stream hands it to the worker's editor (the data manager's next_task action,
    on that one task), with the predictions Label Studio shows them."""
    found: dict[str, Any] = client.request(
        "POST",
        "/api/dm/actions",
        params={"id": "next_task", "project": project_id},
        json={"selectedItems": {"all": False, "included": [task_id]}},
    )
    assert found["id"] == task_id
    return found


def log_since(server: LabelStudioServer, offset: int) -> str:
    with server.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_size(server: LabelStudioServer) -> int:
    return server.log_path.stat().st_size


def model_version(world_api: LabelStudioApi, project_id: int) -> Any:
    return world_api.project(project_id, fields=("id", "model_version")).get("model_version")


# --- the prediction each proposal makes (no server) ------------------------------------------------------------


def test_a_proposal_becomes_regions_label_studio_can_show() -> None:
    image = ImageRef("bucket-x", "images/a.png", "v1")
    boxes = (
        Box("Dog", 100, 50, 200, 150, 0.9),
        Box("Cat", 700, 500, 200, 200, 0.5),  # past the right and bottom edges: clipped
        Box("Dog", 10, 10, 0, 20, 0.99),  # no width: dropped
        Box("Dog", 900, 700, 50, 50, 0.8),  # wholly outside: dropped
        Box("Horse", 10, 10, 20, 20, 0.7),  # not one of the pipeline's labels: dropped
        Box("Cat", math.nan, 10, 20, 20, 0.7),  # not a number: dropped
        Box("Cat", 0, 0, 8, 6, None),  # no score: shown, and left out of the mean
    )
    made = prediction(Proposal("det-v1", image, 800, 600, boxes), "det-v1", ("Dog", "Cat"))
    assert made is not None and made["model_version"] == "det-v1"
    assert made["score"] == pytest.approx((0.9 + 0.5) / 2)
    regions = made["result"]
    assert [region["id"] for region in regions] == [region_id("det-v1", image, n) for n in (0, 1, 6)]
    assert len({region["id"] for region in regions}) == 3
    assert [region["value"]["rectanglelabels"] for region in regions] == [["Dog"], ["Cat"], ["Cat"]]
    values = [tuple(region["value"][k] for k in ("x", "y", "width", "height")) for region in regions]
    assert values[0] == pytest.approx((12.5, 100 * 50 / 600, 25, 25))
    assert values[1] == pytest.approx((87.5, 100 * 500 / 600, 12.5, 100 * 100 / 600))
    assert values[2] == pytest.approx((0, 0, 1, 1))
    for region in regions:
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "image", "rectanglelabels")
        assert (region["original_width"], region["original_height"], region["value"]["rotation"]) == (800, 600, 0)
        assert all(0 <= region["value"][k] <= 100 for k in ("x", "y", "width", "height"))
    assert [region.get("score") for region in regions] == [0.9, 0.5, None]
    # The same proposal again (a retried start): the same prediction, ids and all.
    assert prediction(Proposal("det-v1", image, 800, 600, boxes), "det-v1", ("Dog", "Cat")) == made

    # No size, no percent: no prediction. Nothing left to show: an empty one (the model saw nothing).
    assert prediction(Proposal("det-v1", image, 0, 600, boxes), "det-v1", ("Dog",)) is None
    assert prediction(Proposal("det-v1", image, 80, 60, boxes[2:4]), "det-v1", ("Dog",)) == {
        "model_version": "det-v1",
        "result": [],
    }


def test_which_tasks_carry_what() -> None:
    settings = settings_for()
    shown, kept, other = (ImageRef("b", f"images/{name}.png", "v") for name in ("shown", "kept", "other"))
    proposals = {
        shown: Proposal("det-v1", shown, 10, 10, (Box("Dog", 1, 1, 2, 2, 0.5),)),
        kept: Proposal("det-v1", kept, 10, 10, held_out=True),
        other: Proposal("det-v0", other, 10, 10, (Box("Dog", 1, 1, 2, 2, 0.5),)),  # written before a change
    }
    marks = prelabels(proposals, settings)
    assert marks.model_version == "det-v1"
    assert marks.marks == {shown: PrelabelMark.PROPOSED, kept: PrelabelMark.HELD_OUT}
    assert list(marks.predictions) == [shown]
    off = validate_json(settings_model("label-studio"), settings_json(TITLE))
    assert prelabels(proposals, off).marks == {} and prelabels(proposals, off).predictions == {}


def test_the_rule_for_annotations_nobody_looked_at() -> None:
    bulk: dict[str, Any] = {"id": 1, "parent_prediction": 7, "lead_time": None, "was_cancelled": False, "result": []}
    assert unreviewed_prediction(bulk)
    assert unreviewed_prediction({**bulk, "lead_time": 0})
    assert not unreviewed_prediction({**bulk, "lead_time": 3.5})  # a person accepted it in the editor
    assert not unreviewed_prediction({**bulk, "parent_prediction": None})  # drawn, or posted by a script
    assert not unreviewed_prediction({**bulk, "was_cancelled": True})  # a skip is a skip
    task = {"id": 5, "data": {"image": "s3://b/a.png", "job": "j"}, "annotations": [bulk]}
    image = read_task(task, 1, None, ReadStats())
    assert (image.failure_reason, image.boxes, image.human_annotated) == (UNREVIEWED_REASON, (), False)


# --- against the server ------------------------------------------------------------------------------------


def test_proposals_ride_in_the_task_import_and_workers_see_them(
    world: Pipeline, label_studio: LabelStudioServer, worker: LabelStudioClient
) -> None:
    # Label Studio checks a new project's model_version against nothing: the deployment set it at creation.
    assert model_version(world.api, world.project_id) == "det-v1"
    refs = upload(
        world,
        {
            "images/ride/a.png": (800, 600),
            "images/ride/held.png": (640, 480),
            "images/ride/none.png": (320, 240),
            "images/ride/empty.png": (400, 400),
        },
    )
    a, held, _none, empty = refs.values()
    propose(
        world,
        Proposal(
            "det-v1",
            a,
            800,
            600,
            (Box("Dog", 100, 50, 200, 150, 0.9), Box("Cat", 700, 500, 200, 200, 0.5), Box("Dog", 10, 10, 0, 20, 0.9)),
        ),
    )
    propose(world, Proposal("det-v1", held, 640, 480, held_out=True))
    propose(world, Proposal("det-v1", empty, 400, 400, dropped={"lowScore": 3}))
    backend = recording_backend(world)
    offset = log_size(label_studio)
    job = launch(world, refs, backend)

    # One import request carried the tasks and their predictions; nothing was added afterwards.
    assert calls(backend).outcomes("POST", f"/api/projects/{world.project_id}/import") == ["ok"]
    assert calls(backend).outcomes("POST", "/api/predictions/") == []
    assert (backend.predictions_added, backend.predictions_refused) == (0, 0)
    # Label Studio's own validator (it logs what it would refuse with its flag on) found nothing to say.
    assert "Prediction validation failed" not in log_since(label_studio, offset)

    tasks = by_key(world.tasks(job))
    assert len(tasks) == 4
    marks = {key: task["data"].get("prelabel") for key, task in tasks.items()}
    assert marks == {
        "images/ride/a.png": "proposed",
        "images/ride/held.png": "held-out",
        "images/ride/none.png": None,
        "images/ride/empty.png": "proposed",
    }
    (shown,) = tasks["images/ride/a.png"]["predictions"]
    assert (shown["model_version"], shown["score"]) == ("det-v1", pytest.approx(0.7))
    assert [region["id"] for region in shown["result"]] == [region_id("det-v1", a, 0), region_id("det-v1", a, 1)]
    assert [region["score"] for region in shown["result"]] == [0.9, 0.5]
    assert [region["value"]["width"] for region in shown["result"]] == pytest.approx([25, 12.5])
    assert tasks["images/ride/held.png"]["predictions"] == tasks["images/ride/none.png"]["predictions"] == []
    (nothing,) = tasks["images/ride/empty.png"]["predictions"]
    assert (nothing["result"], nothing["score"]) == ([], None)
    assert model_version(world.api, world.project_id) == "det-v1"

    # The worker's editor gets the proposals as Label Studio keeps them.
    seen = worker_view(worker, world.project_id, tasks["images/ride/a.png"]["id"])
    assert [p["result"] for p in seen["predictions"]] == [shown["result"]]
    assert worker_view(worker, world.project_id, tasks["images/ride/held.png"]["id"])["predictions"] == []

    # The start again, as a retry finds the job (a crash before the ledger's mark): nothing imported, no
    # prediction added twice.
    proposals, unreadable = read_proposals(world.client("s3"), world.bucket, "det-v1", refs.values())
    assert unreadable == {} and set(proposals) == {a, held, empty}
    again = recording_backend(world)
    request = JobRequest(job, tuple(sorted(refs.values())), world.bucket, f"jobs/{job}/", OUTPUT_PREFIX, proposals)
    again.create_job(request)
    assert calls(again).outcomes("POST", f"/api/projects/{world.project_id}/import") == []
    assert calls(again).outcomes("POST", "/api/predictions/") == []
    counts = {key.rsplit("/", 1)[1]: len(task["predictions"]) for key, task in by_key(world.tasks(job)).items()}
    assert counts == {"a.png": 1, "held.png": 0, "none.png": 0, "empty.png": 1}


def malformed(image_key: str) -> Any:
    """service.prelabels, with a region that is not one in the prediction of one image."""
    original = service.prelabels

    def prelabels_with_a_bad_one(proposals: Any, settings: PipelineSettings) -> Prelabels:
        made = original(proposals, settings)
        for image, planned in made.predictions.items():
            if image.key == image_key:
                made.predictions[image] = {**planned, "result": [*planned["result"], "not a region"]}
        return made

    return prelabels_with_a_bad_one


def direct_request(
    world: Pipeline,
    job: str,
    refs: dict[str, ImageRef],
    version: str = "det-v1",
    labels: tuple[str, str] = ("Dog", "Cat"),
) -> JobRequest:
    """The job's request as the launcher makes it, each image proposed two boxes (of `labels`)."""
    proposals = {
        ref: Proposal(
            version, ref, 100, 100, (Box(labels[0], 10, 10, 20, 20, 0.8), Box(labels[1], 50, 50, 30, 30, 0.6))
        )
        for ref in refs.values()
    }
    return JobRequest(job, tuple(sorted(refs.values())), world.bucket, f"jobs/{job}/", OUTPUT_PREFIX, proposals)


def test_a_malformed_prediction_in_a_real_import_costs_only_itself(
    world: Pipeline, label_studio: LabelStudioServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refs = upload(world, {f"images/malformed/{n}.png": (100, 100) for n in ("a", "b", "bad")})
    request = direct_request(world, "lsbox-malformed-000000000001", refs)
    monkeypatch.setattr(service, "prelabels", malformed("images/malformed/bad.png"))
    backend = recording_backend(world)
    offset = log_size(label_studio)
    with caplog.at_level(logging.WARNING, logger=service.__name__):
        backend.create_job(request)  # no error: the tasks are in, exactly once

    # Label Studio 1.23.2 made the tasks, none of the predictions, and answered 500 (module doc of service.py).
    (imported,) = calls(backend).outcomes("POST", f"/api/projects/{world.project_id}/import")
    assert imported.startswith("LabelStudioUnavailable") and "HTTP 500" in imported
    assert "'BaseTaskSerializerBulk' object has no attribute 'db_predictions'" in log_since(label_studio, offset)
    # Each task that lacked its prediction got it alone; the malformed one was refused alone.
    assert calls(backend).outcomes("POST", "/api/predictions/")[:2] == ["ok", "ok"]
    assert (backend.predictions_added, backend.predictions_refused) == (2, 1)
    assert "made its tasks, then failed" in caplog.text and "prediction refused" in caplog.text
    tasks = by_key(world.tasks(request.name))
    assert sorted(tasks) == sorted(refs)
    planned = prelabels(request.proposals, world.settings).predictions
    for key in ("images/malformed/a.png", "images/malformed/b.png"):
        (made,) = tasks[key]["predictions"]
        assert (made["model_version"], made["result"]) == ("det-v1", planned[refs[key]]["result"])
        assert tasks[key]["data"]["prelabel"] == "proposed"
    assert tasks["images/malformed/bad.png"]["predictions"] == []

    # A retried start (a new container): no task imported again, only the missing prediction tried again.
    again = recording_backend(world)
    again.create_job(request)
    assert calls(again).outcomes("POST", f"/api/projects/{world.project_id}/import") == []
    assert (again.predictions_added, again.predictions_refused) == (0, 1)
    assert sorted(len(task["predictions"]) for task in world.tasks(request.name)) == [0, 1, 1]


def test_with_label_studio_validating_predictions_a_refused_import_is_sent_again_without_them(
    world: Pipeline, moto_s3_server: MotoServer, tmp_path: Path
) -> None:
    """The window of a deploy: the launcher knows a new label (Fox) before the project's label config does."""
    with LabelStudioServer(tmp_path / "strict", extra_environment={VALIDATION_FLAG: "true"}) as strict:
        api = LabelStudioApi(strict.url, strict.token)
        report = ensure_project(
            api,
            world.settings,
            bucket=world.bucket,
            region=REGION,
            webhook_url=None,
            webhook_secret=None,
            s3_endpoint=moto_s3_server.url,
        )
        refs = upload(world, {f"images/strict/{n}.png": (100, 100) for n in ("a", "b")})
        fox = upload(world, {"images/strict/fox.png": (100, 100)})
        request = direct_request(world, "lsbox-strict-000000000001", refs)
        request = dataclasses.replace(
            request,
            images=tuple(sorted([*request.images, *fox.values()])),
            proposals={**request.proposals, **direct_request(world, "-", fox, labels=("Fox", "Dog")).proposals},
        )
        refs.update(fox)
        backend = LabelStudioBackend(
            Recording(strict.url, strict.token),
            world.client("s3"),
            settings_for(labels=("Dog", "Cat", "Fox")),
            bucket=world.bucket,
        )
        backend.create_job(request)

        # The whole request refused (nothing stored), then the tasks alone, then each prediction alone.
        assert (
            calls(backend)
            .outcomes("POST", f"/api/projects/{report.project_id}/import")[0]
            .startswith("LabelStudioRefused")
        )
        assert calls(backend).outcomes("POST", f"/api/projects/{report.project_id}/import")[1:] == ["ok"]
        assert (backend.predictions_added, backend.predictions_refused) == (2, 1)
        tasks = by_key(list(api.tasks(report.project_id, {"job": request.name}, with_annotations=True)))
        assert sorted(tasks) == sorted(refs)
        assert [len(tasks[key]["predictions"]) for key in sorted(tasks)] == [1, 1, 0]
        assert all(task["data"]["prelabel"] == "proposed" for task in tasks.values())
        assert model_version(api, report.project_id) == "det-v1"


def test_the_project_model_version_follows_the_setting(world: Pipeline, worker: LabelStudioClient) -> None:
    old_refs = upload(world, {"images/versions/old.png": (100, 100)})
    old_request = direct_request(world, "lsbox-versions-000000000001", old_refs)
    LabelStudioBackend(world.api, world.client("s3"), world.settings, bucket=world.bucket).create_job(old_request)
    assert model_version(world.api, world.project_id) == "det-v1"

    # A deploy with modelVersion det-v2: Label Studio refuses a version no prediction has, so the project keeps
    # det-v1 (and the deploy does not fail) until a job brings det-v2's predictions.
    v2 = settings_for("det-v2")
    assert world.deploy(v2).changed == []
    assert model_version(world.api, world.project_id) == "det-v1"
    new_refs = upload(world, {"images/versions/new.png": (100, 100)})
    new_request = direct_request(world, "lsbox-versions-000000000002", new_refs, version="det-v2")
    LabelStudioBackend(world.api, world.client("s3"), v2, bucket=world.bucket).create_job(new_request)
    assert model_version(world.api, world.project_id) == "det-v2"

    (old_task,) = world.tasks(old_request.name)
    (new_task,) = world.tasks(new_request.name)
    assert [p["model_version"] for p in new_task["predictions"]] == ["det-v2"]
    # What the editor gets: the current version's predictions. The old open task keeps its det-v1 prediction
    # (the task's own API lists every version), but its worker is shown none.
    assert [p["model_version"] for p in worker_view(worker, world.project_id, new_task["id"])["predictions"]] == [
        "det-v2"
    ]
    assert worker_view(worker, world.project_id, old_task["id"])["predictions"] == []
    detail = world.api.request("GET", f"/api/tasks/{old_task['id']}")
    assert [p["model_version"] for p in detail["predictions"]] == ["det-v1"]

    # Someone sets it back by hand: the next deploy puts it right. Going back to det-v1 works the same way.
    world.api.update_project(world.project_id, {"model_version": "det-v1"})
    assert "model_version det-v2" in world.deploy(v2).changed
    assert model_version(world.api, world.project_id) == "det-v2"
    assert "model_version det-v1" in world.deploy().changed
    assert model_version(world.api, world.project_id) == "det-v1"
    assert worker_view(worker, world.project_id, old_task["id"])["predictions"][0]["model_version"] == "det-v1"


def test_annotations_made_from_predictions_in_bulk_do_not_pass_for_labels(
    world: Pipeline, worker: LabelStudioClient
) -> None:
    keys = [f"images/bulk/{n}.png" for n in ("a", "b", "person")]
    refs = upload(world, dict.fromkeys(keys, (200, 100)))
    for ref in refs.values():
        propose(world, Proposal("det-v1", ref, 200, 100, (Box("Dog", 20, 10, 100, 50, 0.8),)))
    job = launch(world, refs)
    tasks = by_key(world.tasks(job))
    assert all(len(task["predictions"]) == 1 for task in tasks.values())

    # A person opens one task in the editor and submits the proposal as it is: what the editor posts.
    person = tasks["images/bulk/person.png"]
    (proposed,) = person["predictions"]
    calls_before = len(world.webhook_calls)
    worker.request(
        "POST",
        f"/api/tasks/{person['id']}/annotations",
        params={"project": world.project_id},
        json={
            "result": [{**region, "origin": "prediction"} for region in proposed["result"]],
            "lead_time": 6.4,
            "parent_prediction": proposed["id"],
            "draft_id": None,
            "started_at": datetime.now(UTC).isoformat(),
        },
    )
    assert world.wait_for_webhooks(calls_before + 1)[-1].body["action"] == "not-terminal"
    # Then an administrator creates annotations from predictions for the other two, in bulk.
    bulk_ids = [tasks[key]["id"] for key in keys[:2]]
    answer = world.api.request(
        "POST",
        "/api/dm/actions",
        query={"id": "predictions_to_annotations", "project": world.project_id},
        body={"selectedItems": {"all": False, "included": bulk_ids}},
    )
    assert answer["detail"] == "Created 2 annotations"
    last = world.wait_for_webhooks(calls_before + 2)[-1]
    assert (last.status, last.body) == (200, {"action": "exported", "job": job})

    # What Label Studio made, as the rule reads it: no lead time, the prediction as parent, its regions as
    # they were (no origin), credited to whoever ran the action.
    admin_id = world.api.current_user()["id"]
    tasks = by_key(world.tasks(job))
    for key in keys[:2]:
        (made,) = tasks[key]["annotations"]
        (parent,) = tasks[key]["predictions"]
        assert (made["lead_time"], made["parent_prediction"], made["completed_by"]) == (None, parent["id"], admin_id)
        assert made["result"] == parent["result"] and "origin" not in made["result"][0]
        assert made["last_action"] is None and made["bulk_created"] is False
        assert unreviewed_prediction(made)
    (by_person,) = tasks["images/bulk/person.png"]["annotations"]
    assert not unreviewed_prediction(by_person) and by_person["result"][0]["origin"] == "prediction"

    # The job ended (Label Studio serves those tasks to nobody now), but the two are images to relabel.
    summary = json.loads(world.exports(job)["summary.json"])
    assert summary["imagesLabeled"] == 1
    assert summary["failedObjects"] == [
        {"sourceRef": f"s3://{world.bucket}/{key}", "reason": UNREVIEWED_REASON} for key in keys[:2]
    ]
    coco = json.loads(world.exports(job)["coco.json"])
    assert [image["source_ref"] for image in coco["images"]] == [f"s3://{world.bucket}/images/bulk/person.png"]
    assert [annotation["bbox"] for annotation in coco["annotations"]] == [pytest.approx([20, 10, 100, 50])]
    statuses = {
        ref.key: status for ref, status in job_images(world.client("s3"), world.bucket, world.ledger, job).items()
    }
    assert statuses == {keys[0]: "NEEDS_RELABEL", keys[1]: "NEEDS_RELABEL", keys[2]: "LABELED"}
    described = world.backend().describe_job(job)
    assert (described.state, described.labeled, described.failed_objects, described.unlabeled) == ("Completed", 1, 2, 0)
    # The raw tasks keep what the report needs: which tasks had proposals, and which; the person's answer reads
    # with its time and its regions' origin.
    raw = world.client("s3").get_object(Bucket=world.bucket, Key=f"{OUTPUT_PREFIX}{job}/tasks.jsonl")["Body"].read()
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert {line["data"]["prelabel"] for line in lines} == {"proposed"}
    assert all(line["predictions"][0]["model_version"] == "det-v1" for line in lines)
    read = {image.source_ref.rsplit("/", 1)[1]: image for image in read_tasks(raw.decode().splitlines(), job, None)}
    assert read["person.png"].seconds == pytest.approx(6.4) and read["a.png"].seconds is None
    assert [(box.label, box.origin) for box in read["person.png"].boxes] == [("Dog", "prediction")]

    # A person then opens one of them and updates it (the editor sends the time spent): now it is a label.
    (bulk_made,) = tasks[keys[0]]["annotations"]
    calls_before = len(world.webhook_calls)
    world.api.request(
        "PATCH",
        f"/api/annotations/{bulk_made['id']}",
        body={"result": [{**region, "origin": "prediction"} for region in bulk_made["result"]], "lead_time": 3.0},
    )
    assert world.wait_for_webhooks(calls_before + 1)[-1].body == {"action": "re-exported", "job": job}
    summary = json.loads(world.exports(job)["summary.json"])
    assert summary["imagesLabeled"] == 2 and [f["sourceRef"] for f in summary["failedObjects"]] == [
        f"s3://{world.bucket}/{keys[1]}"
    ]
