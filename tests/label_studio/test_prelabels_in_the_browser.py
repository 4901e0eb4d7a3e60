"""Pre-labels as a worker meets them in Label Studio's own editor (headless Chromium, the real server).

The pre-label function (its real handler) runs an ONNX detector built here over an uploaded picture and writes the
proposals file; the launcher reads it and the task arrives with the proposals as its prediction. The worker opens
the task: the editor shows the three proposals as regions of a new annotation. The worker keeps one as it is,
drags one onto the object it missed by 30 px, deletes a false one, picks a label and draws the object the detector
did not see, and submits. The webhook ends the job, and the job's end writes the exports and the pre-label report:
the report counts each of the four by the regions' `origin` the editor saved, and the COCO export holds the kept
box where the detector put it (to half a pixel) and the moved and drawn ones where the mouse left them (to 2 px).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from labeling_pipeline.backends.label_studio.predictions import region_id
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.images import ImageRef
from labeling_pipeline.names import PREDICTIONS_FILE, PRELABEL_REPORT_FILE
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel import handler as prelabel_handler
from labeling_pipeline.prelabel.proposals import decode, proposal_key
from labeling_pipeline.s3_events import NotAnS3Event, parse_message
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import LabelingEditor, labeling_editor
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import choose_password, password_link
from tests.label_studio.pipeline_world import FakeContext, Pipeline, label_studio_pipeline, until
from tests.lambda_code.prelabel.test_detector import constant_model
from tests.support import lambda_sqs_record

WIDTH, HEIGHT = 640, 480
INPUT_SIZE = 640  # the detector's fixed square input: the picture is letterboxed into it, padded above and below
MODEL_BUCKET, MODEL_KEY = "models-123456789012", "browser-test/detector.onnx"
VERSION = "test-detector-v1"
PRELABEL = {
    "modelUri": f"s3://{MODEL_BUCKET}/{MODEL_KEY}",
    "outputLayout": "yolo-nms",
    "classMap": {"0": "Dog", "1": "Cat"},
    "modelVersion": VERSION,
    "holdOutPercent": 0,
}
WORKER_EMAIL, WORKER_PASSWORD = "prelabel-browser-worker@example.com", "Harbour-quince-58"

Corners = tuple[float, float, float, float]  # left, top, right, bottom, in image pixels

# The picture's three animals, each a patch of its own colour on grey.
DOG_A: Corners = (60, 50, 220, 190)  # red; proposed exactly
CAT_B: Corners = (300, 60, 460, 180)  # green; proposed 30 px right of it and 24 px below
CAT_D: Corners = (80, 290, 250, 430)  # blue; not proposed
COLOURS = {DOG_A: (220, 40, 40), CAT_B: (40, 200, 70), CAT_D: (40, 80, 230)}
B_OFFSET = (30.0, 24.0)
# What the detector proposes, best score first (its file's order, and the prediction's regions' order). B's
# proposal overlaps the green cat with an IoU of 0.48, under the report's 0.5 for pairing by geometry alone: that
# the report calls it moved, not deleted and added, comes from the region's origin the editor saved.
PROPOSED: list[tuple[str, Corners, float]] = [
    ("Dog", DOG_A, 0.91),
    ("Cat", (CAT_B[0] + B_OFFSET[0], CAT_B[1] + B_OFFSET[1], CAT_B[2] + B_OFFSET[0], CAT_B[3] + B_OFFSET[1]), 0.83),
    ("Dog", (420, 300, 580, 440), 0.47),  # on bare grey: false
]
A, B, C = range(3)


def picture() -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90))
    draw = ImageDraw.Draw(image)
    for (left, top, right, bottom), colour in COLOURS.items():
        draw.rectangle((left, top, right - 1, bottom - 1), fill=colour)
    body = io.BytesIO()
    image.save(body, format="PNG")
    return body.getvalue()


def detector() -> bytes:
    """An Ultralytics export with nms=True ("yolo-nms"): rows of x1, y1, x2, y2, score, class in input pixels,
    zero rows after the last detection. Whatever the input, it finds PROPOSED."""
    pad_y = (INPUT_SIZE - HEIGHT) / 2  # the picture is as wide as the input: scale 1, padded only in height
    rows = np.zeros((1, 8, 6), dtype=np.float32)
    class_ids = {"Dog": 0, "Cat": 1}
    for row, (label, (left, top, right, bottom), score) in enumerate(PROPOSED):
        rows[0, row] = (left, top + pad_y, right, bottom + pad_y, score, class_ids[label])
    return constant_model({"output0": rows}, input_shape=(1, 3, INPUT_SIZE, INPUT_SIZE))


def centre(corners: Corners) -> tuple[float, float]:
    return (corners[0] + corners[2]) / 2, (corners[1] + corners[3]) / 2


def xywh(corners: Corners) -> list[float]:
    return [corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1]]


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Prelabels in the browser", prelabel=PRELABEL) as world:
        s3 = world.client("s3")
        # moto's server lives for the session; another module may have made the bucket.
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=detector())
        yield world


def prelabel_stage(
    pipeline: Pipeline, records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The pre-label function on the upload queue's records, as deployed between that queue and the launcher;
    the records it forwarded to its launch queue, as the launcher's event source hands them over."""
    sqs = pipeline.client("sqs")
    launch_queue = sqs.create_queue(QueueName="prelabels-in-the-browser-launches")["QueueUrl"]
    launch_arn = sqs.get_queue_attributes(QueueUrl=launch_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv(Env.LAUNCH_QUEUE_URL, launch_queue)
    monkeypatch.setattr(prelabel_handler, "_environment", None)
    assert prelabel_handler.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}
    forwarded: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=launch_queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return forwarded
        for message in messages:
            forwarded.append(lambda_sqs_record(message, launch_arn))
            sqs.delete_message(QueueUrl=launch_queue, ReceiptHandle=message["ReceiptHandle"])


