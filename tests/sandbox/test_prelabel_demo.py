"""`make demo DEMO_ARGS="--prelabel"` on both backends, headless: the stand-in detector between the upload and the
launcher, the simulated workers' corrections of its proposals, the job's pre-label report and the gallery.

One run a backend (about 35 s for Ground Truth, 50 s for Label Studio), many asserts on what each leaves behind:
the report exists under the stand-in's model version and shows every kind of correction, each upload has its
proposals file, the held-out images got none (and, on Ground Truth, went to the plain job beside the adjustment
job), the gallery draws the proposals dashed, and every line, log line, note and summary says stand-in. The
graph itself is checked first, without a demo: it computes its boxes from the pixels."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import botocore.session
import onnx
import pytest
from PIL import Image

from labeling_pipeline.backends.label_studio.results import PrelabelMark
from labeling_pipeline.prelabel.predictors import OnnxPredictor
from labeling_pipeline.prelabel.settings import PrelabelSettings
from sandbox import stand_in_detector
from sandbox.demo_steps import DATASET, PREFIX, SAMPLE_IMAGES
from sandbox.fake_ground_truth import ModelValidator
from sandbox.label_studio_server import INSTALL_HINT, is_installed
from sandbox.prelabel_demo import StandInDetector
from sandbox.simulated_workers import SIMULATED_NOTE, correct_proposals
from tests.conftest import missing
from tests.sandbox.demo_support import DEMO_LIMIT_SECONDS, assert_gallery_shows, start_demo

STAND_IN_PREFIX = StandInDetector.line_prefix(PREFIX)
KEYS = sorted(f"images/{DATASET}/{target}" for target in SAMPLE_IMAGES.values())
CORRECTIONS = ("accepted", "moved", "relabeled", "deleted")


# --- the stand-in, without a demo -------------------------------------------------------------------------------


def _predictor() -> OnnxPredictor:
    settings = PrelabelSettings.model_validate(stand_in_detector.prelabel_setting("s3://models-example/x.onnx", 20))
    return OnnxPredictor.from_model(stand_in_detector.build_model(), settings)


def _png(size: tuple[int, int], patches: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]]) -> bytes:
    image = Image.new("RGB", size, (128, 128, 128))
    for box, colour in patches:
        image.paste(colour, box)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_stand_in_boxes_colour_blobs_from_the_pixels() -> None:
    red, blue = (200, 40, 30), (30, 50, 210)
    picture = _png((640, 480), [((64, 48, 256, 240), red), ((384, 288, 576, 432), blue)])
    prediction = _predictor().predict(picture)
    found = {box.label: box for box in prediction.boxes}
    assert set(found) == {"Cat", "Dog"}  # warm -> Cat, cool -> Dog (CLASS_MAP)
    # Cells of 16 input pixels, 32 image pixels here (640 letterboxed to 320): each box within a cell of its patch.
    for label, (left, top, right, bottom) in (("Cat", (64, 48, 256, 240)), ("Dog", (384, 288, 576, 432))):
        box = found[label]
        assert box.left == pytest.approx(left, abs=32) and box.top == pytest.approx(top, abs=32)
        assert box.left + box.width == pytest.approx(right, abs=32)
        assert box.top + box.height == pytest.approx(bottom, abs=32)
        assert box.confidence is not None and box.confidence > 0.5
    # Grey has no colour to box; a speck scores below minScore.
    assert _predictor().predict(_png((640, 480), [])).boxes == ()
    speckled = _png((640, 480), [((0, 0, 40, 40), red), ((600, 440, 640, 480), red)])
    assert _predictor().predict(speckled).boxes == ()


def test_the_model_and_its_version_say_stand_in() -> None:
    model = onnx.load_from_string(stand_in_detector.build_model())
    assert "stand-in" in stand_in_detector.MODEL_VERSION
    assert "stand-in" in model.producer_name and "stand-in" in model.graph.name
    assert {prop.key: prop.value for prop in model.metadata_props}["stand_in"] == "true"
    assert "stand-in detector" in stand_in_detector.STAND_IN_NOTE
    assert "not a trained model" in stand_in_detector.STAND_IN_NOTE


def test_corrections_are_the_same_on_every_run_and_stay_inside_the_image() -> None:
    proposals = [("Cat", 10.0, 20.0, 200.0, 100.0), ("Dog", 300.0, 200.0, 150.0, 150.0), ("Cat", 0.0, 0.0, 5.0, 5.0)]
    first = correct_proposals("s3://bucket/images/a.png", proposals, (451, 300), ["Dog", "Cat"])
    assert first == correct_proposals("s3://bucket/images/a.png", proposals, (451, 300), ["Dog", "Cat"])
    assert first.proposals == len(proposals) and first.boxes
    for box in first.boxes:
        assert 0 <= box.left < box.left + box.width <= 451 and 0 <= box.top < box.top + box.height <= 300


# --- the demo runs ----------------------------------------------------------------------------------------------


def _run(out: Path, *options: str) -> dict[str, Any]:
    demo = start_demo(out, "--prelabel", *options)
    output, _ = demo.communicate(timeout=DEMO_LIMIT_SECONDS * 2)
    assert demo.returncode == 0, output
    summary = json.loads((out / "demo-summary.json").read_text())
    (job,) = summary["jobs"]
    report = json.loads(Path(job["prelabel_report"]).read_text())
    return {"out": out, "output": output, "summary": summary, "job": job, "report": report}


@pytest.fixture(scope="module")
def gt_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("prelabel-gt") / "demo-output")


@pytest.fixture(scope="module")
def ls_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not is_installed():
        missing(INSTALL_HINT)
    return _run(tmp_path_factory.mktemp("prelabel-ls") / "demo-output", "--backend", "label-studio")


@pytest.fixture(params=["gt", "ls"])
def either(request: pytest.FixtureRequest) -> dict[str, Any]:
    run: dict[str, Any] = request.getfixturevalue(f"{request.param}_run")
    return run


def test_it_runs_within_the_limit(either: dict[str, Any]) -> None:
    assert either["summary"]["seconds"] < DEMO_LIMIT_SECONDS
    assert "nothing is left running" in either["output"]


def test_every_line_on_screen_says_stand_in(either: dict[str, Any]) -> None:
    lines = either["output"].splitlines()
    assert lines and all(line.startswith(STAND_IN_PREFIX) for line in lines), [
        line for line in lines if not line.startswith(STAND_IN_PREFIX)
    ]
    assert "stand-in detector" in STAND_IN_PREFIX and "simulated" in STAND_IN_PREFIX
    assert "Pre-labels come from a STAND-IN detector, not a trained model" in either["output"]
    assert f"-> s3://gt-labeling-demo-models/stand-in/{stand_in_detector.MODEL_VERSION}.onnx" in either["output"]
    assert "pre-label Lambda with the STAND-IN detector" in either["output"]


def test_every_lambda_log_line_says_stand_in(either: dict[str, Any]) -> None:
    logs = sorted((either["out"] / "logs").glob("gt-labeling-pipeline-*.log"))
    assert any("PrelabelFunction" in log.name for log in logs)
    for log in logs:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert records and all(
            record["sandbox"] == f"{SIMULATED_NOTE}; {stand_in_detector.STAND_IN_NOTE}" for record in records
        ), log
    prelabel_log = next(log for log in logs if "PrelabelFunction" in log.name).read_text()
    assert '"ImagesPrelabeled"' in prelabel_log and '"ImagesHeldOut"' in prelabel_log


def test_the_summary_says_stand_in_and_where_the_report_is(either: dict[str, Any]) -> None:
    prelabel, job = either["summary"]["prelabel"], either["job"]
    assert prelabel["detector"] == "stand-in" and prelabel["note"] == stand_in_detector.STAND_IN_NOTE
    assert prelabel["model_version"] == stand_in_detector.MODEL_VERSION
    assert prelabel["reports"] == {job["name"]: job["prelabel_report"]}
    assert Path(prelabel["model_file"]).read_bytes() == stand_in_detector.build_model()
    assert Path(job["predictions"]).exists() and job["predictions"] in job["exports"]


def test_each_upload_has_its_proposals_file_and_the_held_out_ones_have_none(either: dict[str, Any]) -> None:
    images = either["summary"]["prelabel"]["images"]
    assert sorted(images) == KEYS
    held_out = [key for key, entry in images.items() if entry["held_out"]]
    proposed = [key for key, entry in images.items() if entry["boxes"]]
    # The hold-out is fixed by the pictures' bytes (HOLD_OUT_PERCENT's comment): some of each kind.
    assert held_out and proposed and not set(held_out) & set(proposed)
    for key, entry in images.items():
        written = json.loads(Path(entry["file"]).read_text())
        assert written["modelVersion"] == stand_in_detector.MODEL_VERSION
        assert written["image"]["key"] == key and written["heldOut"] == entry["held_out"]
        assert len(written["boxes"]) == len(entry["boxes"])
        if entry["held_out"]:
            assert written["boxes"] == []
    for key in held_out:
        assert f"{key.removeprefix(f'images/{DATASET}/')}: held out: no proposals on purpose" in either["output"]


def test_the_report_is_the_stand_ins_and_shows_every_kind_of_correction(either: dict[str, Any]) -> None:
    report, images = either["report"], either["summary"]["prelabel"]["images"]
    assert report["modelVersion"] == stand_in_detector.MODEL_VERSION and report["job"] == either["job"]["name"]
    counts = report["images"]
    assert counts["images"] == len(SAMPLE_IMAGES) and counts["unanswered"] == 0
    assert counts["heldOut"] == sum(entry["held_out"] for entry in images.values())
    assert counts["proposed"] == len(SAMPLE_IMAGES) - counts["heldOut"]
    boxes = report["boxes"]
    assert boxes["proposed"] == sum(len(entry["boxes"]) for entry in images.values())
    assert all(boxes[kind] >= 1 for kind in (*CORRECTIONS, "added")), boxes
    by_image = {entry["image"].split(f"/{DATASET}/", 1)[1]: entry for entry in report["perImage"]}
    for key, entry in images.items():
        name = key.removeprefix(f"images/{DATASET}/")
        assert (by_image[name].get("proposals") is None) == entry["held_out"]
    # Printed as `bbox-labeling report` prints it.
    assert f"bbox-labeling report {either['job']['name']}" in either["output"]
    assert f"job {either['job']['name']}, model {stand_in_detector.MODEL_VERSION}" in either["output"]
    assert f"proposals: {boxes['proposed']}: accepted {boxes['accepted']}" in either["output"]
    # The COCO export holds the final boxes of every image; the report compares those of the proposed ones.
    coco = json.loads(next(Path(p) for p in either["job"]["exports"] if p.endswith("/coco.json")).read_text())
    assert len(coco["annotations"]) == sum(len(entry["finals"]) for entry in report["perImage"])
    assert boxes["final"] == sum(
        len(entry["finals"]) for entry in report["perImage"] if entry.get("proposals") is not None
    )
    predictions = json.loads(Path(either["job"]["predictions"]).read_text())
    assert len(predictions) == boxes["proposed"]
    assert {p["image_id"] for p in predictions} <= {image["id"] for image in coco["images"]}


def test_the_gallery_draws_the_stand_ins_proposals_dashed(either: dict[str, Any], tmp_path: Path) -> None:
    report = either["report"]
    with_proposals = sum(entry.get("proposals") is not None for entry in report["perImage"])
    note = f"{SIMULATED_NOTE.capitalize()}. Dashed boxes: {stand_in_detector.STAND_IN_NOTE}."
    # Two pictures for an image with proposals (proposed, final), one for a held-out image.
    page = assert_gallery_shows(either["job"], note, tmp_path, pictures=len(SAMPLE_IMAGES) + with_proposals)
    assert page.count("stroke-dasharray") == report["boxes"]["proposed"]
    assert page.count("proposed: ") == with_proposals


# --- Ground Truth: the adjustment job beside the plain one ------------------------------------------------------


def test_ground_truth_shows_the_proposals_in_an_adjustment_job_beside_a_plain_one(gt_run: dict[str, Any]) -> None:
    job, images = gt_run["job"], gt_run["summary"]["prelabel"]["images"]
    adjustment, plain = job["parts"]
    assert (adjustment["task"], plain["task"]) == ("AdjustmentBoundingBox", "BoundingBox")
    assert adjustment["name"] == job["name"] and job["accepted"]
    model = botocore.session.get_session().get_service_model("sagemaker")
    for part in (adjustment, plain):
        request = json.loads(Path(part["job_definition"]).read_text())
        assert ModelValidator(model).validate("CreateLabelingJob", request) == []
        assert request["LabelingJobName"] == part["name"]

    def keys(manifest: str) -> set[str]:
        return {json.loads(line)["source-ref"].split("/", 3)[3] for line in Path(manifest).read_text().splitlines()}

    # Images with a box to show are adjusted; held-out ones and those the stand-in found nothing in are drawn.
    assert keys(adjustment["manifest"]) == {key for key, entry in images.items() if entry["boxes"]}
    assert keys(plain["manifest"]) == {key for key, entry in images.items() if not entry["boxes"]}
    statuses = [
        json.loads(line)["labels-metadata"]["adjustment-status"]
        for line in Path(adjustment["output_manifest"]).read_text().splitlines()
    ]
    assert "adjusted" in statuses and "unadjusted" in statuses
    assert "a bounding-box ADJUSTMENT job (PRE-AdjustmentBoundingBox)" in gt_run["output"]
    assert "unadjusted (submitted as shown)" in gt_run["output"]


# --- Label Studio: predictions, corrected as the editor submits them -----------------------------------------------


def test_label_studio_tasks_carry_the_proposals_and_the_answers_correct_them(ls_run: dict[str, Any]) -> None:
    images = ls_run["summary"]["prelabel"]["images"]
    tasks = [json.loads(line) for line in Path(ls_run["job"]["tasks"]).read_text().splitlines()]
    assert len(tasks) == len(SAMPLE_IMAGES)
    origins: set[str] = set()
    for task in tasks:
        entry = images[task["data"]["image"].split("/", 3)[3]]
        predictions = [
            p for p in task.get("predictions") or [] if p["model_version"] == stand_in_detector.MODEL_VERSION
        ]
        (annotation,) = task["annotations"]
        if entry["held_out"]:
            assert task["data"]["prelabel"] == PrelabelMark.HELD_OUT and predictions == []
            assert annotation.get("parent_prediction") is None
            continue
        assert task["data"]["prelabel"] == PrelabelMark.PROPOSED
        (prediction,) = predictions
        assert len(prediction["result"]) == len(entry["boxes"])
        # Started from the prediction the labeling stream (the editor's) handed over, with time spent on it.
        assert annotation["parent_prediction"] == prediction["id"] and annotation["lead_time"] > 0
        origins |= {region["origin"] for region in annotation["result"]}
    assert origins == {"prediction", "prediction-changed", "manual"}
    # The stream that opens the editor handed each proposed task's prediction to the annotator.
    shown = {answer["source_ref"].split("/", 3)[3]: answer["proposals"] for answer in ls_run["summary"]["annotations"]}
    assert {key: count is not None for key, count in shown.items()} == {
        key: not entry["held_out"] for key, entry in images.items()
    }
    seconds = ls_run["report"]["secondsPerImage"]
    assert seconds["timedWith"] + seconds["timedWithout"] == len(SAMPLE_IMAGES)
    assert seconds["withProposals"] is not None and seconds["withoutProposals"] is not None
