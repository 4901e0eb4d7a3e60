"""The Label Studio backend end to end against the real server: uploads become tasks exactly once, the
webhook and the reconciler end jobs, the exports convert Label Studio's answers, bad input is reported."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labeling_cli.commands import ResultsSource, export_command, relabel_command, review_command, status_command
from labeling_pipeline.backends.label_studio import build
from labeling_pipeline.backends.label_studio.project import SECRET_HEADER
from labeling_pipeline.backends.label_studio.results import SKIPPED_REASON, UNREVIEWED_REASON
from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import job_images
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import (
    REGION,
    Pipeline,
    label_studio_pipeline,
    png,
    rectangle,
    resolved_image,
    secret_header,
    until,
)
from tests.support import extract_archive


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Pipeline tests") as world:
        yield world


def test_uploads_become_one_task_per_image_version(pipeline: Pipeline) -> None:
    bodies = {"images/walk/a.png": png(800, 600), "images/walk/cats/chelsea the cat.png": png(640, 480)}
    for key, body in bodies.items():
        pipeline.upload(key, body)
    pipeline.upload("images/walk/notes.txt", b"not an image", "text/plain")
    records = pipeline.receive_uploads(3)
    # Three uploads, plus the s3:TestEvent that S3 sends when the notification is set up.
    assert len(records) == 4 and sum('"s3:TestEvent"' in r["body"] for r in records) == 1
    # Every message delivered twice, the second time in another invocation.
    assert pipeline.launch(records) == {"batchItemFailures": []}
    assert pipeline.launch(records) == {"batchItemFailures": []}
    tasks = pipeline.tasks()
    assert sorted(t["data"]["image"] for t in tasks) == sorted(f"s3://{pipeline.bucket}/{key}" for key in bodies)
    (job,) = {t["data"]["job"] for t in tasks}
    assert pipeline.ledger.job_created(job)
    # Each task is the image version the ledger gave the job (moto's events carry no versionId, so the
    # launcher keys versions by ETag, as it does for an unversioned bucket).
    owners = pipeline.ledger.owners(
        ImageRef(pipeline.bucket, t["data"]["image"].split("/", 3)[3], t["data"]["imageVersion"]) for t in tasks
    )
    assert set(owners.values()) == {job}
    # The worker's browser gets the very bytes uploaded, through the storage's presigned URL.
    by_ref = {t["data"]["image"]: t for t in tasks}
    for key, body in bodies.items():
        assert resolved_image(pipeline, by_ref[f"s3://{pipeline.bucket}/{key}"]) == body
    assert pipeline.dead_letters() == []


def new_job(pipeline: Pipeline, images: dict[str, tuple[int, int]]) -> tuple[str, dict[str, dict[str, Any]]]:
    """Upload the images, run the launcher on their events; returns the job and its tasks by key."""
    for key, size in images.items():
        pipeline.upload(key, png(*size))
    assert pipeline.launch(pipeline.receive_uploads(len(images))) == {"batchItemFailures": []}
    tasks = [t for t in pipeline.tasks() if t["data"]["image"].split("/", 3)[3] in images]
    assert len(tasks) == len(images)
    (job,) = {t["data"]["job"] for t in tasks}
    return job, {t["data"]["image"].split("/", 3)[3]: t for t in tasks}


def coco_boxes(coco: dict[str, Any]) -> dict[str, list[list[float]]]:
    names = {image["id"]: image["source_ref"].split("/", 3)[3] for image in coco["images"]}
    found: dict[str, list[list[float]]] = {}
    for annotation in coco["annotations"]:
        found.setdefault(names[annotation["image_id"]], []).append(annotation["bbox"])
    return found


def label_studio_coco(pipeline: Pipeline) -> dict[str, Any]:
    """Label Studio's own COCO export of the project (a zip with result.json)."""
    answer = requests.get(
        f"{pipeline.label_studio.url}/api/projects/{pipeline.project_id}/export",
        params={"exportType": "COCO", "download_resources": "false"},
        headers=pipeline.label_studio.headers,
        timeout=60,
    )
    answer.raise_for_status()
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        result: dict[str, Any] = json.loads(archive.read("result.json"))
    return result


