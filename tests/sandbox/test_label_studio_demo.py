"""`make demo DEMO_ARGS="--backend label-studio"`, headless, as a newcomer runs it: once with simulated annotators
(many asserts on what it leaves behind), once `--interactive` with a person's box drawn in Label Studio's own UI,
and once interrupted with Ctrl-C while Label Studio runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from labeling_pipeline.exports.formats import image_name
from sandbox.demo_steps import DEMO_CONTEXT, PREFIX, SAMPLE_IMAGES
from sandbox.label_studio_browser import choose_password_in_browser, draw_box
from sandbox.label_studio_demo import PERSON_NOTE, PERSON_PREFIX, PERSON_WORKER, SIMULATED_WORKER
from sandbox.label_studio_server import INSTALL_HINT, is_installed
from sandbox.simulated_annotators import choose_password, image_size, rectangle
from sandbox.simulated_workers import SIMULATED_NOTE, simulated_boxes
from scripts.browser import find_chromium
from tests.conftest import missing
from tests.sandbox.demo_support import (
    DEMO_LIMIT_SECONDS,
    EMULATOR_LINE,
    Boxes,
    Lines,
    alive,
    assert_coco_holds,
    assert_gallery_shows,
    assert_readers_find_every_image,
    assert_yolo_and_voc_hold,
    export_path,
    port_open,
    processes_in_sessions,
    start_demo,
)

BACKEND = ("--backend", "label-studio")
LABEL_STUDIO_LINE = r"3/6 Label Studio \S+ on (http://127\.0\.0\.1:(\d+)), pid (\d+)"
FUNCTION_URL_LINE = re.compile(r"function URL of \S+: http://127\.0\.0\.1:(\d+)/")
LABELS = ["Dog", "Cat"]  # the stack's default labels, in class-id order


@pytest.fixture(scope="module", autouse=True)
def label_studio_installed() -> None:
    if not is_installed():
        missing(INSTALL_HINT)


def _left_behind(output: str, demo_pid: int) -> list[str]:
    """What of the run is still there: its processes (the demo's session, Label Studio's, moto's) and ports."""
    emulator = EMULATOR_LINE.search(output)
    label_studio = re.search(LABEL_STUDIO_LINE, output)
    assert emulator and label_studio, output
    sessions = {demo_pid, int(emulator.group(3)), int(label_studio.group(3))}
    ports = {int(emulator.group(2)), int(label_studio.group(2))} | {
        int(port) for port in FUNCTION_URL_LINE.findall(output)
    }
    left = processes_in_sessions(sessions) + [f"pid {pid}" for pid in sessions if alive(pid)]
    return left + [f"port {port}" for port in sorted(ports) if port_open(port)]


@pytest.fixture(scope="module")
def ls_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("label-studio-demo") / "demo-output"
    started = time.monotonic()
    demo = start_demo(out, *BACKEND)
    output, _ = demo.communicate(timeout=DEMO_LIMIT_SECONDS * 2)
    assert demo.returncode == 0, output
    return {
        "out": out,
        "output": output,
        "summary": json.loads((out / "demo-summary.json").read_text()),
        "seconds": time.monotonic() - started,
        "left_behind": _left_behind(output, demo.pid),
    }


@pytest.fixture(scope="module")
def job(ls_run: dict[str, Any]) -> dict[str, Any]:
    (only,) = ls_run["summary"]["jobs"]
    return dict(only)


def _tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(job["tasks"]).read_text().splitlines()]


def _simulated(job: dict[str, Any]) -> Boxes:
    """Per image: the boxes the simulated annotator submitted, recomputed from its rule and the image's size."""
    expected: Boxes = {}
    for task in _tasks(job):
        source_ref = task["data"]["image"]
        ((annotation,),) = [task["annotations"]]
        width, height = annotation["result"][0]["original_width"], annotation["result"][0]["original_height"]
        boxes = simulated_boxes(source_ref, width, height, len(LABELS))
        expected[image_name(source_ref).file_name] = [
            [b["class_id"], b["left"], b["top"], b["width"], b["height"]] for b in boxes
        ]
    assert len(expected) == len(SAMPLE_IMAGES)
    return expected


def test_it_runs_within_the_limit_and_leaves_nothing_running(ls_run: dict[str, Any]) -> None:
    assert ls_run["seconds"] < DEMO_LIMIT_SECONDS
    assert ls_run["left_behind"] == []
    assert "Label Studio and the emulator stopped; nothing is left running." in ls_run["output"]


