"""Ground Truth's output manifest read into the neutral stream of labeled images (results.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from labeling_pipeline.backends.ground_truth import PARTS
from labeling_pipeline.backends.ground_truth.results import (
    ManifestError,
    detect_label_attribute,
    read_output_manifest,
)
from labeling_pipeline.labels import Box, LabeledImage, ReadStats, ResultsError
from tests.support import make_settings

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_reading_the_walkthrough_line() -> None:
    [image] = list(read_output_manifest((FIXTURES / "output.manifest").read_text().splitlines()[:1]))
    assert image == LabeledImage(
        line_number=1,
        source_ref="s3://example-bucket/images/8.jpg",
        width=512,
        height=512,
        depth=3,
        boxes=(Box("Dog", 98, 89, 339, 386, 0.09),),
        job_name="catdog-label-0",
        human_annotated=True,
        proposals_shown=False,  # a plain bounding-box job: no machine-made label beside the worker's
    )


def test_chained_job_uses_the_named_attribute_or_the_last_one() -> None:
    lines = (FIXTURES / "chained.manifest").read_text().splitlines()
    [first] = read_output_manifest(lines, "labels")
    assert [box.label for box in first.boxes] == ["Dog"]
    [latest] = read_output_manifest(lines)
    assert detect_label_attribute(json.loads(lines[0])) == "labels-chained"
    assert latest.job_name == "catdog-chained"
    # "Bird" is not one of the configured labels: the reader keeps it; the exports report it
    # (test_exports.py, test_an_unconfigured_label_gets_the_next_id_and_is_reported).
    assert [box.label for box in latest.boxes] == ["Dog", "Bird"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1: not JSON"),
        ('{"labels": {}}', "line 1: no source-ref"),
        ('{"source-ref": "s3://b/images/a.jpg"}', "line 1: no bounding-box label attribute"),
        (
            '{"source-ref": "s3://b/a.jpg", "labels": {"annotations": [{"left": 1}]}, '
            '"labels-metadata": {"type": "groundtruth/object-detection"}}',
            "line 1: malformed 'labels' label",
        ),
    ],
)
def test_malformed_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as raised:
        list(read_output_manifest([line]))
    # The neutral error every backend's reader raises, so that the job end need not know this one.
    assert isinstance(raised.value, ResultsError)


def test_reader_streams_without_reading_ahead() -> None:
    consumed = []

    def lines() -> Iterator[str]:
        for index in range(1_000_000):
            consumed.append(index)
            yield json.dumps(
                {
                    "source-ref": f"s3://b/images/{index}.jpg",
                    "labels": {"annotations": [], "image_size": [{"width": 1, "height": 1, "depth": 3}]},
                    "labels-metadata": {"type": "groundtruth/object-detection"},
                }
            )

    stream = read_output_manifest(lines(), stats=ReadStats())
    next(stream)
    next(stream)
    assert len(consumed) == 2


def test_boxes_past_the_top_left_corner_are_clipped_and_counted() -> None:
    line = json.dumps(
        {
            "source-ref": "s3://b/images/corner.jpg",
            "labels": {
                "annotations": [
                    {"class_id": 0, "left": -20, "top": -5, "width": 50, "height": 25},  # spills past both edges
                    {"class_id": 1, "left": -40, "top": 10, "width": 30, "height": 10},  # wholly left of the image
                    {"class_id": 1, "left": 5, "top": 6, "width": 7, "height": 8},  # inside: untouched
                ],
                "image_size": [{"width": 100, "height": 80, "depth": 3}],
            },
            "labels-metadata": {
                "class-map": {"0": "Dog", "1": "Cat"},
                "objects": [{"confidence": 0.5}] * 3,
                "type": "groundtruth/object-detection",
            },
        }
    )
    stats = ReadStats()
    [image] = read_output_manifest([line], "labels", stats)
    assert [(b.label, b.left, b.top, b.width, b.height) for b in image.boxes] == [
        ("Dog", 0.0, 0.0, 30.0, 20.0),
        ("Cat", 5, 6, 7, 8),
    ]
    assert (stats.boxes_clipped, stats.boxes_dropped_empty) == (1, 1)


def test_a_local_results_file_is_read_with_the_attribute_asked_for_or_detected() -> None:
    """The CLI's export of a kept file: the file may come from another deployment's job, so the configured
    attribute is not assumed; the one asked for is read, else the detected one."""
    lines = (FIXTURES / "chained.manifest").read_text().splitlines()
    read = PARTS.read_results_file
    [asked] = read(lines, make_settings(), "labels", ReadStats())
    assert [box.label for box in asked.boxes] == ["Dog"]
    [detected] = read(lines, make_settings(labelAttributeName="labels"), None, None)
    assert [box.label for box in detected.boxes] == ["Dog", "Bird"]
    [without_deployment] = read(lines, None, None, None)
    assert without_deployment == detected
