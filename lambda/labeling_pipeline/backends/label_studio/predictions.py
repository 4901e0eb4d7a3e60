"""A detector's proposals as Label Studio predictions: what a job's tasks carry into their import.

Each image with a proposal that is not held out gets one prediction in the same import request as its task:
``{"model_version", "score", "result"}``, the result one rectangle region per proposed box, in percent of the
proposal's image size (the size a browser shows), with the project's control and image names, the box's score
and an id derived from the model version, the image version and the box's position (so a retry sends the same
ids). The prediction's score is the mean of its boxes' scores: the data manager's "Prediction score" column,
to sort the tasks whose proposals the model was least sure of first.

A region Label Studio cannot show is never sent: a box is clipped to the image and dropped when nothing is left
of it or a coordinate is not a number, and a label that is not one of the pipeline's is dropped (with
``fflag_feat_utc_210_prediction_validation_15082025`` on, Label Studio's LabelInterface.validate_prediction
refuses a whole import for one such region).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labeling_pipeline.backends.label_studio.project import CONTROL_NAME
from labeling_pipeline.backends.label_studio.results import RECTANGLE_RESULT, PrelabelMark, TaskData
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box, clip_box
from labeling_pipeline.prelabel.proposals import Proposal
from labeling_pipeline.settings import PipelineSettings

REGION_ID_LENGTH = 10


def region_id(model_version: str, image: ImageRef, index: int) -> str:
    digest = hashlib.sha256(f"{model_version}\n{image.image_id}\n{index}".encode()).hexdigest()
    return digest[:REGION_ID_LENGTH]


def _finite(*values: float) -> bool:
    return all(math.isfinite(value) for value in values)


def rectangle_regions(
    boxes: Sequence[Box], width: int, height: int, labels: Collection[str], region_ids: Callable[[int], str]
) -> list[dict[str, Any]]:
    """Boxes in pixels of a width x height image as Label Studio rectangle regions in percent, with the project's
    control and image names, each box's confidence as its score, and `region_ids(index)` as its id. A box Label
    Studio cannot show is left out (module docstring)."""
    regions = []
    for index, box in enumerate(boxes):
        if box.label not in labels or not _finite(box.left, box.top, box.width, box.height):
            continue
        clipped = clip_box(box.label, box.left, box.top, box.width, box.height, None, width, height, None)
        if clipped is None:
            continue
        x = clipped.left * 100 / width
        y = clipped.top * 100 / height
        # Rounding may take x + width a hair past 100; Label Studio checks each of them against 100.
        percent_width = min(clipped.width * 100 / width, 100 - x)
        percent_height = min(clipped.height * 100 / height, 100 - y)
        if not (percent_width > 0 and percent_height > 0):
            continue
        region: dict[str, Any] = {
            "id": region_ids(index),
            "type": RECTANGLE_RESULT,
            "from_name": CONTROL_NAME,
            "to_name": TaskData.IMAGE,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                "x": x,
                "y": y,
                "width": percent_width,
                "height": percent_height,
                "rotation": 0,
                RECTANGLE_RESULT: [box.label],
            },
        }
        confidence = box.confidence
        if confidence is not None and math.isfinite(confidence):
            region["score"] = confidence
        regions.append(region)
    return regions


def prediction_of(regions: list[dict[str, Any]], model_version: str) -> dict[str, Any]:
    """One prediction of these regions; its score, the mean of theirs (the data manager's "Prediction score")."""
    made: dict[str, Any] = {"model_version": model_version, "result": regions}
    scores = [region["score"] for region in regions if "score" in region]
    if scores:
        made["score"] = sum(scores) / len(scores)
    return made


def prediction(proposal: Proposal, model_version: str, labels: Collection[str]) -> dict[str, Any] | None:
    """The proposal as one prediction; None when the image's size is unknown (no percent can be computed).
    A proposal whose boxes are all dropped is an empty prediction: the model saw nothing to box."""
    width, height = proposal.image_width, proposal.image_height
    if width <= 0 or height <= 0:
        return None
    regions = rectangle_regions(
        proposal.boxes, width, height, labels, lambda index: region_id(model_version, proposal.image, index)
    )
    return prediction_of(regions, model_version)


@dataclass(frozen=True)
class Prelabels:
    """What a job's tasks carry of the detector's proposals: each image's mark and prediction."""

    model_version: str | None = None
    marks: dict[ImageRef, str] = field(default_factory=dict)
    predictions: dict[ImageRef, dict[str, Any]] = field(default_factory=dict)


def prelabels(proposals: Mapping[ImageRef, Proposal], settings: PipelineSettings) -> Prelabels:
    """None of them when pre-labels are off; a proposal of another model version (written before the setting
    changed) is not shown: Label Studio shows workers only the project's model version."""
    if settings.prelabel is None:
        return Prelabels()
    version = settings.prelabel.model_version
    marks: dict[ImageRef, str] = {}
    made: dict[ImageRef, dict[str, Any]] = {}
    for image, proposal in proposals.items():
        if proposal.model_version != version:
            continue
        if proposal.held_out:
            marks[image] = PrelabelMark.HELD_OUT
            continue
        found = prediction(proposal, version, settings.labels)
        if found is not None:
            marks[image] = PrelabelMark.PROPOSED
            made[image] = found
    return Prelabels(version, marks, made)


def has_prediction(task: Mapping[str, Any], model_version: str) -> bool:
    """Whether the task (as the data manager lists it with ``fields=all``) holds a prediction of that version."""
    return any(
        isinstance(found, Mapping) and found.get("model_version") == model_version
        for found in task.get("predictions") or []
    )
