"""Pure functions of the generic runtime: event parsing, the image filter, job names and chunks, S3 URIs.

Ground Truth's task inputs (manifest, label categories, worker template) are in ground_truth/test_task_inputs.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import botocore.session
import pytest

from labeling_pipeline.backends import Limits
from labeling_pipeline.backends.ground_truth import LIMITS
from labeling_pipeline.images import (
    ImageRef,
    SkipReason,
    UploadedObject,
    skip_reason,
    split_s3_uri,
    superseded_versions,
)
from labeling_pipeline.job_naming import chunks, job_name
from labeling_pipeline.s3_events import NotAnS3Event, parse_message

BUCKET = "labeling-bucket-example"

# A real S3 event notification (structure from the S3 user guide, "Event message structure"),
# as S3 sends it: the key URL-encoded, spaces as '+'.
REAL_EVENT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-25T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.5"},
            "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "images-to-queue",
                "bucket": {
                    "name": BUCKET,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": f"arn:aws:s3:::{BUCKET}",
                },
                "object": {
                    "key": "images/walk/dog+1+%C3%A9t%C3%A9%2B%28copy%29.JPG",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5",
                },
            },
        }
    ]
}


def uploaded(key: str, size: int = 10, event: str = "ObjectCreated:Put", bucket: str = BUCKET) -> UploadedObject:
    return UploadedObject(bucket, key, size, event, None, "etag1")


def test_real_s3_event_is_parsed_and_key_decoded() -> None:
    parsed = parse_message("m1", json.dumps(REAL_EVENT))
    [obj] = parsed.objects
    assert obj.key == "images/walk/dog 1 été+(copy).JPG"
    assert obj.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert obj.image_ref().image_id == f"{BUCKET}/images/walk/dog 1 été+(copy).JPG#096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert skip_reason(obj, BUCKET, LIMITS) is None


def test_test_event_is_recognised() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert parse_message("m", body).is_test_event


@pytest.mark.parametrize(
    "body", ["", "not json", "[]", "{}", '{"Records": []}', '{"Records": [{"s3": {}}]}', '{"Records": "x"}']
)
def test_bodies_that_are_not_s3_events_raise_a_clear_error(body: str) -> None:
    with pytest.raises(NotAnS3Event):
        parse_message("m", body)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (uploaded("images/a.jpg"), None),
        (uploaded("images/a.JPEG"), None),
        (uploaded("images/deep/er/a.Png"), None),
        (uploaded("images/a.gif"), SkipReason.NOT_AN_IMAGE),
        (uploaded("images/jpg"), SkipReason.NOT_AN_IMAGE),
        (uploaded("images/a.jpg", size=0), SkipReason.EMPTY_OBJECT),
        (uploaded("images/a.jpg", size=LIMITS.max_image_bytes + 1), SkipReason.TOO_LARGE),
        (uploaded("images/a.jpg", size=LIMITS.max_image_bytes), None),
        (uploaded("images/folder/"), SkipReason.FOLDER_MARKER),
        (uploaded("output/a.jpg"), SkipReason.OUTSIDE_INPUT_PREFIX),
        (uploaded("imagesX/a.jpg"), SkipReason.OUTSIDE_INPUT_PREFIX),
        (uploaded("images/a.jpg", event="ObjectRemoved:Delete"), SkipReason.NOT_OBJECT_CREATED),
        (uploaded("images/a.jpg", bucket="someone-else"), SkipReason.WRONG_BUCKET),
    ],
)
def test_skip_reasons(obj: UploadedObject, reason: SkipReason | None) -> None:
    # Ground Truth's limits: .jpg, .jpeg and .png of at most 40 MB.
    assert skip_reason(obj, BUCKET, LIMITS) == reason


def test_ground_truth_limits_are_the_documented_ones() -> None:
    documented = Limits(image_suffixes=(".jpg", ".jpeg", ".png"), max_image_bytes=40 * 1024 * 1024)
    assert documented == LIMITS


def test_the_image_filter_applies_the_backend_s_limits() -> None:
    """Suffixes and size come from the backend, nothing from Ground Truth is built into the filter."""
    tiff_only = Limits(image_suffixes=(".tif", ".tiff"), max_image_bytes=100)
    assert skip_reason(uploaded("images/a.TIFF", size=100), BUCKET, tiff_only) is None
    assert skip_reason(uploaded("images/a.jpg"), BUCKET, tiff_only) == SkipReason.NOT_AN_IMAGE
    assert skip_reason(uploaded("images/a.tif", size=101), BUCKET, tiff_only) == SkipReason.TOO_LARGE
    # The backend-independent rules come first, whatever the limits.
    assert skip_reason(uploaded("output/a.tif"), BUCKET, tiff_only) == SkipReason.OUTSIDE_INPUT_PREFIX
    assert skip_reason(uploaded("images/a.tif", size=0), BUCKET, tiff_only) == SkipReason.EMPTY_OBJECT


def test_job_names_are_valid_readable_and_fixed_by_members() -> None:
    pattern = (
        botocore.session.get_session().get_service_model("sagemaker").shape_for("LabelingJobName").metadata["pattern"]
    )
    members = [ImageRef(BUCKET, f"images/{i}.jpg", "v") for i in range(3)]
    when = datetime(2026, 11, 25, tzinfo=UTC)
    name = job_name("x" * 41, when, members)
    assert len(name) == 63 and re.fullmatch(pattern, name)
    assert name.startswith("x" * 41 + "-20261125-")
    assert job_name("bbox", when, list(reversed(members))) == job_name("bbox", when, members)
    assert job_name("bbox", when, members[:2]) != job_name("bbox", when, members)


def test_chunks_split_and_deduplicate() -> None:
    images = [ImageRef(BUCKET, f"images/{i:02d}.jpg", "v") for i in range(25)]
    parts = chunks(images + images[:5], 10)
    assert [len(part) for part in parts] == [10, 10, 5]
    assert sorted(image for part in parts for image in part) == sorted(images)


def test_the_newest_version_of_a_key_wins_by_sequencer_then_event_time() -> None:
    def upload(version: str, sequencer: str | None, event_time: str = "", key: str = "images/a.jpg") -> UploadedObject:
        return UploadedObject("bucket", key, 10, "ObjectCreated:Put", version, "etag", sequencer, event_time)

    # Sequencers of different lengths compare after right-padding the shorter with zeros (S3's rule):
    # "0055AED6DCD90281E6" is 0x0055AED6DCD90281E6 and "0055AED6DCD9028200" is later; "0056" pads to "0056000…".
    batch = [upload("v1", "0055AED6DCD90281E6"), upload("v3", "0056"), upload("v2", "0055AED6DCD9028200")]
    replaced = superseded_versions(batch)
    assert {position: winner.version_id for position, winner in replaced.items()} == {0: "v3", 2: "v3"}
    # Without a sequencer on every version, the later event time wins; then the later position.
    by_time = [upload("v1", None, "2026-11-25T12:00:02.000Z"), upload("v2", "00AA", "2026-11-25T12:00:01.000Z")]
    assert {p: w.version_id for p, w in superseded_versions(by_time).items()} == {1: "v1"}
    # One version delivered twice, or two different keys: nothing is superseded.
    assert superseded_versions([upload("v1", "01"), upload("v1", "01")]) == {}
    assert superseded_versions([upload("v1", "01"), upload("v2", "02", key="images/b.jpg")]) == {}


def test_an_s3_uri_keeps_url_special_characters_in_its_key() -> None:
    # Manifests write keys verbatim: '#', '?' and '%' are part of the key, as S3 allows.
    assert split_s3_uri("s3://bucket/images/walk #1?.jpg") == ("bucket", "images/walk #1?.jpg")
    assert split_s3_uri("s3://bucket/images/100%25.png") == ("bucket", "images/100%25.png")
    for not_s3 in ("https://bucket/key.jpg", "s3:///key.jpg", "bucket/key.jpg"):
        with pytest.raises(ValueError):
            split_s3_uri(not_s3)