def uploaded_images(records: list[dict[str, Any]]) -> list[ImageRef]:
    """The images the upload events name, as the pipeline names them (moto's events carry no versionId, so
    the ETag stands for the version)."""
    found = []
    for record in records:
        with contextlib.suppress(NotAnS3Event):  # S3's test event
            found += [uploaded.image_ref() for uploaded in parse_message(record["messageId"], record["body"]).objects]
    return found


def by_id(result: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {region["id"]: region for region in result}


def move_region(editor: LabelingEditor, region: str, grab: tuple[float, float], by: tuple[float, float]) -> Corners:
    """Drag the region from `grab` by `by` (image pixels); the mouse's move as it really was (whole screen
    pixels), once the editor has taken it."""
    before = by_id(editor.result())[region]["value"]
    start, end = editor.drag(grab, (grab[0] + by[0], grab[1] + by[1]))
    editor.page.wait_for_function(
        "([id, x]) => window.Htx.annotationStore.selected.serializeAnnotation()"
        ".some(r => r.id === id && r.value.x !== x)",
        arg=[region, before["x"]],
    )
    return start[0], start[1], end[0], end[1]


def test_a_worker_keeps_moves_deletes_and_adds_proposals_and_the_report_says_so(
    chromium: str, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3 = pipeline.client("s3")
    key = "images/yard/three animals.png"
    pipeline.upload(key, picture())
    uploads = pipeline.receive_uploads(1)
    (image,) = uploaded_images(uploads)

    # The pre-label stage writes the proposals file the deployment would write, from the model in S3.
    forwarded = prelabel_stage(pipeline, uploads, monkeypatch)
    stored = s3.get_object(Bucket=pipeline.bucket, Key=proposal_key(VERSION, image))["Body"].read()
    proposal = decode(stored)
    assert (proposal.image, proposal.image_width, proposal.image_height) == (image, WIDTH, HEIGHT)
    assert [(box.label, box.confidence) for box in proposal.boxes] == [
        (label, pytest.approx(score)) for label, _, score in PROPOSED
    ]
    for box, (_, corners, _) in zip(proposal.boxes, PROPOSED, strict=True):
        assert [box.left, box.top, box.width, box.height] == pytest.approx(xywh(corners), abs=1e-3)

    assert pipeline.launch(forwarded) == {"batchItemFailures": []}
    (task,) = pipeline.tasks()
    job = task["data"]["job"]
    (prediction,) = task["predictions"]
    ids = [region_id(VERSION, image, index) for index in range(len(PROPOSED))]
    assert [region["id"] for region in prediction["result"]] == ids

    choose_password(password_link(LabelStudioWorkers(pipeline.api).add(WORKER_EMAIL)), WORKER_PASSWORD)
    with labeling_editor(
        pipeline.label_studio.url, WORKER_EMAIL, WORKER_PASSWORD, pipeline.project_id, screenshot_dir=tmp_path
    ) as editor:
        # The editor opens the task with its prediction copied into a new annotation, each region marked as the
        # model's (lsf-sdk.js: addAnnotationFromPrediction when the project shows predictions; AppStore.js gives
        # each of the prediction's regions origin "prediction").
        shown = by_id(editor.wait_for_regions(len(PROPOSED)))
        assert list(shown) == ids
        assert {region["origin"] for region in shown.values()} == {"prediction"}
        editor.screenshot("proposals-shown")
        opened_at = time.monotonic()

        # B: grabbed in its middle and dragged onto the green cat.
        grab = centre(PROPOSED[B][1])
        x0, y0, x1, y1 = move_region(editor, ids[B], grab, (-B_OFFSET[0], -B_OFFSET[1]))
        moved_by = (x1 - x0, y1 - y0)
        # C: clicked (selected) and deleted with Backspace.
        editor.click(centre(PROPOSED[C][1]))
        editor.page.wait_for_function(
            "id => window.Htx.annotationStore.selected.selectedRegions.map(r => r.cleanId).join() === id",
            arg=ids[C],
        )
        editor.press("Backspace")
        editor.wait_for_regions(2)
        # D: nothing selected (a label chosen with a region selected would relabel it), Cat chosen, box drawn.
        editor.press("Escape")
        assert editor.selected_region_ids() == []
        editor.choose_label("Cat")
        (dx0, dy0), (dx1, dy1) = editor.drag((CAT_D[0], CAT_D[1]), (CAT_D[2], CAT_D[3]))
        drawn: Corners = (min(dx0, dx1), min(dy0, dy1), max(dx0, dx1), max(dy0, dy1))
        editing = editor.wait_for_regions(3)
        editor.screenshot("proposals-edited")
        assert [(region["id"] in ids, region["origin"]) for region in editing] == [
            (True, "prediction"),
            (True, "prediction-changed"),
            (False, "manual"),
        ]
        assert by_id(editing)[ids[A]]["value"] == shown[ids[A]]["value"]

        spent = time.monotonic() - opened_at
        saved = editor.submit()
        editor.screenshot("proposals-submitted")

    # What Label Studio stored: the worker's answer, from the prediction, with the seconds spent and the origins.
    assert saved["parent_prediction"] == prediction["id"]
    assert spent <= saved["lead_time"] < spent + 120
    assert [region["origin"] for region in saved["result"]] == ["prediction", "prediction-changed", "manual"]
    assert [region["value"]["rectanglelabels"] for region in saved["result"]] == [["Dog"], ["Cat"], ["Cat"]]

    # summary.json is the job end's last write.
    exports = until(lambda: pipeline.exports(job).get("summary.json") and pipeline.exports(job), timeout=30)
    assert exports, f"the job {job} did not end; webhook calls: {pipeline.webhook_calls}"

    # The COCO export: the kept box where the detector put it, the moved and drawn ones where the mouse left them.
    proposed_b = PROPOSED[B][1]
    expected_b = (
        proposed_b[0] + moved_by[0],
        proposed_b[1] + moved_by[1],
        proposed_b[2] + moved_by[0],
        proposed_b[3] + moved_by[1],
    )
    coco = json.loads(exports["coco.json"])
    category = {entry["id"]: entry["name"] for entry in coco["categories"]}
    (coco_image,) = coco["images"]
    assert (coco_image["source_ref"], coco_image["width"], coco_image["height"]) == (image.source_ref, WIDTH, HEIGHT)
    kept, moved, added = coco["annotations"]
    assert (category[kept["category_id"]], kept["bbox"]) == ("Dog", pytest.approx(xywh(DOG_A), abs=0.5))
    assert (category[moved["category_id"]], moved["bbox"]) == ("Cat", pytest.approx(xywh(expected_b), abs=2))
    assert (category[added["category_id"]], added["bbox"]) == ("Cat", pytest.approx(xywh(drawn), abs=2))
    # The drag and the drawing were meant for the animals themselves: within the rounding to screen pixels.
    assert moved["bbox"] == pytest.approx(xywh(CAT_B), abs=3)
    assert added["bbox"] == pytest.approx(xywh(CAT_D), abs=3)

    # The report, box by box: which proposal became which final box, and what the worker did with each.
    report = json.loads(exports[PRELABEL_REPORT_FILE])
    assert (report["job"], report["modelVersion"]) == (job, VERSION)
    (entry,) = report["perImage"]
    assert entry["image"] == image.source_ref
    assert [(box["label"], box["bbox"], box["score"]) for box in entry["proposals"]] == [
        (label, pytest.approx(xywh(corners), abs=0.01), pytest.approx(score)) for label, corners, score in PROPOSED
    ]
    assert [(box["label"], box["origin"]) for box in entry["finals"]] == [
        ("Dog", "prediction"),
        ("Cat", "prediction-changed"),
        ("Cat", "manual"),
    ]
    assert [box["bbox"] for box in entry["finals"]] == [
        pytest.approx(xywh(DOG_A), abs=0.5),
        pytest.approx(xywh(expected_b), abs=2),
        pytest.approx(xywh(drawn), abs=2),
    ]
    counts = {"proposed": 3, "accepted": 1, "moved": 1, "relabeled": 0, "deleted": 1, "added": 1}
    assert entry["compared"] == counts
    assert report["boxes"] == {**counts, "final": 3}
    assert report["images"] == {"images": 1, "proposed": 1, "heldOut": 0, "withoutProposals": 0, "unanswered": 0}
    assert report["shares"] == {"accepted": 0.3333, "moved": 0.3333, "relabeled": 0.0, "deleted": 0.3333}
    # The editor's lead_time, read into the image's seconds: positive, and no held-out image to compare it with.
    seconds = report["secondsPerImage"]
    assert seconds["withProposals"] == pytest.approx(saved["lead_time"], abs=0.051) and seconds["withProposals"] > 0
    assert (seconds["timedWith"], seconds["timedWithout"], seconds["withoutProposals"]) == (1, 0, None)
    assert entry["seconds"] == seconds["withProposals"]

    # Beside coco.json, the proposals as a COCO results file, for COCOeval.
    results = json.loads(exports[PREDICTIONS_FILE])
    assert [(category[r["category_id"]], r["bbox"], r["score"]) for r in results] == [
        (label, pytest.approx(xywh(corners), abs=0.01), pytest.approx(score)) for label, corners, score in PROPOSED
    ]
    summary = json.loads(exports["summary.json"])
    assert summary["prelabel"]["boxes"] == report["boxes"]
