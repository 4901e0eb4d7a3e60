"""Ground Truth's own run-time settings and its limits on the shared ones.

Limits from AWS documentation (checked 2026-11):
- input limits (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-input.html): at most 50 labels
  for bounding boxes, each at most 256 characters;
- CreateLabelingJob (API reference and botocore's SageMaker model): task time limit 30-28,800 s for image
  tasks, availability 60 s to 30 days for a private workforce, 1-5000 concurrent tasks, 1-5 keywords
  matching ``[A-Za-z0-9]+( [A-Za-z0-9]+)*``, the label attribute name pattern of 127 characters at most
  and not ending in ``-metadata`` or ``-ref``. With labeling.prelabel the proposals go under
  ``<labelAttributeName>-proposals`` (task_inputs.PROPOSALS_SUFFIX), which must keep within those 127 characters.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StrictInt, StrictStr, model_validator

from labeling_pipeline.backends.ground_truth.task_inputs import PROPOSALS_SUFFIX
from labeling_pipeline.settings import Name, SettingsModel, between, length

MAX_BOUNDING_BOX_LABELS = 50
MAX_LABEL_LENGTH = 256
MIN_TASK_TIME_LIMIT = 30
MAX_TASK_TIME_LIMIT_IMAGE = 28_800
MIN_TASK_AVAILABILITY = 60
MAX_TASK_AVAILABILITY_PRIVATE = 30 * 24 * 3600
MAX_CONCURRENT_TASKS = 5000
MAX_LABEL_ATTRIBUTE_NAME = 127
KEYWORD_PATTERN = re.compile(r"^[A-Za-z0-9]+( [A-Za-z0-9]+)*$")


class GroundTruthSettings(SettingsModel):
    task_keywords: tuple[StrictStr, ...] = ("Images", "Bounding Box")
    task_time_limit_seconds: Annotated[StrictInt, between(MIN_TASK_TIME_LIMIT, MAX_TASK_TIME_LIMIT_IMAGE)] = 600
    task_availability_seconds: Annotated[StrictInt, between(MIN_TASK_AVAILABILITY, MAX_TASK_AVAILABILITY_PRIVATE)] = (
        10 * 24 * 3600
    )
    max_concurrent_task_count: Annotated[StrictInt, between(1, MAX_CONCURRENT_TASKS)] = 1000
    label_attribute_name: Annotated[Name, length(1, MAX_LABEL_ATTRIBUTE_NAME)] = "labels"

    @model_validator(mode="after")
    def _ground_truth_limits(self) -> GroundTruthSettings:
        labels: tuple[str, ...] = getattr(self, "labels", ())
        if len(labels) > MAX_BOUNDING_BOX_LABELS:
            raise ValueError(
                f"labels: Ground Truth allows at most {MAX_BOUNDING_BOX_LABELS} labels for bounding boxes, "
                f"got {len(labels)}"
            )
        for label in labels:
            if len(label) > MAX_LABEL_LENGTH:
                raise ValueError(f"labels: label {label[:20]!r}... is longer than {MAX_LABEL_LENGTH} characters")
        if not 1 <= len(self.task_keywords) <= 5:
            raise ValueError(f"taskKeywords: must hold 1 to 5 keywords, got {len(self.task_keywords)}")
        for keyword in self.task_keywords:
            if not KEYWORD_PATTERN.match(keyword):
                raise ValueError(f"taskKeywords: {keyword!r} must be letters and digits separated by single spaces")
        if self.label_attribute_name.endswith(("-metadata", "-ref")):
            raise ValueError("labelAttributeName: must not end in '-metadata' or '-ref' (Ground Truth reserves them)")
        longest = MAX_LABEL_ATTRIBUTE_NAME - len(PROPOSALS_SUFFIX)
        if getattr(self, "prelabel", None) is not None and len(self.label_attribute_name) > longest:
            raise ValueError(
                f"labelAttributeName: at most {longest} characters with prelabel: the proposals go under "
                f"'<labelAttributeName>{PROPOSALS_SUFFIX}', which Ground Truth limits to {MAX_LABEL_ATTRIBUTE_NAME}"
            )
        return self
