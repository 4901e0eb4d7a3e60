"""Read Ground Truth's bounding-box output manifest, one line at a time.

Format (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Bounding box job output"):
each line holds "source-ref", the label attribute with ``annotations`` (``class_id``, ``left``, ``top``,
``width``, ``height``) and ``image_size`` ([{"width", "height", "depth"}]), and ``<attribute>-metadata``
with ``class-map`` (class_id -> label), ``objects`` (confidences), ``job-name``, ``human-annotated``
and ``type: groundtruth/object-detection``. A chained job adds its own attribute beside the first.
An object whose task failed has metadata with ``failure-reason`` and no annotations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

OBJECT_DETECTION = "groundtruth/object-detection"


class ManifestError(ValueError):
    """A line that cannot be read as Ground Truth output; the message gives the line number."""


class Box(NamedTuple):
    """A box in pixels. Box and LabeledImage are named tuples rather than frozen dataclasses because a
    frozen dataclass costs about three times as much to build, and the reader builds one per box."""

    label: str
    left: float
    top: float
    width: float
    height: float
    confidence: float | None = None


class LabeledImage(NamedTuple):
    line_number: int
    source_ref: str
    width: int
    height: int
    depth: int
    boxes: tuple[Box, ...]
    job_name: str | None = None
    human_annotated: bool | None = None
    failure_reason: str | None = None

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


def detect_label_attribute(line: dict[str, Any]) -> str | None:
    """The attribute whose metadata says object detection (the last one, for a chained job); on a
    failed line, which has no type, the only metadata key there is."""
    metadata = [key for key, value in line.items() if key.endswith("-metadata") and isinstance(value, dict)]
    found = [key for key in metadata if line[key].get("type") == OBJECT_DETECTION]
    if found:
        return found[-1].removesuffix("-metadata")
    return metadata[0].removesuffix("-metadata") if len(metadata) == 1 else None


def parse_line(number: int, text: str, attribute: str | None, stats: ReadStats | None = None) -> LabeledImage | None:
    """One output line -> LabeledImage (None for a blank line)."""
    if not text or text.isspace():
        return None
    try:
        line = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"line {number}: not JSON ({error.msg})") from error
    if not isinstance(line, dict) or not isinstance(line.get("source-ref"), str):
        raise ManifestError(f"line {number}: no source-ref")
    name = attribute or detect_label_attribute(line)
    if name is None:
        raise ManifestError(
            f"line {number}: no bounding-box label attribute (no '<name>-metadata' of type {OBJECT_DETECTION})"
        )
    metadata = line.get(f"{name}-metadata") or {}
    job_name = metadata.get("job-name")
    if isinstance(job_name, str):
        job_name = job_name.removeprefix("labeling-job/")
    label = line.get(name)
    if not isinstance(label, dict):
        reason = metadata.get("failure-reason") or f"no '{name}' label on this line"
        return LabeledImage(number, line["source-ref"], 0, 0, 0, (), job_name, None, str(reason))
    try:
        size = (label.get("image_size") or [{}])[0]
        width, height, depth = int(size.get("width", 0)), int(size.get("height", 0)), int(size.get("depth", 3))
        class_map = {str(key): str(value) for key, value in (metadata.get("class-map") or {}).items()}
        confidences = [obj.get("confidence") for obj in metadata.get("objects") or []]
        boxes = []
        # Clipped to the image in place (one Box per annotation, not a raw one and a clipped one): a box
        # that spills past the image is counted as clipped, one left empty is dropped and counted.
        for index, annotation in enumerate(label.get("annotations") or []):
            class_id = str(annotation["class_id"])
            confidence = confidences[index] if index < len(confidences) else None
            box_label = class_map.get(class_id)
            if box_label is None:
                box_label = f"class-{class_id}"
            left = float(annotation["left"])
            top = float(annotation["top"])
            box_width = float(annotation["width"])
            box_height = float(annotation["height"])
            if confidence is not None:
                confidence = float(confidence)
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
                continue
            clipped_width, clipped_height = right - clipped_left, bottom - clipped_top
            changed = (clipped_left, clipped_top, clipped_width, clipped_height) != (left, top, box_width, box_height)
            if stats is not None and changed:
                stats.boxes_clipped += 1
            boxes.append(Box(box_label, clipped_left, clipped_top, clipped_width, clipped_height, confidence))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise ManifestError(f"line {number}: malformed '{name}' label ({error!r})") from error
    human = metadata.get("human-annotated")
    return LabeledImage(
        number,
        line["source-ref"],
        width,
        height,
        depth,
        tuple(boxes),
        job_name,
        None if human is None else human == "yes",
    )


def read_output_manifest(
    lines: Iterable[str | bytes], attribute: str | None = None, stats: ReadStats | None = None
) -> Iterator[LabeledImage]:
    """Stream LabeledImages from any iterable of lines (a file, an S3 body's iter_lines())."""
    detected = attribute
    for number, raw in enumerate(lines, 1):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if stats is not None:
            stats.lines += 1
        image = parse_line(number, text, detected, stats)
        if image is None:
            continue
        if detected is None:
            # One attribute per manifest: the first line that names it decides for the rest.
            detected = detect_label_attribute(json.loads(text))
        if stats is not None:
            stats.images += 1
            if image.failure_reason is not None:
                stats.failed.append((image.source_ref, image.failure_reason))
        yield image
