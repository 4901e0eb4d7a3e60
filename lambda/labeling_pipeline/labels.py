"""The neutral stream of labeled images that every backend's results are read into, and exports consume.

A backend turns its own result format into `LabeledImage`s, one per image, with boxes in pixels already
clipped to the image (`ReadStats` counts what was clipped or dropped), so that the exports, the ledger
bookkeeping and the CLI never see a backend's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class ResultsError(ValueError):
    """A result that cannot be read (malformed); the message says where (e.g. the line number)."""


class Box(NamedTuple):
    """A box in pixels. Box and LabeledImage are named tuples rather than frozen dataclasses because a
    frozen dataclass costs about three times as much to build, and a reader builds one per box."""

    label: str
    left: float
    top: float
    width: float
    height: float
    confidence: float | None = None
    annotator: str | None = None  # who drew it, when a backend has several annotators per image
    # Where the box came from, when the backend records it (Label Studio's region origin): "prediction" (a
    # proposal kept as it was), "prediction-changed" (a proposal moved, resized or relabeled), "manual" (drawn).
    origin: str | None = None


SETTLED_BY_BACKEND = "backend"


class LabeledImage(NamedTuple):
    line_number: int  # its position in the job's results, for messages
    source_ref: str  # s3://bucket/key
    width: int
    height: int
    depth: int
    boxes: tuple[Box, ...]
    job_name: str | None = None
    human_annotated: bool | None = None
    failure_reason: str | None = None  # set when the image has no labels: why
    # Seconds people spent on the image (the mean over its answers), when the backend records it (Label
    # Studio's lead_time); the pre-label report compares images with and without proposals by it.
    seconds: float | None = None
    # Who answered the image, when a backend has several annotators per image and leaves their boxes apart (Label
    # Studio): the exports consolidate their boxes (consolidation.py), and an annotator who drew nothing counts too.
    annotators: tuple[str, ...] = ()
    # Whether people were shown a detector's proposals for this image (labeling.prelabel), as the backend recorded
    # it: the pre-label report trusts this over a proposals file that may have been written after the job began.
    # None: the backend does not say.
    proposals_shown: bool | None = None
    # The image's final boxes when they were decided outside the pipeline's consolidation: a reviewer's answer (Label
    # Studio's review step) or the backend's own consolidation (Ground Truth's ACS-BoundingBox). The exports write
    # these; `boxes` then holds every annotator's own (each with its `annotator`) and serves the agreement only.
    settled_boxes: tuple[Box, ...] | None = None
    # Who decided settled_boxes: SETTLED_BY_BACKEND, or the reviewer's name (Label Studio's review step).
    settled_by: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure_reason is not None


@dataclass
class ReadStats:
    lines: int = 0
    images: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    boxes_clipped: int = 0
    boxes_dropped_empty: int = 0
    boxes_rotated: int = 0  # rotated rectangles replaced by the axis-aligned box that contains them


def clip_box(
    label: str,
    left: float,
    top: float,
    box_width: float,
    box_height: float,
    confidence: float | None,
    width: int,
    height: int,
    stats: ReadStats | None,
) -> Box | None:
    """The box clipped to a width x height image (an unknown size, 0, leaves that side as it is); None when
    nothing is left of it. Clipped and dropped boxes are counted in stats."""
    # max(0.0, x) and min(limit, x), spelled out (the same values, NaN included, without the calls)
    clipped_left = left if left > 0.0 else 0.0
    clipped_top = top if top > 0.0 else 0.0
    right = left + box_width
    if width > 0 and not right < (limit := float(width)):
        right = limit
    bottom = top + box_height
    if height > 0 and not bottom < (limit := float(height)):
        bottom = limit
    if right <= clipped_left or bottom <= clipped_top:
        if stats is not None:
            stats.boxes_dropped_empty += 1
        return None
    clipped_width, clipped_height = right - clipped_left, bottom - clipped_top
    if stats is not None and (clipped_left, clipped_top, clipped_width, clipped_height) != (
        left,
        top,
        box_width,
        box_height,
    ):
        stats.boxes_clipped += 1
    return Box(label, clipped_left, clipped_top, clipped_width, clipped_height, confidence)