def test_the_webhook_ends_the_job_and_the_exports_convert_what_label_studio_gets_wrong(pipeline: Pipeline) -> None:
    rotated_key, spilling_key = "images/convert/rotated.png", "images/convert/spilling.png"
    job, tasks = new_job(pipeline, {rotated_key: (800, 600), spilling_key: (640, 480)})
    calls_before = len(pipeline.webhook_calls)
    # 30 degrees clockwise about its top-left corner, on a non-square image.
    pipeline.annotate(tasks[rotated_key]["id"], [rectangle(40, 10, 30, 40, "Dog", (800, 600), rotation=30)])
    assert pipeline.wait_for_webhooks(calls_before + 1)[-1].body["action"] == "not-terminal"
    # Past the right and bottom edges.
    pipeline.annotate(tasks[spilling_key]["id"], [rectangle(80, 70, 30, 40, "Cat", (640, 480))])
    last = pipeline.wait_for_webhooks(calls_before + 2)[-1]
    assert (last.status, last.body) == (200, {"action": "exported", "job": job})

    exports = pipeline.exports(job)
    assert sorted(exports) == ["coco.json", "summary.json", "voc.tar.gz", "yolo.tar.gz"]
    ours = coco_boxes(json.loads(exports["coco.json"]))
    # The rotated rectangle's corners, turned by hand: (320, 60), (320 + 240 cos 30, 60 + 240 sin 30), ...
    cos, sin = math.cos(math.radians(30)), math.sin(math.radians(30))
    xs = [320, 320 + 240 * cos, 320 + 240 * cos - 240 * sin, 320 - 240 * sin]
    ys = [60, 60 + 240 * sin, 60 + 240 * sin + 240 * cos, 60 + 240 * cos]
    expected_rotated = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    assert ours[rotated_key] == [pytest.approx(expected_rotated, abs=0.01)]
    assert ours[spilling_key] == [pytest.approx([512, 336, 128, 144], abs=0.01)]
    summary = json.loads(exports["summary.json"])
    assert summary["rotatedBoxesStraightened"] == 1 and summary["boxesClipped"] == 1
    assert summary["images"] == 2 and summary["failedObjects"] == []

    # Label Studio's own COCO export of the same answers: the rotated box shifted (it rotates in percent
    # space, label-studio-converter#101) and the spilling box not clipped.
    theirs = coco_boxes_by_name(label_studio_coco(pipeline))
    assert theirs["rotated.png"][0] != pytest.approx(expected_rotated, abs=2)
    left, top, width, height = theirs["spilling.png"][0]
    assert left + width > 640 and top + height > 480

    raw = pipeline.client("s3").get_object(Bucket=pipeline.bucket, Key=f"output/{job}/tasks.jsonl")["Body"].read()
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert sorted(line["data"]["image"] for line in lines) == sorted(
        f"s3://{pipeline.bucket}/{key}" for key in (rotated_key, spilling_key)
    )
    notices = [n for n in pipeline.notifications() if n.get("job") == job]
    assert len(notices) == 1 and notices[0]["status"] == "Completed"
    assert pipeline.ledger.job_status(job) == "COMPLETED"


def coco_boxes_by_name(coco: dict[str, Any]) -> dict[str, list[list[float]]]:
    # Label Studio names an image file images/<8 hex>__<name> (or keeps the URL); the base name identifies it.
    names = {image["id"]: image["file_name"].rsplit("/", 1)[-1].split("__", 1)[-1] for image in coco["images"]}
    found: dict[str, list[list[float]]] = {}
    for annotation in coco["annotations"]:
        found.setdefault(names[annotation["image_id"]], []).append(annotation["bbox"])
    return found


