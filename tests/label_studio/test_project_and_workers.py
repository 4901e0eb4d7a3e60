"""The project kept in step with the configuration, and workers' accounts, against the real server."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from labeling_pipeline.backends import WorkerError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.parts import list_parts
from labeling_pipeline.backends.label_studio.project import WEBHOOK_ACTIONS
from labeling_pipeline.backends.label_studio.results import read_tasks
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.exports.formats import ExportStats
from labeling_pipeline.job_results import write_exports
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import choose_password, password_link, signs_in, worker_token
from tests.label_studio.pipeline_world import (
    Pipeline,
    label_studio_pipeline,
    png,
    rectangle,
    until,
)


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Project and workers", workersPerImage=2) as world:
        yield world


def test_the_project_is_made_as_configured_and_a_second_run_changes_nothing(pipeline: Pipeline) -> None:
    project = pipeline.api.project(pipeline.project_id)
    assert project["title"] == "Project and workers"
    assert project["maximum_annotations"] == 2 and project["skip_queue"] == "IGNORE_SKIPPED"
    assert '<Label value="Dog"/>' in project["label_config"] and '<Label value="Cat"/>' in project["label_config"]
    assert "&lt;animal&gt; &amp; pick" in project["expert_instruction"]
    (storage,) = pipeline.api.s3_import_storages(pipeline.project_id)
    assert (storage["bucket"], storage["presign"], storage["prefix"] or "") == (pipeline.bucket, True, "")
    (hook,) = pipeline.api.webhooks(pipeline.project_id)
    assert sorted(hook["actions"]) == sorted(WEBHOOK_ACTIONS) and hook["url"] == pipeline.webhook_url
    again = pipeline.deploy()
    assert (again.project_id, again.changed) == (pipeline.project_id, [])
    assert [(part.number, part.id) for part in list_parts(pipeline.api, pipeline.title)] == [(1, pipeline.project_id)]


def test_a_label_configuration_changed_while_tasks_are_open_keeps_the_labels_in_use(pipeline: Pipeline) -> None:
    pipeline.upload("images/relabel/a.png", png(100, 100))
    assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    (task,) = [t for t in pipeline.tasks() if t["data"]["image"].endswith("relabel/a.png")]
    pipeline.annotate(task["id"], [rectangle(10, 10, 20, 20, "Cat", (100, 100))])
    renamed = pipeline.settings.model_copy(update={"labels": ("Dog", "Bird")})
    report = pipeline.deploy(renamed)
    assert report.changed == ["project fields label_config"]
    config = pipeline.api.project(pipeline.project_id)["label_config"]
    # Cat stays (an annotation uses it, and Label Studio would refuse to drop it); Bird is added.
    assert [label in config for label in ('"Dog"', '"Bird"', '"Cat"')] == [True, True, True]
    (kept,) = pipeline.api.tasks(pipeline.project_id, {"job": task["data"]["job"]}, with_annotations=True)
    assert kept["annotations"][0]["result"][0]["value"]["rectanglelabels"] == ["Cat"]


def test_workers_choose_their_own_password_reset_it_and_sign_up_stays_closed(pipeline: Pipeline) -> None:
    workers = LabelStudioWorkers(pipeline.api)
    url = pipeline.label_studio.url
    message = workers.add("Annotator@Example.com")
    link = password_link(message)
    assert link.startswith(f"{url}/labeling/password/") and "72 hours" in message
    assert workers.list().count("annotator@example.com  (has not chosen a password yet)") == 1
    # No password until the worker chooses one: nothing the operator saw signs in.
    assert not signs_in(url, "annotator@example.com", "")
    choose_password(link, "annotator-chose-this-1")
    assert signs_in(url, "annotator@example.com", "annotator-chose-this-1")
    assert "annotator@example.com" in workers.list()
    with pytest.raises(PermissionError, match="no longer works"):
        choose_password(link, "somebody-else-tries-2")
    with pytest.raises(WorkerError, match="already a worker"):
        workers.add("annotator@example.com")

    # Sign-up is closed to everyone, with the organization's own invite token too.
    invite_token = pipeline.api.request("GET", "/api/invite")["token"]
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30)
    stranger = session.post(
        f"{url}/user/signup/?token={invite_token}",
        data={
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            "email": "stranger@example.com",
            "password": "stranger-password-1",
        },
        allow_redirects=False,
        timeout=30,
    )
    # Nobody signed in posts a form: 401, from the access rules.
    assert (stranger.status_code, stranger.headers.get("X-Labeling-Gate")) == (401, "refused")
    assert "stranger@example.com" not in workers.list()

    # A forgotten password: a new link; the old password stops working at once.
    reset = workers.reset("annotator@example.com")
    assert "old password no longer works" in reset
    assert not signs_in(url, "annotator@example.com", "annotator-chose-this-1")
    choose_password(password_link(reset), "annotator-chose-again-3")
    assert signs_in(url, "annotator@example.com", "annotator-chose-again-3")

    token = worker_token(url, "annotator@example.com", "annotator-chose-again-3")
    assert "removed" in workers.remove("annotator@example.com").lower()
    assert "annotator@example.com" not in workers.list()
    assert not signs_in(url, "annotator@example.com", "annotator-chose-again-3")
    assert (
        requests.get(
            f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=30
        ).status_code
        == 401
    )
    with pytest.raises(WorkerError, match="not a worker"):
        workers.remove("annotator@example.com")
    with pytest.raises(WorkerError, match="not a worker"):
        workers.reset("annotator@example.com")
    # Added again later: a fresh account state, a new link.
    choose_password(password_link(workers.add("annotator@example.com")), "annotator-is-back-4")
    assert signs_in(url, "annotator@example.com", "annotator-is-back-4")


def test_two_annotators_per_image_end_the_job_with_one_consolidated_box_and_each_annotators_own(
    pipeline: Pipeline,
) -> None:
    key = "images/pairs/a.png"
    pipeline.upload(key, png(200, 100))
    assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    (task,) = [t for t in pipeline.tasks() if t["data"]["image"].endswith(key)]
    job = task["data"]["job"]
    choose_password(password_link(LabelStudioWorkers(pipeline.api).add("second@example.com")), "second-password-1")
    second = LabelStudioApi(
        pipeline.label_studio.url, worker_token(pipeline.label_studio.url, "second@example.com", "second-password-1")
    )

    pipeline.annotate(task["id"], [rectangle(10, 10, 20, 20, "Dog", (200, 100))])
    until(lambda: pipeline.webhook_calls and pipeline.webhook_calls[-1].body.get("job") == job)
    assert pipeline.webhook_calls[-1].body["action"] == "not-terminal"  # one answer of two
    second.request(
        "POST", f"/api/tasks/{task['id']}/annotations", body={"result": [rectangle(12, 10, 20, 20, "Dog", (200, 100))]}
    )
    exports = until(lambda: (found := pipeline.exports(job)).get("summary.json") and found)
    # The training formats hold one box, the mean of the two (IoU 720/880 >= 0.5, same label).
    coco = json.loads(exports["coco.json"])
    [consolidated] = coco["annotations"]
    assert consolidated["bbox"] == pytest.approx([22, 10, 40, 20]) and "annotator" not in consolidated
    # Each annotator's own box stays beside it, with who drew it.
    own = json.loads(exports["coco.annotators.json"])
    boxes = sorted((a["annotator"], a["bbox"]) for a in own["annotations"])
    assert sorted(bbox for _annotator, bbox in boxes) == [
        pytest.approx([20, 10, 40, 20]),
        pytest.approx([24, 10, 40, 20]),
    ]
    assert str(second.current_user()["id"]) in {annotator for annotator, _bbox in boxes}
    assert [image["source_ref"] for image in own["images"]] == [image["source_ref"] for image in coco["images"]]
    consolidation = json.loads(exports["summary.json"])["consolidation"]
    assert consolidation["consolidatedImages"] == 1 and consolidation["boxesKept"] == 1
    assert consolidation["agreement"]["mean"] == 1.0


def test_a_label_no_longer_configured_gets_the_next_class_id_and_is_listed(pipeline: Pipeline) -> None:
    (task,) = [t for t in pipeline.tasks() if t["data"]["image"].endswith("relabel/a.png")]  # annotated with Cat
    stats = ExportStats()
    images = read_tasks([json.dumps(task)], task["data"]["job"], stats.read)
    with tempfile.TemporaryDirectory() as work:
        write_exports(images, Path(work), ["Dog", "Bird"], "renamed", stats)
        coco = json.loads((Path(work) / "coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["Dog", "Bird", "Cat"]
    assert coco["annotations"][0]["category_id"] == 3
    assert stats.summary()["unconfiguredLabels"] == ["Cat"]
