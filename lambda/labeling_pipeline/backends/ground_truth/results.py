"""Read Ground Truth's bounding-box output manifest, one line at a time, into the neutral stream.

Format (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Bounding box job output"):
each line holds "source-ref", the label attribute with ``annotations`` (``class_id``, ``left``, ``top``,
``width``, ``height``) and ``image_size`` ([{"width", "height", "depth"}]), and ``<attribute>-metadata``
with ``class-map`` (class_id -> label), ``objects`` (confidences), ``job-name``, ``human-annotated``
and ``type: groundtruth/object-detection``. A chained job adds its own attribute beside the first.
An object whose task failed has metadata with ``failure-reason`` and no annotations.

An adjustment job's line (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Bounding box job
output") keeps the prior label as it was (here the detector's proposals, ``human-annotated: no``) and adds the job's
own in the same format, its metadata with ``adjustment-status``: ``unadjusted`` when no worker changed the prior
boxes, ``adjusted`` when at least one did. That is all it says per image; the worker answers' ``initialValueModified``
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-ui-template-crowd-bounding-box.html) is one flag per answer and
is not in the consolidated line, and nothing says which box was kept, moved or drawn. So the boxes of an unadjusted
image are the proposals as shown (origin "prediction"), and an adjusted image's boxes get no origin: the pre-label
report tells them apart by geometry. The consolidated line has no time either (``timeSpentInSeconds`` is only in each
worker's response under ``annotations/worker-response``, sms-data-output.html, "Worker Metadata"), so
``LabeledImage.seconds`` stays None.

With several workers per image, the job end also reads each worker's own boxes from those worker-response files
(worker_responses.py): the boxes read here become the image's ``settled_boxes``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from labeling_pipeline.labels import LabeledImage, ReadStats, ResultsError, clip_box

OBJECT_DETECTION = "groundtruth/object-detection"
ADJUSTMENT_STATUS = "adjustment-status"
UNADJUSTED = "unadjusted"
# labels.Box.origin of a proposal kept as it was (the word Label Studio uses, which the pre-label report reads).
PREDICTION_ORIGIN = "prediction"


class ManifestError(ResultsError):
    """A line that cannot be read as Ground Truth output; the message gives the line number."""


def detect_label_attribute(line: dict[str, Any]) -> str | None:
    """The attribute whose metadata says object detection (the last one, for a chained job); on a
    failed line, which has no type, the only metadata key there is.

    An adjustment job's own label (its metadata has an adjustment-status) comes first, and a label people drew
    before one a machine drew (``human-annotated: no``, as the proposals an adjustment job starts from): so a
    failed adjustment line is the job's failure, not the proposals beside it."""
    metadata = [key for key, value in line.items() if key.endswith("-metadata") and isinstance(value, dict)]
    found = [key for key in metadata if line[key].get("type") == OBJECT_DETECTION]
    adjusted = [key for key in found if ADJUSTMENT_STATUS in line[key]]
    machine = {key for key in found if line[key].get("human-annotated") == "no"}
    by_people = [key for key in found if key not in machine]
    others = [key for key in metadata if key not in machine]
    for candidates in (adjusted, by_people):
        if candidates:
            return candidates[-1].removesuffix("-metadata")
    if len(others) == 1:
        return others[0].removesuffix("-metadata")
    if found:
        return found[-1].removesuffix("-metadata")
    return None


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
            box = clip_box(box_label, left, top, box_width, box_height, confidence, width, height, stats)
            if box is not None:
                boxes.append(box)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise ManifestError(f"line {number}: malformed '{name}' label ({error!r})") from error
    if metadata.get(ADJUSTMENT_STATUS) == UNADJUSTED:
        boxes = [box._replace(origin=PREDICTION_ORIGIN) for box in boxes]
    human = metadata.get("human-annotated")
    # An adjustment job's output keeps its input's prior label, the proposals, beside the job's own: a machine's
    # (human-annotated "no") object-detection label on the line says the worker was shown proposals.
    shown = any(
        key != f"{name}-metadata"
        and isinstance(value, dict)
        and value.get("type") == OBJECT_DETECTION
        and value.get("human-annotated") == "no"
        for key, value in line.items()
        if key.endswith("-metadata")
    )
    return LabeledImage(
        number,
        line["source-ref"],
        width,
        height,
        depth,
        tuple(boxes),
        job_name,
        None if human is None else human == "yes",
        proposals_shown=shown,
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
