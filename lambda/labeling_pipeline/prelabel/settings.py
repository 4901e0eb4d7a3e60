"""`labeling.prelabel`: the detector that proposes boxes before people label, and how its proposals are judged.

Off by default. Either an ONNX detector the user puts in S3 (`modelUri`) or an existing SageMaker AI endpoint
(`endpointName`), never both. `outputLayout` says what the model emits (detector.py reads each), `classMap` which
of the model's classes become which of the pipeline's labels (the rest are dropped), `minScore` the proposals
kept, `modelVersion` the name under which its proposals are kept and shown, `holdOutPercent` the share of each
job's images that get no proposals, so that every job compares labeling with and without them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StrictInt, StrictStr, model_validator

from labeling_pipeline.setting_rules import SettingsModel, between, length, rule

# SageMaker's EndpointName pattern (botocore's sagemaker model, shape EndpointName).
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$")
# Model versions name S3 keys and Label Studio's model_version: letters, digits, dot, dash, underscore.
MODEL_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OUTPUT_LAYOUTS = ("yolo", "yolo-nms", "boxes-scores-labels")


def _s3_uri(value: str) -> str | None:
    if not S3_URI.match(value):
        return f"{value!r} must be an s3://bucket/key URI"
    if not value.lower().endswith(".onnx"):
        return f"{value!r} must name an .onnx file (export the detector to ONNX first)"
    return None


def _endpoint(value: str) -> str | None:
    return None if ENDPOINT_NAME.match(value) else f"{value!r} is not a SageMaker endpoint name"


def _version(value: str) -> str | None:
    if MODEL_VERSION.match(value):
        return None
    return f"{value!r} must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit"


def _class_map(value: dict[str, str]) -> str | None:
    if not value:
        return "must map at least one of the model's class ids to a label"
    for model_class, label in value.items():
        if not model_class.isdigit():
            return f"keys are the model's class ids (0, 1, ...), got {model_class!r}"
        if not label.strip():
            return f"class {model_class} maps to an empty label"
    return None


def _unit(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"must be between 0 and 1, got {value}"


# Strict: a whole number is a number, a string or a boolean is not.
Fraction = Annotated[float, Field(strict=True), rule(_unit)]


class PrelabelSettings(SettingsModel):
    model_uri: Annotated[StrictStr, rule(_s3_uri)] | None = None
    endpoint_name: Annotated[StrictStr, rule(_endpoint)] | None = None
    output_layout: Literal["yolo", "yolo-nms", "boxes-scores-labels"] = "yolo"
    input_size: Annotated[StrictInt, between(32, 4096)] = 640
    class_map: Annotated[dict[StrictStr, StrictStr], rule(_class_map)]
    min_score: Fraction = 0.25
    iou_threshold: Fraction = 0.45
    max_detections: Annotated[StrictInt, between(1, 1000)] = 300
    model_version: Annotated[StrictStr, length(1, 64), rule(_version)]
    hold_out_percent: Annotated[StrictInt, between(0, 50)] = 10

    @model_validator(mode="after")
    def _one_model(self) -> PrelabelSettings:
        if (self.model_uri is None) == (self.endpoint_name is None):
            raise ValueError("give either modelUri (an ONNX detector in S3) or endpointName, not both")
        return self

    def model_classes(self) -> dict[int, str]:
        return {int(model_class): label for model_class, label in self.class_map.items()}

    def unknown_labels(self, labels: tuple[str, ...]) -> list[str]:
        """Labels the class map names that are not the pipeline's own."""
        return sorted(set(self.class_map.values()) - set(labels))