def test_a_webhook_without_the_secret_is_refused_and_changes_nothing(pipeline: Pipeline) -> None:
    body = json.dumps(
        {"action": "ANNOTATION_CREATED", "project": {"id": pipeline.project_id}, "task": {"data": {"job": "lsbox-x"}}}
    )
    for headers, status in (({}, 403), ({SECRET_HEADER: "wrong"}, 403), (secret_header(), 200)):
        answer = requests.post(pipeline.webhook_url, data=body, headers=headers, timeout=10)
        assert answer.status_code == status, headers
    # The right secret for another project: refused too.
    other = json.dumps(
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": pipeline.project_id + 1000},
            "task": {"data": {"job": "lsbox-x"}},
        }
    )
    assert requests.post(pipeline.webhook_url, data=other, headers=secret_header(), timeout=10).status_code == 403


def test_the_reconciler_ends_a_job_whose_webhooks_were_lost_and_skips_are_relabeled(pipeline: Pipeline) -> None:
    job, tasks = new_job(pipeline, {"images/lost/a.png": (320, 240), "images/lost/broken.png": (300, 300)})
    pipeline.drop_webhooks = True
    try:
        pipeline.annotate(tasks["images/lost/a.png"]["id"], [rectangle(10, 10, 50, 50, "Dog", (320, 240))])
        # The worker could not see this image and pressed Skip.
        pipeline.annotate(tasks["images/lost/broken.png"]["id"], [], cancelled=True)
    finally:
        pipeline.drop_webhooks = False
    assert pipeline.exports(job) == {}
    answer = pipeline.reconcile()
    assert job in answer["finished"]
    summary = json.loads(pipeline.exports(job)["summary.json"])
    assert summary["imagesLabeled"] == 1
    assert summary["failedObjects"] == [
        {"sourceRef": f"s3://{pipeline.bucket}/images/lost/broken.png", "reason": SKIPPED_REASON}
    ]
    statuses = {
        image.key: status
        for image, status in job_images(pipeline.client("s3"), pipeline.bucket, pipeline.ledger, job).items()
    }
    assert statuses == {"images/lost/a.png": "LABELED", "images/lost/broken.png": "NEEDS_RELABEL"}
    # A second tick finds nothing open.
    assert job not in pipeline.reconcile()["finished"]


def test_an_annotation_changed_after_the_export_exports_the_job_again(pipeline: Pipeline) -> None:
    key = "images/changed/a.png"
    job, tasks = new_job(pipeline, {key: (400, 400)})
    created = pipeline.annotate(tasks[key]["id"], [rectangle(10, 10, 10, 10, "Dog", (400, 400))])
    until(lambda: pipeline.exports(job).get("coco.json"))
    assert coco_boxes(json.loads(pipeline.exports(job)["coco.json"]))[key] == [pytest.approx([40, 40, 40, 40])]
    calls = len(pipeline.webhook_calls)
    pipeline.api.request(
        "PATCH", f"/api/annotations/{created['id']}", body={"result": [rectangle(50, 50, 25, 25, "Cat", (400, 400))]}
    )
    assert pipeline.wait_for_webhooks(calls + 1)[-1].body == {"action": "re-exported", "job": job}
    assert coco_boxes(json.loads(pipeline.exports(job)["coco.json"]))[key] == [pytest.approx([200, 200, 100, 100])]
    # The same webhook again: nothing changed since, nothing is exported.
    body: dict[str, Any] = {
        "action": "ANNOTATION_UPDATED",
        "project": {"id": pipeline.project_id},
        "task": {"data": {"job": job}},
    }
    again = requests.post(pipeline.webhook_url, json=body, headers=secret_header(), timeout=30)
    assert again.json() == {"action": "duplicate", "job": job}
    # A deletion names no job: the recent jobs are checked. Its task has no answer left, so the job is open
    # again and the export stays as it was until the task is answered again.
    calls = len(pipeline.webhook_calls)
    pipeline.api.request("DELETE", f"/api/annotations/{created['id']}")
    answer = pipeline.wait_for_webhooks(calls + 1)[-1].body
    assert answer["action"] == "rechecked" and answer["jobs"][job] == "duplicate"
    calls = len(pipeline.webhook_calls)
    pipeline.annotate(tasks[key]["id"], [rectangle(0, 0, 50, 50, "Dog", (400, 400))])
    assert pipeline.wait_for_webhooks(calls + 1)[-1].body == {"action": "re-exported", "job": job}
    assert coco_boxes(json.loads(pipeline.exports(job)["coco.json"]))[key] == [pytest.approx([0, 0, 200, 200])]


