"""The review gallery as a person sees it: rendered by headless Chromium, checked on the screenshot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from labeling_cli.commands import ResultsSource, review_command
from scripts.browser import INSTALL_HINT, find_chromium

IMAGE_COLOUR = (30, 60, 200)


def _line(source_ref: str, boxes: list[tuple[int, int, int, int, int]]) -> str:
    return json.dumps(
        {
            "source-ref": source_ref,
            "labels": {
                "annotations": [
                    {"class_id": c, "left": x, "top": y, "width": w, "height": h} for c, x, y, w, h in boxes
                ],
                "image_size": [{"width": 400, "height": 300, "depth": 3}],
            },
            "labels-metadata": {
                "class-map": {"0": "Dog", "1": "Cat"},
                "type": "groundtruth/object-detection",
                "job-name": "labeling-job/review",
                "human-annotated": "yes",
            },
        }
    )


def screenshot(page: Path, target: Path) -> Image.Image:
    chromium = find_chromium()
    if chromium is None:
        # Under CI a skip would hide a setup that failed to install the browser.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no browser: make setup should have installed it. {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={target.parent / 'chromium-profile'}",
            "--hide-scrollbars",
            "--window-size=900,700",
            f"--screenshot={target}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Image.open(target).convert("RGB")


def _rgb(shot: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    pixel = shot.getpixel((x, y))
    assert isinstance(pixel, tuple)
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def image_rect(shot: Image.Image) -> tuple[int, int, int, int]:
    """Where the (uniformly coloured) picture landed on the page: left, top, right, bottom."""
    xs, ys = [], []
    for y in range(0, shot.height, 2):
        for x in range(0, shot.width, 2):
            r, g, b = _rgb(shot, x, y)
            if abs(r - IMAGE_COLOUR[0]) < 12 and abs(g - IMAGE_COLOUR[1]) < 12 and abs(b - IMAGE_COLOUR[2]) < 12:
                xs.append(x)
                ys.append(y)
    assert xs, "the picture is not on the screenshot"
    return min(xs), min(ys), max(xs), max(ys)


def colour_near(shot: Image.Image, x: float, y: float, wanted: str, radius: int = 3) -> bool:
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            r, g, b = _rgb(shot, int(x) + dx, int(y) + dy)
            if wanted == "red" and r > 200 and g < 100 and b < 130:
                return True
            if wanted == "green" and g > 180 and r < 90 and b < 170:
                return True
    return False


def test_gallery_shows_the_boxes_on_the_image(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "walk").mkdir(parents=True)
    Image.new("RGB", (400, 300), IMAGE_COLOUR).save(images / "walk/dog.png")
    manifest = tmp_path / "output.manifest"
    manifest.write_text(
        _line("s3://bucket/images/walk/dog.png", [(0, 40, 30, 200, 150), (1, 260, 190, 100, 80)])
        + "\n"
        + json.dumps(
            {
                "source-ref": "s3://bucket/images/walk/gone.png",
                "labels-metadata": {"failure-reason": "ClientError: unreadable"},
            }
        )
        + "\n"
    )
    source = ResultsSource(str(manifest), backend=None, settings=None, attribute="labels")
    index = review_command(source, str(images), tmp_path / "review", ["Dog", "Cat"], None)
    page = index.read_text()
    assert '<img src="../images/walk/dog.png"' in page
    assert ">Dog</text>" in page and ">Cat</text>" in page
    assert "walk/gone.png: failed: ClientError: unreadable" in page

    shot = screenshot(index, tmp_path / "shot.png")
    left, top, right, _bottom = image_rect(shot)
    scale = (right - left) / 400
    # Dog (class 0, red): its left edge at x=40, from y=30 to y=180 in image pixels.
    for y in (60, 100, 150):
        assert colour_near(shot, left + 40 * scale, top + y * scale, "red"), f"no red edge at y={y}"
    # Cat (class 1, green): its right edge at x=360.
    for y in (210, 250):
        assert colour_near(shot, left + 360 * scale, top + y * scale, "green"), f"no green edge at y={y}"
    # Inside a box the picture is untouched (boxes are outlines).
    assert not colour_near(shot, left + 140 * scale, top + 105 * scale, "red", radius=1)


def test_with_proposals_the_model_s_boxes_are_drawn_dashed_beside_the_final_ones(tmp_path: Path) -> None:
    from labeling_pipeline.labels import Box

    images = tmp_path / "images"
    (images / "walk").mkdir(parents=True)
    Image.new("RGB", (400, 300), IMAGE_COLOUR).save(images / "walk/dog.png")
    manifest = tmp_path / "output.manifest"
    # People kept the dog where the model put it but 60 px further left, and deleted the model's cat.
    manifest.write_text(_line("s3://bucket/images/walk/dog.png", [(0, 40, 30, 200, 150)]) + "\n")
    proposals = {
        "s3://bucket/images/walk/dog.png": (Box("Dog", 100, 30, 200, 150, 0.8), Box("Cat", 300, 200, 60, 60, 0.3))
    }
    source = ResultsSource(str(manifest), backend=None, settings=None, attribute="labels")
    index = review_command(source, str(images), tmp_path / "review", ["Dog", "Cat"], None, None, proposals)
    page = index.read_text()
    assert page.count('<img src="../images/walk/dog.png"') == 2
    assert "proposed: 2" in page and "final: 1" in page and "stroke-dasharray" in page

    shot = screenshot(index, tmp_path / "shot.png")
    left, top, right, _ = image_rect(shot)
    # Two pictures of 360 px side by side, 10 px apart: the model's on the left, the people's on the right.
    width = (right - left - 10) / 2
    scale = width / 400
    second = left + width + 10
    assert any(colour_near(shot, left + 100 * scale, top + y * scale, "red") for y in (40, 60, 80, 100, 120))
    assert any(colour_near(shot, left + 330 * scale, top + y * scale, "green") for y in (205, 215, 225, 235))
    assert not colour_near(shot, left + 40 * scale, top + 100 * scale, "red")
    for y in (60, 100, 150):
        assert colour_near(shot, second + 40 * scale, top + y * scale, "red"), f"no final edge at y={y}"
    assert not colour_near(shot, second + 100 * scale, top + 100 * scale, "red")
    assert not colour_near(shot, second + 330 * scale, top + 230 * scale, "green")


def test_images_whose_annotators_disagree_are_marked() -> None:
    from labeling_cli.review import ReviewItem, render_gallery
    from labeling_pipeline.exports.formats import LabelSpace
    from labeling_pipeline.labels import Box, LabeledImage

    def image(name: str) -> LabeledImage:
        return LabeledImage(1, f"s3://b/images/{name}", 400, 300, 3, (Box("Dog", 1, 1, 9, 9),), annotators=("7", "8"))

    page = render_gallery(
        [ReviewItem(image("agree.png"), None, agreement=1.0), ReviewItem(image("apart.png"), None, agreement=0.25)],
        LabelSpace(["Dog", "Cat"]),
        "job",
    )
    assert '<span class="agreement">2 annotators, agreement 1.00</span>' in page
    assert '<span class="low">2 annotators, agreement 0.25 (low: review it)</span>' in page
