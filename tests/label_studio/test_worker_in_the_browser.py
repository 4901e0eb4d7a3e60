"""A person's loop in the real UI: a worker, signed in with the account `bbox-labeling workers add` made, opens
the next task in Label Studio, picks a label, drags a box and submits; the webhook ends the job and the
pipeline's COCO, YOLO and VOC exports hold that box within 2 pixels of the drag, in image pixels."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import draw_box
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import choose_password, password_link
from tests.label_studio.pipeline_world import Pipeline, label_studio_pipeline, png, until
from tests.support import extract_archive

WIDTH, HEIGHT = 800, 600


@pytest.fixture(scope="module")
def pipeline(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[Pipeline]:
    with label_studio_pipeline(moto_s3_server, label_studio, "Browser worker") as world:
        yield world


def test_a_box_drawn_in_label_studio_is_exported_where_it_was_drawn(
    chromium: str, pipeline: Pipeline, tmp_path: Path
) -> None:
    key = "images/street/crossing 1.png"
    pipeline.upload(key, png(WIDTH, HEIGHT))
    assert pipeline.launch(pipeline.receive_uploads(1)) == {"batchItemFailures": []}
    (task,) = pipeline.tasks()
    job = task["data"]["job"]
    password = "Maple-lantern-27"
    choose_password(password_link(LabelStudioWorkers(pipeline.api).add("browser-worker@example.com")), password)

    left, top, right, bottom = draw_box(
        pipeline.label_studio.url,
        "browser-worker@example.com",
        password,
        pipeline.project_id,
        "Cat",
        (0.25, 0.2),
        (0.7, 0.65),
        screenshot_dir=tmp_path,
    )
    exports = until(lambda: pipeline.exports(job).get("voc.tar.gz") and pipeline.exports(job), timeout=30)
    assert exports, f"no export for {job}; webhook calls: {pipeline.webhook_calls}"

    coco = json.loads(exports["coco.json"])
    (annotation,) = coco["annotations"]
    assert coco["categories"][annotation["category_id"] - 1]["name"] == "Cat"
    assert annotation["bbox"] == pytest.approx([left, top, right - left, bottom - top], abs=2)
    (image,) = coco["images"]
    assert (image["width"], image["height"]) == (WIDTH, HEIGHT)

    for name in ("yolo.tar.gz", "voc.tar.gz"):
        (tmp_path / name).write_bytes(exports[name])
        extract_archive(tmp_path / name, tmp_path / name.split(".")[0])
    stem = Path(image["file_name"]).stem
    class_id, cx, cy, w, h = (tmp_path / "yolo" / "labels" / f"{stem}.txt").read_text().split()
    names = (tmp_path / "yolo" / "data.yaml").read_text()
    assert "Cat" in names and int(class_id) == 1  # Dog 0, Cat 1: the configured order
    yolo_box = (
        (float(cx) - float(w) / 2) * WIDTH,
        (float(cy) - float(h) / 2) * HEIGHT,
        (float(cx) + float(w) / 2) * WIDTH,
        (float(cy) + float(h) / 2) * HEIGHT,
    )
    assert yolo_box == pytest.approx((left, top, right, bottom), abs=2)
    voc = (tmp_path / "voc" / "Annotations" / f"{stem}.xml").read_text()
    # VOC is 1-based: xmin = left + 1, xmax = left + width.
    values = {tag: float(voc.split(f"<{tag}>")[1].split("<")[0]) for tag in ("xmin", "ymin", "xmax", "ymax")}
    assert (values["xmin"] - 1, values["ymin"] - 1, values["xmax"], values["ymax"]) == pytest.approx(
        (left, top, right, bottom), abs=2
    )
    assert "<name>Cat</name>" in voc
    assert tarfile.is_tarfile(tmp_path / "voc.tar.gz")