def test_every_line_on_screen_says_the_answers_are_simulated(ls_run: dict[str, Any]) -> None:
    lines = ls_run["output"].splitlines()
    assert lines and all(line.startswith(PREFIX) for line in lines), [x for x in lines if not x.startswith(PREFIX)]
    assert "Simulated annotators answer through its API" in lines[1]
    assert f"5/6 Simulated annotators label {len(SAMPLE_IMAGES)} images through Label Studio's API" in ls_run["output"]
    assert sum("simulated box(es)" in line for line in lines) == len(SAMPLE_IMAGES)


def test_every_lambda_log_line_says_so(ls_run: dict[str, Any]) -> None:
    logs = sorted((ls_run["out"] / "logs").glob("gt-labeling-pipeline-*.log"))
    # The launcher, the job-events function (webhook and reconciler), and the project's setup function.
    assert [log.name.split("-")[3].split("Function")[0] for log in logs] == [
        "FollowJobEvents",
        "LabelStudioProjectSetup",
        "LaunchLauncher",
    ]
    for log in logs:
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert records and all(record["sandbox"] == SIMULATED_NOTE for record in records), log


def test_the_template_is_made_as_cloudformation_would(ls_run: dict[str, Any]) -> None:
    output = ls_run["output"]
    assert "2 Secret" in output and "1 Url (a loopback receiver)" in output and "1 LabelStudioProject" in output
    assert "setup_handler.on_event ran with the template's properties -> physical id 1" in output
    assert "rate(5 minutes)" in output and "found 0 open job(s) left" in output
    assert "with the API token that the stack generated in Secrets Manager" in output
    label_studio = ls_run["summary"]["label_studio"]
    assert label_studio["url"] in output and label_studio["project_id"] == 1


def test_the_two_figures_are_measured_and_printed(ls_run: dict[str, Any]) -> None:
    summary = ls_run["summary"]
    # The demo's batching window comes first, then the launcher imports the tasks.
    window = int(DEMO_CONTEXT["labeling.batchingWindowSeconds"])
    assert window <= summary["seconds_upload_to_first_task"] < 60
    assert summary["tasks_imported_per_second"] > 0
    assert (
        f"seconds from upload to a task a worker can open: {summary['seconds_upload_to_first_task']}"
        in (ls_run["output"])
    )
    assert f"tasks imported per second: {summary['tasks_imported_per_second']} " in ls_run["output"]


def test_label_studio_export_has_each_image_once_with_the_simulated_annotators_boxes(
    ls_run: dict[str, Any], job: dict[str, Any]
) -> None:
    worker = ls_run["summary"]["worker"]
    assert worker["email"] == SIMULATED_WORKER
    exported = json.loads(Path(job["label_studio_export"]).read_text())
    assert len(exported) == len(SAMPLE_IMAGES)
    assert {task["data"]["image"] for task in exported} == {task["data"]["image"] for task in _tasks(job)}
    for task in exported:
        (annotation,) = task["annotations"]
        assert annotation["completed_by"] == worker["id"] != 1  # the worker's account, not the pipeline's admin
        assert not annotation["was_cancelled"]
        size = annotation["result"][0]["original_width"], annotation["result"][0]["original_height"]
        boxes = simulated_boxes(task["data"]["image"], *size, len(LABELS))
        found = [
            [LABELS.index(result["value"]["rectanglelabels"][0]), *(result["value"][k] for k in ("x", "y"))]
            for result in annotation["result"]
        ]
        assert found == [
            [b["class_id"], pytest.approx(b["left"] * 100 / size[0]), pytest.approx(b["top"] * 100 / size[1])]
            for b in boxes
        ]


def test_the_exports_hold_the_simulated_boxes(ls_run: dict[str, Any], job: dict[str, Any], tmp_path: Path) -> None:
    expected = _simulated(job)
    assert_coco_holds(job, expected)
    assert_yolo_and_voc_hold(job, expected)
    assert_readers_find_every_image(job, ls_run["out"], ls_run["summary"]["bucket"], expected, tmp_path)
    coco = json.loads(export_path(job, "coco.json").read_text())
    assert {annotation["annotator"] for annotation in coco["annotations"]} == {str(ls_run["summary"]["worker"]["id"])}


def test_the_gallery_renders_with_the_simulated_notice(job: dict[str, Any], tmp_path: Path) -> None:
    assert_gallery_shows(job, SIMULATED_NOTE.capitalize(), tmp_path)


