"""Ground Truth's job-end signal: the EventBridge "Labeling Job State Change" event, parsed into a JobEvent."""

from __future__ import annotations

from typing import Any

import pytest

from labeling_pipeline.backends import JobEvent, NotAJobEvent
from labeling_pipeline.backends.ground_truth import PARTS
from labeling_pipeline.backends.ground_truth.events import DETAIL_TYPE, EVENT_SOURCE, parse_job_event
from labeling_pipeline.backends.registry import parts
from sandbox.emulator import ACCOUNT
from tests.support import REGION, job_state_change_event

NAME = "bbox-20261125-0123456789ab"


def event(**changes: Any) -> dict[str, Any]:
    """The event as EventBridge delivers it, with some fields changed."""
    return job_state_change_event(NAME) | changes


def test_the_documented_names() -> None:
    assert (EVENT_SOURCE, DETAIL_TYPE) == ("aws.sagemaker", "SageMaker Ground Truth Labeling Job State Change")


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped", "InProgress"])
def test_a_state_change_names_the_job_and_the_reported_status(status: str) -> None:
    assert parse_job_event(event(detail={"LabelingJobStatus": status})) == JobEvent(NAME, status)


def test_the_registry_hands_out_this_parser() -> None:
    assert parts("ground-truth") is PARTS
    assert PARTS.parse_job_event is parse_job_event


def test_other_resources_beside_the_job_are_left_out() -> None:
    resources = [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelers", event()["resources"][0]]
    assert parse_job_event(event(resources=resources)) == JobEvent(NAME, "Completed")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "aws.s3"}, r"^not a labeling-job state change: aws\.s3 / SageMaker Ground Truth"),
        ({"detail-type": "SageMaker Training Job State Change"}, r"^not a labeling-job state change: aws\.sagemaker"),
        ({"resources": []}, r"^event names no single labeling job or no status$"),
        (
            {"resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/a", "arn:aws:x:labeling-job/b"]},
            r"^event names no single labeling job or no status$",
        ),
        ({"detail": {}}, r"^event names no single labeling job or no status$"),
        ({"detail": {"LabelingJobStatus": 3}}, r"^event names no single labeling job or no status$"),
        ({"detail": "Completed"}, r"^malformed event: AttributeError"),
        ({"resources": None}, r"^malformed event: TypeError"),
    ],
)
def test_anything_else_is_not_a_job_event(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(NotAJobEvent, match=message):
        parse_job_event(event(**changes))


def test_an_event_without_a_source_is_not_a_job_event() -> None:
    with pytest.raises(NotAJobEvent, match=r"^malformed event: KeyError\('source'\)$"):
        parse_job_event({"detail": {"LabelingJobStatus": "Completed"}})
