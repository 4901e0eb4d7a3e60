"""`make demo`, headless, as a newcomer runs it: first interrupted with Ctrl-C, then again into the same
folder without any cleanup. Everything is asserted on what the demo leaves behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from labeling_pipeline.exports.formats import image_name
from sandbox.demo_steps import DATASET, PREFIX, SAMPLE_IMAGES
from sandbox.fake_ground_truth import ModelValidator
from sandbox.simulated_workers import SIMULATED_NOTE, simulated_boxes
from tests.sandbox.demo_support import (
    DEMO_LIMIT_SECONDS,
    EMULATOR_LINE,
    Boxes,
    alive,
    assert_coco_holds,
    assert_gallery_shows,
    assert_readers_find_every_image,
    assert_yolo_and_voc_hold,
    export_path,
    port_open,
    start_demo,
)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    demo = start_demo(out)
    assert demo.stdout is not None
    lines = []
    emulator = None
    for line in demo.stdout:
        lines.append(line)
        emulator = emulator or EMULATOR_LINE.search(line)
        if "4/6" in line:  # mid-way: uploading, the emulator and the fake endpoint are up
            break
    assert emulator, "".join(lines)
    os.killpg(demo.pid, signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    return {
        "out": out,
        "returncode": demo.returncode,
        "output": "".join(lines) + rest,
        "pid": int(emulator.group(3)),
        "port": int(emulator.group(2)),
    }


@pytest.fixture(scope="module")
def demo_run(interrupted: dict[str, Any]) -> dict[str, Any]:
    out = interrupted["out"]
    started = time.monotonic()
    demo = start_demo(out)
    output, _ = demo.communicate(timeout=DEMO_LIMIT_SECONDS * 2)
    assert demo.returncode == 0, output
    emulator = EMULATOR_LINE.search(output)
    assert emulator
    summary = json.loads((out / "demo-summary.json").read_text())
    return {
        "out": out,
        "output": output,
        "summary": summary,
        "seconds": time.monotonic() - started,
        "pid": int(emulator.group(3)),
        "port": int(emulator.group(2)),
    }


@pytest.fixture(scope="module")
def job(demo_run: dict[str, Any]) -> dict[str, Any]:
    jobs = demo_run["summary"]["jobs"]
    assert len(jobs) == 1
    return dict(jobs[0])


def test_ctrl_c_mid_way_stops_the_emulator(interrupted: dict[str, Any]) -> None:
    assert interrupted["returncode"] == 130, interrupted["output"]
    assert "Interrupted: the emulator is stopped" in interrupted["output"]
    assert not alive(interrupted["pid"])
    assert not port_open(interrupted["port"])


def test_second_run_needs_no_cleanup_and_leaves_nothing_running(demo_run: dict[str, Any]) -> None:
    assert demo_run["seconds"] < DEMO_LIMIT_SECONDS
    assert not alive(demo_run["pid"])
    assert not port_open(demo_run["port"])
    assert "nothing is left running" in demo_run["output"]


def test_every_line_on_screen_says_the_answers_are_simulated(demo_run: dict[str, Any]) -> None:
    lines = demo_run["output"].splitlines()
    assert lines
    assert all(line.startswith(PREFIX) for line in lines), [line for line in lines if not line.startswith(PREFIX)]
    assert "simulated" in PREFIX


def test_every_lambda_log_line_says_so(demo_run: dict[str, Any]) -> None:
    logs = sorted((demo_run["out"] / "logs").glob("gt-labeling-pipeline-*.log"))
    assert len(logs) == 2  # the launcher and the job-events function
    for log in logs:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert any("level" in record for record in records) and any("_aws" in record for record in records)
        # Log lines and the metric (EMF) lines alike.
        assert all(record["sandbox"] == SIMULATED_NOTE for record in records), log
    emulator_lines = (demo_run["out"] / "logs" / "emulator.log").read_text().splitlines()
    assert any("PutObject" in line or "PUT /" in line for line in emulator_lines)
    assert all(line.startswith(PREFIX) for line in emulator_lines)


def test_the_manifest_lists_every_uploaded_image(demo_run: dict[str, Any], job: dict[str, Any]) -> None:
    bucket = demo_run["summary"]["bucket"]
    expected = {f"images/{DATASET}/{target}" for target in SAMPLE_IMAGES.values()}
    assert set(demo_run["summary"]["uploaded"]) == expected
    sources = [json.loads(line)["source-ref"] for line in Path(job["manifest"]).read_text().splitlines()]
    assert sorted(sources) == sorted(f"s3://{bucket}/{key}" for key in expected)
    # The file the upload command must skip was skipped, and said so.
    assert "skipped notes.txt: NotAnImage" in demo_run["output"]


def test_the_job_request_passed_validation(job: dict[str, Any]) -> None:
    assert job["accepted"]
    request = json.loads(Path(job["job_definition"]).read_text())
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateLabelingJob").input_shape)
    assert ModelValidator(model).validate("CreateLabelingJob", request) == []
    assert request["LabelingJobName"] == job["name"]
    assert request["HumanTaskConfig"]["WorkteamArn"].endswith(":workteam/private-crowd/gt-labeling-team")


def _simulated(job: dict[str, Any]) -> Boxes:
    """Per image: the boxes the simulated workers drew, recomputed from their rule."""
    expected: Boxes = {}
    for line in Path(job["output_manifest"]).read_text().splitlines():
        entry = json.loads(line)
        size = entry["labels"]["image_size"][0]
        boxes = simulated_boxes(entry["source-ref"], size["width"], size["height"], 2)
        assert entry["labels"]["annotations"] == boxes
        expected[image_name(entry["source-ref"]).file_name] = [
            [b["class_id"], b["left"], b["top"], b["width"], b["height"]] for b in boxes
        ]
    assert len(expected) == len(SAMPLE_IMAGES)
    return expected


def test_coco_export_holds_the_simulated_boxes(job: dict[str, Any]) -> None:
    assert_coco_holds(job, _simulated(job))


def test_yolo_and_voc_exports_hold_the_simulated_boxes(job: dict[str, Any]) -> None:
    assert_yolo_and_voc_hold(job, _simulated(job))


def test_readers_find_every_demo_image_in_one_call(
    demo_run: dict[str, Any], job: dict[str, Any], tmp_path: Path
) -> None:
    assert_readers_find_every_image(job, demo_run["out"], demo_run["summary"]["bucket"], _simulated(job), tmp_path)


def test_the_gallery_renders_with_the_simulated_notice(job: dict[str, Any], tmp_path: Path) -> None:
    assert_gallery_shows(job, SIMULATED_NOTE.capitalize(), tmp_path)


def test_an_account_without_ground_truth_sees_the_refusal_and_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = tmp_path_factory.mktemp("refused") / "demo-output"
    demo = start_demo(out, "--ground-truth-refuses")
    output, _ = demo.communicate(timeout=DEMO_LIMIT_SECONDS * 2)
    assert demo.returncode == 0, output
    summary = json.loads((out / "demo-summary.json").read_text())
    (reason,) = summary["refusals"]
    assert "AccessDeniedException" in reason and "closed to new AWS customers since 2026-07-30" in reason
    assert f"sent the {len(SAMPLE_IMAGES)} upload messages to the dead-letter queue" in output
    # The status shown while refused, then after the redrive: every upload labeled, the DLQ empty.
    assert output.index(f"messages in the dead-letter queue: {len(SAMPLE_IMAGES)}") < output.index(
        "messages in the dead-letter queue: 0"
    )
    (job,) = summary["jobs"]
    sources = Path(job["manifest"]).read_text().splitlines()
    assert len(sources) == len(SAMPLE_IMAGES)
    coco = json.loads(export_path(job, "coco.json").read_text())
    assert len(coco["images"]) == len(SAMPLE_IMAGES)
