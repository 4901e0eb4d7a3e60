"""Label Studio tasks (the API's JSON, one task a line in ``output/<job>/tasks.jsonl``) read into the neutral
stream of labeled images.

Conversion, for each rectangle of each submitted annotation:
- percent to pixels through the result's ``original_width`` and ``original_height``;
- a rotated rectangle (``value.rotation`` degrees, clockwise about its top-left corner, in pixels) becomes
  the axis-aligned box that contains it, counted in ``boxesRotated``; Label Studio's own converter rotates
  in percent space, which shifts the box on a non-square image (label-studio-converter#101);
- what spills past the image is clipped, and a box with nothing left is dropped (both counted);
- drafts and predictions are not annotations and are ignored; a skipped answer (``was_cancelled``) adds
  no box;
- an annotation made from a prediction with nobody looking (`unreviewed_prediction`: the data manager's
  "Create Annotations From Predictions") adds no box either; an image with no other submitted answer is one to
  relabel, with UNREVIEWED_REASON.
Several annotators per task: every annotator's boxes are kept, each with its annotator (Label Studio's user
id) and its region's ``origin`` on the box (the COCO export writes the annotator as ``annotator``), and the
image carries the mean ``lead_time`` of its answers in ``seconds`` (both for the pre-label report). A task
whose every answer is a skip is an image to relabel, with the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from labeling_pipeline.labels import Box, LabeledImage, ReadStats, ResultsError, clip_box

RECTANGLE_RESULT = "rectanglelabels"
SKIPPED_REASON = "skipped by every annotator (the image may not open, or shows nothing to label)"
NOT_ANSWERED_REASON = "no annotator answered the task"
UNREVIEWED_REASON = (
    "its only answer was made from a prediction with nobody looking (Label Studio's Create Annotations From "
    "Predictions): open it in Label Studio and update it, or relabel it"
)


class TaskData:
    """The fields of a task's data that the pipeline writes (and the label configuration's $image)."""

    IMAGE = "image"
    JOB = "job"
    VERSION = "imageVersion"
    # Pre-labels (PrelabelMark): whether the task was imported with the detector's proposals, or kept back from
    # them on purpose; absent when it had none (pre-labels off, or no proposals file for the image).
    PRELABEL = "prelabel"


# A tasks.jsonl line's review task (review.py), beside Label Studio's own task fields: the reviewer's answer is the
# image's final boxes (LabeledImage.settled_boxes).
REVIEW_KEY = "pipelineReview"


class PrelabelMark:
    """The values of a task's ``data.prelabel``, for the report that compares labeling with and without
    proposals. "proposed" says a prediction went with the task's import (or was added right after it): a task
    so marked without a prediction of its model version in its JSON is one whose prediction Label Studio
    refused (the launcher logged it)."""

    PROPOSED = "proposed"
    HELD_OUT = "held-out"


def task_identity(task: Mapping[str, Any]) -> tuple[str, str]:
    """The image version a task (a labeling or a review task) stands for: (data.image, data.imageVersion)."""
    data = task.get("data") or {}
    return str(data.get(TaskData.IMAGE)), str(data.get(TaskData.VERSION))


def unreviewed_prediction(annotation: Mapping[str, Any]) -> bool:
    """Whether a submitted annotation was made from a prediction with nobody looking at it: it names the
    prediction it came from (``parent_prediction``) and has no labeling time (``lead_time`` null or 0).

    Why these two, from Label Studio 1.23.2's source:
    - the data manager's action ``predictions_to_annotations`` (label_studio/data_manager/actions/
      predictions_to_annotations.py) builds each annotation from ``result``, ``completed_by_id`` (whoever ran
      the action), ``task_id``, ``parent_prediction_id`` and ``project`` only, and bulk-creates them, so
      ``lead_time`` keeps the model's default, None (Annotation.lead_time, label_studio/tasks/models.py);
      ``last_action`` stays None and ``bulk_created`` False (Community's TaskSerializerBulk.add_annotation_fields
      adds nothing), and the regions are the prediction's, copied as they are;
    - the editor always sends the seconds a person spent: its prepareData (web/dist/apps/labelstudio/167.js)
      posts ``lead_time`` = the annotation's earlier time + the draft's + the seconds since the task opened, with
      ``parent_prediction`` when the person started from a prediction (and each region's ``origin``). A person
      who accepts a prediction as it is, or opens a bulk-made annotation and updates it, leaves a lead time.
    Who completed it does not tell: the action credits whoever ran it, an administrator who may also label.
    """
    if annotation.get("was_cancelled") or annotation.get("parent_prediction") is None:
        return False
    lead_time = annotation.get("lead_time")
    return not (isinstance(lead_time, int | float) and not isinstance(lead_time, bool) and lead_time > 0)


def axis_aligned(x: float, y: float, width: float, height: float, rotation_degrees: float) -> tuple[float, ...]:
    """The smallest axis-aligned box (left, top, width, height) around a width x height rectangle whose top-left
    corner is (x, y) and that is turned `rotation_degrees` clockwise about that corner (image y points down)."""
    if not rotation_degrees % 360:
        return x, y, width, height
    angle = math.radians(rotation_degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    xs = (x, x + width * cos, x + width * cos - height * sin, x - height * sin)
    ys = (y, y + width * sin, y + width * sin + height * cos, y + height * cos)
    left, top = min(xs), min(ys)
    return left, top, max(xs) - left, max(ys) - top


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsError(f"{where}: not a number: {value!r}")
    return float(value)


def _boxes(
    result: Mapping[str, Any], annotator: str | None, where: str, stats: ReadStats
) -> tuple[list[Box], int, int]:
    """A rectangle result's boxes (one per label it carries) and the image size it was drawn on."""
    value = result.get("value")
    if not isinstance(value, Mapping):
        raise ResultsError(f"{where}: a rectangle without a value")
    image_width = int(_number(result.get("original_width"), f"{where}: original_width"))
    image_height = int(_number(result.get("original_height"), f"{where}: original_height"))
    x, y = value.get("x"), value.get("y")
    left = _number(x, f"{where}: x") * image_width / 100
    top = _number(y, f"{where}: y") * image_height / 100
    width = _number(value.get("width"), f"{where}: width") * image_width / 100
    height = _number(value.get("height"), f"{where}: height") * image_height / 100
    rotation = _number(value.get("rotation", 0) or 0, f"{where}: rotation")
    if rotation % 360:
        stats.boxes_rotated += 1
        left, top, width, height = axis_aligned(left, top, width, height, rotation)
    labels = value.get(RECTANGLE_RESULT)
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise ResultsError(f"{where}: a rectangle without a label")
    # The editor's word for where the region came from (prediction, prediction-changed, manual): the pre-label
    # report tells kept proposals from moved and drawn boxes by it. Absent on regions the editor did not write.
    origin = result.get("origin") if isinstance(result.get("origin"), str) else None
    boxes = []
    for label in labels:
        box = clip_box(label, left, top, width, height, None, image_width, image_height, stats)
        if box is not None:
            boxes.append(box._replace(annotator=annotator, origin=origin))
    return boxes, image_width, image_height


def read_task(task: Mapping[str, Any], line_number: int, job_name: str | None, stats: ReadStats) -> LabeledImage:
    where = f"task {task.get('id')} (line {line_number})"
    data = task.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get(TaskData.IMAGE), str):
        raise ResultsError(f"{where}: no data.{TaskData.IMAGE}")
    source_ref = data[TaskData.IMAGE]
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise ResultsError(f"{where}: annotations is not a list")
    submitted = [a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled")]
    by_people = [a for a in submitted if not unreviewed_prediction(a)]
    job = job_name or (str(data[TaskData.JOB]) if data.get(TaskData.JOB) else None)
    if not by_people:
        reason = UNREVIEWED_REASON if submitted else SKIPPED_REASON if annotations else NOT_ANSWERED_REASON
        return LabeledImage(line_number, source_ref, 0, 0, 3, (), job, not submitted, reason)
    boxes: list[Box] = []
    width = height = 0
    answered: list[str] = []
    for annotation in sorted(by_people, key=lambda a: int(a.get("id") or 0)):
        annotator = annotation.get("completed_by")
        annotator_id = str(annotator.get("id") if isinstance(annotator, Mapping) else annotator)
        if annotator_id not in answered:
            answered.append(annotator_id)
        for position, result in enumerate(annotation.get("result") or []):
            if not isinstance(result, Mapping) or result.get("type") != RECTANGLE_RESULT:
                continue
            found, width, height = _boxes(
                result, annotator_id, f"{where}, annotation {annotation.get('id')}, result {position}", stats
            )
            boxes.extend(found)
    image = LabeledImage(
        line_number,
        source_ref,
        width,
        height,
        3,
        tuple(boxes),
        job,
        True,
        None,
        _seconds(by_people),
        tuple(answered),
        proposals_shown=data.get(TaskData.PRELABEL) == PrelabelMark.PROPOSED,
    )
    review = task.get(REVIEW_KEY)
    return image if not isinstance(review, Mapping) else _reviewed(image, review, f"{where}, review", stats)


def _reviewed(image: LabeledImage, review: Mapping[str, Any], where: str, stats: ReadStats) -> LabeledImage:
    """The image with its reviewer's answer as its final boxes: the latest answer a person submitted to the review
    task. A review skipped, or not answered, leaves the image as its annotators answered it."""
    annotations = review.get("annotations") or []
    if not isinstance(annotations, list):
        raise ResultsError(f"{where}: annotations is not a list")
    submitted = [
        a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled") and not unreviewed_prediction(a)
    ]
    if not submitted:
        return image
    answer = max(submitted, key=lambda a: int(a.get("id") or 0))
    reviewer = answer.get("completed_by")
    reviewer_id = str(reviewer.get("id") if isinstance(reviewer, Mapping) else reviewer)
    boxes: list[Box] = []
    width, height = image.width, image.height
    for position, result in enumerate(answer.get("result") or []):
        if not isinstance(result, Mapping) or result.get("type") != RECTANGLE_RESULT:
            continue
        found, width, height = _boxes(result, None, f"{where}, annotation {answer.get('id')}, result {position}", stats)
        boxes.extend(found)
    return image._replace(width=width, height=height, settled_boxes=tuple(boxes), settled_by=reviewer_id)


def _seconds(annotations: Iterable[Mapping[str, Any]]) -> float | None:
    """The mean of the answers' ``lead_time`` (the seconds the editor counted), over the answers that have one."""
    times = [
        float(lead_time)
        for annotation in annotations
        if isinstance(lead_time := annotation.get("lead_time"), int | float)
        and not isinstance(lead_time, bool)
        and math.isfinite(lead_time)
        and lead_time > 0
    ]
    return sum(times) / len(times) if times else None


def _task_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for JSON lines; a file that opens with '[' is one JSON list, as Label
    Studio's own JSON export writes it (its tasks are numbered from 1)."""
    texts = (line.decode("utf-8") if isinstance(line, bytes) else line for line in lines)
    line_number = 0
    for text in texts:
        line_number += 1
        if not text.strip():
            continue
        if text.lstrip().startswith("["):
            whole = text + "".join(texts)
            try:
                parsed = json.loads(whole)
            except ValueError as error:
                raise ResultsError(f"not a JSON list of tasks: {error}") from None
            yield from enumerate(parsed if isinstance(parsed, list) else [parsed], start=1)
            return
        try:
            yield line_number, json.loads(text)
        except ValueError as error:
            raise ResultsError(f"line {line_number}: not JSON: {error}") from None


def read_tasks(lines: Iterable[bytes | str], job_name: str | None, stats: ReadStats | None) -> Iterator[LabeledImage]:
    """A tasks file: JSON lines (the pipeline's ``tasks.jsonl``) or Label Studio's own JSON export."""
    return read_numbered_tasks(_task_lines(lines), job_name, stats)


def read_numbered_tasks(
    tasks: Iterable[tuple[int, Any]], job_name: str | None, stats: ReadStats | None
) -> Iterator[LabeledImage]:
    """Tasks already parsed, each with its line number."""
    stats = stats if stats is not None else ReadStats()
    for line_number, task in tasks:
        if not isinstance(task, Mapping):
            raise ResultsError(f"line {line_number}: a task must be a JSON object")
        stats.lines += 1
        image = read_task(task, line_number, job_name, stats)
        stats.images += 1
        if image.failure_reason is not None:
            stats.failed.append((image.source_ref, image.failure_reason))
        yield image
