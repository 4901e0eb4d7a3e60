"""Fuzzing every entry point's parser with hypothesis: anything gets a clear error or a result, never
an unexpected exception (which, in a Lambda, would mean a crash loop)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from labeling_pipeline.backends import JobEvent, NotAJobEvent
from labeling_pipeline.backends.ground_truth.results import ManifestError, read_output_manifest
from labeling_pipeline.backends.registry import names, parts
from labeling_pipeline.images import skip_reason
from labeling_pipeline.s3_events import NotAnS3Event, parse_message

# Every registered backend: its job-event parser and its image limits are entry points too.
BACKENDS = [parts(name) for name in names()]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def s3_record(key: Any, size: Any, event_name: Any, bucket: Any) -> dict[str, Any]:
    return {"eventName": event_name, "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_sqs_bodies_parse_or_are_refused_clearly(body: str) -> None:
    try:
        parsed = parse_message("m", body)
    except NotAnS3Event as error:
        assert str(error)
        return
    for obj in parsed.objects:
        for backend in BACKENDS:
            skip_reason(obj, "bucket", backend.limits)  # classifying any parsed object never raises


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(
            s3_record,
            key=st.text(max_size=40) | json_values,
            size=json_values,
            event_name=st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"]) | json_values,
            bucket=st.text(max_size=10) | json_values,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_s3_records_with_odd_fields(records: list[dict[str, Any]]) -> None:
    try:
        parsed = parse_message("m", json.dumps({"Records": records}))
    except NotAnS3Event:
        return
    for obj in parsed.objects:
        assert isinstance(obj.key, str) and isinstance(obj.size, int)
        for backend in BACKENDS:
            skip_reason(obj, "bucket", backend.limits)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_eventbridge_events_parse_or_are_ignored(event: Any) -> None:
    if not isinstance(event, dict):
        event = {"detail": event}
    for backend in BACKENDS:
        try:
            parsed = backend.parse_job_event(event)
        except NotAJobEvent:
            continue
        assert isinstance(parsed, JobEvent)
        assert isinstance(parsed.job_name, str) and isinstance(parsed.reported_state, str)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=50),
    st.dictionaries(st.sampled_from(["labels", "labels-metadata", "source-ref"]), json_values, max_size=3),
)
def test_output_manifest_lines_parse_or_name_the_line(prefix: str, line: dict[str, Any]) -> None:
    for text in (prefix, json.dumps(line)):
        try:
            list(read_output_manifest([text]))
        except ManifestError as error:
            assert str(error).startswith("line 1:")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_job_event_source_and_type_must_match(detail: Any) -> None:
    event = {"source": "aws.s3", "detail-type": "Object Created", "resources": ["arn:aws:s3:::b"], "detail": detail}
    for backend in BACKENDS:
        try:
            backend.parse_job_event(event)
            raise AssertionError(f"{backend.name}: an S3 event was taken for a labeling-job event")
        except NotAJobEvent:
            pass