def _sign_in_and_submit(
    url: str, password: str, project_id: int, box: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A person's answer without a browser: the login form's session, then the editor's own API call. Returns the
    box in image pixels: (x_min, y_min, x_max, y_max), as draw_box does."""
    session = requests.Session()
    session.trust_env = False
    session.get(f"{url}/user/login/", timeout=30)
    session.post(
        f"{url}/user/login/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "email": PERSON_WORKER, "password": password},
        timeout=30,
    ).raise_for_status()
    task = session.get(f"{url}/api/projects/{project_id}/next", timeout=30).json()
    picture = task["data"]["image"]
    size = session.get(url + picture if picture.startswith("/") else picture, timeout=30)
    width, height = image_size(size.content)
    left, top, right, bottom = (value * scale for value, scale in zip(box, (width, height, width, height), strict=True))
    session.post(
        f"{url}/api/tasks/{task['id']}/annotations",
        json={"result": [rectangle("Cat", left, top, right - left, bottom - top, (width, height))]},
        headers={"X-CSRFToken": str(session.cookies.get("csrftoken")), "Referer": url},
        timeout=30,
    ).raise_for_status()
    return left, top, right, bottom


def test_interactive_a_persons_box_is_exported_and_the_gallery_says_a_person_drew_it(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    demo = start_demo(out, *BACKEND, "--interactive", stdin=subprocess.PIPE)
    assert demo.stdin is not None and demo.stdout is not None
    lines = Lines(demo.stdout)
    try:
        link = lines.wait_for(r"(http://127\.0\.0\.1:\d+/labeling/password/\S+/)$", DEMO_LIMIT_SECONDS).group(1)
        url, project_id = lines.wait_for(r"Open (http://127\.0\.0\.1:\d+)/projects/(\d+)/data\?labeling=1", 10).groups()
        lines.wait_for("Press Enter here when you are done", 10)
        # The person's site is the edge in front of Label Studio, as deployed, and the link points at it.
        assert link.startswith(url)
        password = "Person-chose-this-9"
        if find_chromium() is not None:
            choose_password_in_browser(link, password)
            corners = draw_box(url, PERSON_WORKER, password, int(project_id), "Cat", (0.25, 0.2), (0.7, 0.65))
        else:
            choose_password(link, password)
            corners = _sign_in_and_submit(url, password, int(project_id), (0.25, 0.2, 0.7, 0.65))
        left, top, right, bottom = corners
        demo.stdin.write("\n")
        demo.stdin.flush()
        output = lines.rest(DEMO_LIMIT_SECONDS)
        demo.wait(30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(30)
    assert demo.returncode == 0, output
    printed = output.splitlines()
    assert all(line.startswith(PERSON_PREFIX) for line in printed), output
    # Simulated is said once, to say that nothing is.
    assert [line for line in printed if "simulated" in line.lower()] == [
        f"{PERSON_PREFIX} Label Studio on this machine, on 127.0.0.1. You draw the boxes in its web UI: nothing is "
        "simulated."
    ]
    assert f"You answered 1 of {len(SAMPLE_IMAGES)} images; the other {len(SAMPLE_IMAGES) - 1} are skipped" in output
    assert _left_behind(output, demo.pid) == []

    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["simulated"] is False and summary["note"] == PERSON_NOTE
    assert summary["answered_by_the_person"] == 1
    (job,) = summary["jobs"]
    person = summary["worker"]["id"]
    coco = json.loads(export_path(job, "coco.json").read_text())
    (annotation,) = coco["annotations"]
    assert coco["categories"][annotation["category_id"] - 1]["name"] == "Cat"
    assert annotation["annotator"] == str(person)
    assert annotation["bbox"] == pytest.approx([left, top, right - left, bottom - top], abs=2)
    exported = json.loads(Path(job["label_studio_export"]).read_text())
    answers = [annotation for task in exported for annotation in task["annotations"]]
    assert len(answers) == len(SAMPLE_IMAGES) and {a["completed_by"] for a in answers} == {person}
    assert sum(a["was_cancelled"] for a in answers) == len(SAMPLE_IMAGES) - 1  # skipped for the person on Enter
    # The person's picture with its box; the six skipped ones are listed as skipped by every annotator.
    page = assert_gallery_shows(job, PERSON_NOTE[0].upper() + PERSON_NOTE[1:], tmp_path, pictures=1)
    assert "drawn by a person" in page and SIMULATED_NOTE.capitalize() not in page
    assert page.count("skipped by every annotator") == len(SAMPLE_IMAGES) - 1


def test_ctrl_c_while_label_studio_runs_stops_everything(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "demo-output", *BACKEND)
    assert demo.stdout is not None
    lines = Lines(demo.stdout)
    try:
        lines.wait_for(LABEL_STUDIO_LINE, DEMO_LIMIT_SECONDS)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
    output = lines.rest(60)
    demo.wait(30)
    assert demo.returncode == 130, output
    assert "Interrupted: Label Studio and the emulator are stopped and nothing is left running." in output
    assert _left_behind(output, demo.pid) == []
