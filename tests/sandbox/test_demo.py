"""`make demo`, headless, as a newcomer runs it: first interrupted with Ctrl-C, then again into the same
folder without any cleanup. Everything is asserted on what the demo leaves behind."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import botocore.session
import pytest
from botocore.validate import validate_parameters

from labeling_pipeline.exports.formats import IMAGE_FOLDERS, image_name
from sandbox.demo import DATASET, PREFIX, SAMPLE_IMAGES
from sandbox.fake_ground_truth import ModelValidator
from sandbox.simulated_workers import SIMULATED_NOTE, simulated_boxes
from tests.cli.test_review_gallery import screenshot
from tests.support import extract_archive

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_LINE = re.compile(r"Emulator \(moto server\) on (http://127\.0\.0\.1:(\d+)), pid (\d+)")
# The limit for the whole demo after `make setup`.
DEMO_LIMIT_SECONDS = 180


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _demo(out: Path, *options: str) -> subprocess.Popen[str]:
    # A newcomer's shell may name a profile that does not exist here: the demo must ignore it, as it
    # ignores any real credentials.
    environment = {**os.environ, "AWS_PROFILE": "only-on-a-laptop", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"}
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.demo", "--no-browser", "--out", str(out), *options],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, so the test can send Ctrl-C to it as a terminal would.
        start_new_session=True,
        # A shell runs background commands with SIGINT ignored, and Python then never turns Ctrl-C into
        # KeyboardInterrupt; a terminal starts the demo with the default, as this does.
        preexec_fn=_default_interrupt,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    demo = _demo(out)
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
    demo = _demo(out)
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
    assert not _alive(interrupted["pid"])
    assert not _port_open(interrupted["port"])


def test_second_run_needs_no_cleanup_and_leaves_nothing_running(demo_run: dict[str, Any]) -> None:
    assert demo_run["seconds"] < DEMO_LIMIT_SECONDS
    assert not _alive(demo_run["pid"])
    assert not _port_open(demo_run["port"])
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


def _simulated(job: dict[str, Any]) -> dict[str, list[list[int]]]:
    """Per image: the boxes the simulated workers drew, recomputed from their rule."""
    expected = {}
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


def _export(job: dict[str, Any], name: str) -> Path:
    return next(Path(path) for path in job["exports"] if path.endswith(name))


def test_coco_export_holds_the_simulated_boxes(job: dict[str, Any]) -> None:
    coco = json.loads(_export(job, "coco.json").read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    found: dict[str, list[list[int]]] = {}
    for annotation in coco["annotations"]:
        left, top, width, height = annotation["bbox"]
        found.setdefault(names[annotation["image_id"]], []).append(
            [annotation["category_id"] - 1, left, top, width, height]
        )
    assert found == _simulated(job)


def _members(archive: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                yield member.name, handle.read()


def test_yolo_and_voc_exports_hold_the_simulated_boxes(job: dict[str, Any]) -> None:
    simulated = _simulated(job)
    yolo = {name: body.decode() for name, body in _members(_export(job, "yolo.tar.gz")) if name.startswith("labels/")}
    # Flat: one labels/<id>.txt per image, the id being the image's file name in the export without its suffix.
    assert {name.removeprefix("labels/").removesuffix(".txt") for name in yolo} == {
        file_name.rsplit(".", 1)[0] for file_name in simulated
    }
    for file_name, boxes in simulated.items():
        rows = yolo["labels/" + file_name.rsplit(".", 1)[0] + ".txt"].splitlines()
        assert sorted(int(row.split()[0]) for row in rows) == sorted(box[0] for box in boxes)
    voc = dict(_members(_export(job, "voc.tar.gz")))
    for file_name, boxes in simulated.items():
        tree = ElementTree.parse(io.BytesIO(voc["Annotations/" + file_name.rsplit(".", 1)[0] + ".xml"]))
        corners = sorted(
            [int(float(box.findtext(tag) or "nan")) for tag in ("xmin", "ymin", "xmax", "ymax")]
            for box in tree.iter("bndbox")
        )
        # Pascal VOC's 1-based pixel indices: xmin = left + 1, xmax = left + width.
        assert corners == sorted(
            [left + 1, top + 1, left + width, top + height] for _, left, top, width, height in boxes
        )


def test_readers_find_every_demo_image_in_one_call(
    demo_run: dict[str, Any], job: dict[str, Any], tmp_path: Path
) -> None:
    """supervision loads the demo's YOLO and VOC archives, with the sample pictures placed under the names the
    exports give them (what `gt-labeling export --with-images` does), and finds all seven with their boxes."""
    import supervision as sv

    simulated = _simulated(job)
    for fmt, folder in IMAGE_FOLDERS.items():
        extract_archive(_export(job, f"{fmt}.tar.gz"), tmp_path / fmt)
        (tmp_path / fmt / folder).mkdir()
        for target in SAMPLE_IMAGES.values():
            key = f"images/{DATASET}/{target}"
            name = image_name(f"s3://{demo_run['summary']['bucket']}/{key}").file_name
            (tmp_path / fmt / folder / name).write_bytes((demo_run["out"] / "samples" / target).read_bytes())
    yolo = sv.DetectionDataset.from_yolo(
        str(tmp_path / "yolo/images"), str(tmp_path / "yolo/labels"), str(tmp_path / "yolo/data.yaml")
    )
    voc = sv.DetectionDataset.from_pascal_voc(str(tmp_path / "voc/JPEGImages"), str(tmp_path / "voc/Annotations"))
    for dataset in (yolo, voc):
        assert len(dataset) == len(SAMPLE_IMAGES)
        for path, _, detections in dataset:
            boxes = simulated[Path(path).name]
            expected = sorted([left, top, left + width, top + height] for _, left, top, width, height in boxes)
            assert sorted(detections.xyxy.round().astype(int).tolist()) == expected, path


def test_the_gallery_renders_with_the_simulated_notice(job: dict[str, Any], tmp_path: Path) -> None:
    index = Path(job["gallery"])
    page = index.read_text()
    assert SIMULATED_NOTE.capitalize() in page
    assert page.count("<img ") == len(SAMPLE_IMAGES)
    shot = screenshot(index, tmp_path / "gallery.png").convert("RGB")
    colours = shot.getcolors(maxcolors=shot.width * shot.height) or []
    count = {colour: n for n, colour in colours}
    # The notice's background (#fff3cd) is on screen, and the pictures loaded (many distinct colours).
    assert count.get((255, 243, 205), 0) > 5000
    assert len(count) > 10000


def test_an_account_without_ground_truth_sees_the_refusal_and_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = tmp_path_factory.mktemp("refused") / "demo-output"
    demo = _demo(out, "--ground-truth-refuses")
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
    coco = json.loads(_export(job, "coco.json").read_text())
    assert len(coco["images"]) == len(SAMPLE_IMAGES)
