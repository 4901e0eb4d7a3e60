"""Parse SQS records that carry S3 event notifications into typed objects.

S3 URL-encodes keys in notifications (space as '+', other bytes as %XX):
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from labeling_pipeline.images import UploadedObject


class NotAnS3Event(ValueError):
    """The message body is not an S3 event notification (a poison message)."""


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str
    objects: tuple[UploadedObject, ...]
    is_test_event: bool = False


def parse_message(message_id: str, body: str) -> ParsedMessage:
    try:
        payload: Any = json.loads(body)
    except json.JSONDecodeError as error:
        raise NotAnS3Event(f"body is not JSON: {error.msg}") from error
    if not isinstance(payload, dict):
        raise NotAnS3Event("body is not a JSON object")
    # S3 sends this once when a notification configuration is saved.
    if payload.get("Event") == "s3:TestEvent":
        return ParsedMessage(message_id, (), is_test_event=True)
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        raise NotAnS3Event("body has no 'Records' list")
    objects = []
    try:
        for record in S3Event(payload).records:
            s3_object = record.s3.get_object
            bucket, key, event_name = record.s3.bucket.name, s3_object.key, record.event_name
            size = s3_object.get("size", 0)
            version_id, etag = s3_object.version_id, s3_object.etag
            if not all(isinstance(value, str) for value in (bucket, key, event_name, etag)):
                raise NotAnS3Event("record has a bucket name, key, event name or ETag that is not a string")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise NotAnS3Event(f"record has an object size that is not a whole number: {size!r}")
            if version_id is not None and not isinstance(version_id, str):
                raise NotAnS3Event("record has a version id that is not a string")
            sequencer = s3_object.get("sequencer")
            event_time = record.get("eventTime", "")
            if not isinstance(sequencer, str | None) or not isinstance(event_time, str):
                raise NotAnS3Event("record has a sequencer or event time that is not a string")
            objects.append(
                UploadedObject(
                    bucket, unquote_plus(key), size, event_name, version_id, etag, sequencer or None, event_time
                )
            )
    except NotAnS3Event:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise NotAnS3Event(f"record is not an S3 event record: {error!r}") from error
    return ParsedMessage(message_id, tuple(objects))
