"""The neutral stream every backend's results are read into: boxes clipped to their image, and counted."""

from __future__ import annotations

import pytest

from labeling_pipeline.labels import Box, LabeledImage, ReadStats, clip_box


@pytest.mark.parametrize(
    ("box", "size", "expected", "counts"),
    [
        ((10, 20, 30, 40), (100, 80), Box("Dog", 10, 20, 30, 40, 0.5), (0, 0)),  # inside: as it is
        ((0, 0, 100, 80), (100, 80), Box("Dog", 0, 0, 100, 80, 0.5), (0, 0)),  # exactly the image
        ((-20, -5, 50, 25), (100, 80), Box("Dog", 0.0, 0.0, 30.0, 20.0, 0.5), (1, 0)),  # past the top left
        ((90, 70, 30, 40), (100, 80), Box("Dog", 90, 70, 10.0, 10.0, 0.5), (1, 0)),  # past the bottom right
        ((90, 70, 30, 40), (0, 0), Box("Dog", 90, 70, 30, 40, 0.5), (0, 0)),  # unknown size: left as it is
        ((-5, 70, 30, 40), (0, 80), Box("Dog", 0.0, 70, 25.0, 10.0, 0.5), (1, 0)),  # unknown width only
        ((-40, 10, 30, 10), (100, 80), None, (0, 1)),  # wholly left of the image
        ((100, 10, 30, 10), (100, 80), None, (0, 1)),  # starts on the right edge
        ((10, 10, 0, 10), (100, 80), None, (0, 1)),  # no width
    ],
)
def test_boxes_are_clipped_to_the_image_and_counted(
    box: tuple[float, float, float, float], size: tuple[int, int], expected: Box | None, counts: tuple[int, int]
) -> None:
    stats = ReadStats()
    assert clip_box("Dog", *box, 0.5, *size, stats) == expected
    assert (stats.boxes_clipped, stats.boxes_dropped_empty) == counts
    assert clip_box("Dog", *box, 0.5, *size, None) == expected  # no stats to count in: the same box


def test_an_image_without_labels_says_why() -> None:
    labeled = LabeledImage(1, "s3://b/images/a.jpg", 10, 10, 3, (Box("Dog", 1, 1, 2, 2),))
    failed = LabeledImage(2, "s3://b/images/b.jpg", 0, 0, 0, (), failure_reason="ClientError: cannot load")
    assert (labeled.failed, failed.failed) == (False, True)