def test_status_shows_each_job_with_its_tasks_annotated_skipped_and_left(pipeline: Pipeline) -> None:
    job, tasks = new_job(
        pipeline, {"images/status/a.png": (64, 64), "images/status/b.png": (64, 64), "images/status/c.png": (64, 64)}
    )
    pipeline.annotate(tasks["images/status/a.png"]["id"], [rectangle(1, 1, 5, 5, "Dog", (64, 64))])
    pipeline.annotate(tasks["images/status/b.png"]["id"], [], cancelled=True)
    stack = pipeline.stack_info()
    backend = build(pipeline.settings, stack.backend_resources, pipeline.client_for, REGION)
    lines = status_command(stack, pipeline.ledger, backend, pipeline.client("sqs"), 20)
    assert lines[0].split() == ["job", "state", "images", "annotated", "skipped", "left"]
    (row,) = [line for line in lines if line.startswith(job)]
    assert row.split() == [job, "InProgress", "3", "1", "1", "1"]


def test_predictions_accepted_in_bulk_end_the_job_by_their_one_webhook_but_label_nothing(pipeline: Pipeline) -> None:
    sizes = {"images/bulk/a.png": (200, 100), "images/bulk/b.png": (120, 160)}
    job, tasks = new_job(pipeline, sizes)
    ids = [tasks[key]["id"] for key in sizes]
    # A model's boxes, imported as predictions, then the data manager's "Create Annotations From Predictions".
    pipeline.api.request(
        "POST",
        f"/api/projects/{pipeline.project_id}/import/predictions",
        body=[
            {"task": tasks[key]["id"], "result": [rectangle(10, 10, 50, 50, "Cat", size)], "model_version": "m1"}
            for key, size in sizes.items()
        ],
    )
    calls = len(pipeline.webhook_calls)
    pipeline.api.request(
        "POST",
        "/api/dm/actions",
        query={"id": "predictions_to_annotations", "project": pipeline.project_id},
        body={"selectedItems": {"all": False, "included": ids}},
    )
    (answer,) = pipeline.wait_for_webhooks(calls + 1)[calls:]
    assert (answer.status, answer.body) == (200, {"action": "exported", "job": job})
    # Answers nobody looked at (no lead_time, made from a prediction) are not labels: the images wait for people.
    exports = pipeline.exports(job)
    assert coco_boxes(json.loads(exports["coco.json"])) == {}
    summary = json.loads(exports["summary.json"])
    assert sorted(failed["reason"] for failed in summary["failedObjects"]) == [UNREVIEWED_REASON] * 2


def test_drafts_and_predictions_are_not_exported(pipeline: Pipeline) -> None:
    key = "images/drafts/a.png"
    job, tasks = new_job(pipeline, {key: (100, 50)})
    task_id = tasks[key]["id"]
    pipeline.api.request(
        "POST",
        "/api/predictions",
        body={"task": task_id, "result": [rectangle(0, 0, 90, 90, "Cat", (100, 50))], "model_version": "m1"},
    )
    pipeline.api.request(
        "POST", f"/api/tasks/{task_id}/drafts", body={"result": [rectangle(5, 5, 5, 5, "Cat", (100, 50))]}
    )
    pipeline.annotate(task_id, [rectangle(10, 20, 30, 40, "Dog", (100, 50))])
    coco = json.loads(until(lambda: pipeline.exports(job).get("coco.json")))
    assert coco_boxes(coco)[key] == [pytest.approx([10, 10, 30, 20])]


