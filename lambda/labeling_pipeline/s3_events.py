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
            objects.append(
                UploadedObject(
                    bucket=record.s3.bucket.name,
                    key=unquote_plus(s3_object.key),
                    size=int(s3_object.get("size") or 0),
                    event_name=record.event_name,
                    version_id=s3_object.version_id,
                    etag=s3_object.etag,
                )
            )
    except (KeyError, TypeError, ValueError) as error:
        raise NotAnS3Event(f"record is not an S3 event record: {error!r}") from error
    return ParsedMessage(message_id, tuple(objects))