def test_the_cli_exports_reviews_and_relabels_label_studio_jobs(pipeline: Pipeline, tmp_path: Path) -> None:
    key = "images/cli/a.png"
    job, tasks = new_job(pipeline, {key: (200, 100), "images/cli/unreadable.png": (10, 10)})
    pipeline.annotate(tasks[key]["id"], [rectangle(10, 10, 50, 50, "Cat", (200, 100))])
    pipeline.annotate(tasks["images/cli/unreadable.png"]["id"], [], cancelled=True)
    until(lambda: pipeline.exports(job).get("summary.json"))
    backend = build(
        pipeline.settings, json.loads(pipeline.environment[Env.BACKEND_RESOURCES]), pipeline.client_for, REGION
    )
    labels = list(pipeline.settings.labels)
    s3 = pipeline.client("s3")

    from_job = export_command(ResultsSource(job, backend, pipeline.settings), "coco", tmp_path / "job", labels, s3)
    # The same answers from files: the pipeline's raw tasks and Label Studio's own JSON export of the project.
    raw = tmp_path / "tasks.jsonl"
    raw.write_bytes(s3.get_object(Bucket=pipeline.bucket, Key=f"output/{job}/tasks.jsonl")["Body"].read())
    own = tmp_path / "export.json"
    own.write_bytes(
        requests.get(
            f"{pipeline.label_studio.url}/api/projects/{pipeline.project_id}/export",
            params={"exportType": "JSON"},
            headers=pipeline.label_studio.headers,
            timeout=60,
        ).content
    )
    from_raw = export_command(ResultsSource(str(raw), None, pipeline.settings), "coco", tmp_path / "raw", labels, s3)
    from_own = export_command(ResultsSource(str(own), None, pipeline.settings), "coco", tmp_path / "own", labels, s3)
    assert from_job["boxesPerLabel"] == from_raw["boxesPerLabel"] == {"Cat": 1}
    assert from_own["boxesPerLabel"]["Cat"] >= 1 and from_own["images"] > from_job["images"]  # the whole project
    gallery = review_command(ResultsSource(job, backend, pipeline.settings), "s3", tmp_path / "gallery", labels, s3)
    assert "a.png" in gallery.read_text()

    assert relabel_command(s3, pipeline.ledger, pipeline.bucket, job) == [
        f"requeued 1 image(s) of {job}; new labeling jobs follow within the batching window"
    ]
    statuses = {ref.key: status for ref, status in job_images(s3, pipeline.bucket, pipeline.ledger, job).items()}
    assert statuses["images/cli/unreadable.png"] == "RELABEL_REQUESTED"
    # The copy's S3 event. In AWS it names the new version, which a new job takes; moto's events carry no
    # versionId (the launcher then keys by ETag, which a copy keeps), so here it is a late duplicate of the
    # old upload: handled, and no second task for that image version.
    assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    again = [t for t in pipeline.tasks() if t["data"]["image"].endswith("cli/unreadable.png")]
    assert len(again) == 1 and pipeline.ledger.job_status(job) == "COMPLETED"


def test_an_image_answered_with_no_box_is_exported_as_an_empty_image_of_its_size(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    key = "images/empty/road.png"
    job, tasks = new_job(pipeline, {key: (320, 200)})
    pipeline.annotate(tasks[key]["id"], [])  # submitted: nothing to box here
    exports = until(lambda: pipeline.exports(job).get("yolo.tar.gz") and pipeline.exports(job))
    (image,) = json.loads(exports["coco.json"])["images"]
    assert (image["width"], image["height"]) == (320, 200)  # read from the PNG's header in S3
    summary = json.loads(exports["summary.json"])
    assert summary["imagesWithoutBoxes"] == 1 and summary["imagesWithoutSize"] == []
    (tmp_path / "yolo.tar.gz").write_bytes(exports["yolo.tar.gz"])
    extract_archive(tmp_path / "yolo.tar.gz", tmp_path / "yolo")
    (label_file,) = (tmp_path / "yolo" / "labels").glob("*.txt")
    assert label_file.read_text() == ""  # a negative example, as YOLO reads one
