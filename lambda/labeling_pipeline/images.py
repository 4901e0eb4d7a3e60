"""Which uploaded objects Ground Truth can label, and the identity of an image version.

Limits from the Ground Truth developer guide, "Input data limits" and "Supported data formats"
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-supported-data-formats.html): image tasks take
.jpg, .jpeg and .png files of at most 40 MB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

INPUT_PREFIX = "images/"
JOBS_PREFIX = "jobs/"
OUTPUT_PREFIX = "output/"
EXPORTS_PREFIX = "exports/"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_IMAGE_BYTES = 40 * 1024 * 1024


class SkipReason(StrEnum):
    NOT_OBJECT_CREATED = "NotObjectCreated"
    OUTSIDE_INPUT_PREFIX = "OutsideInputPrefix"
    FOLDER_MARKER = "FolderMarker"
    NOT_AN_IMAGE = "NotAnImage"
    EMPTY_OBJECT = "EmptyObject"
    TOO_LARGE = "TooLarge"
    WRONG_BUCKET = "WrongBucket"


@dataclass(frozen=True, order=True)
class ImageRef:
    """One version of one uploaded object: what the ledger assigns to exactly one job."""

    bucket: str
    key: str
    version: str

    @property
    def image_id(self) -> str:
        return f"{self.bucket}/{self.key}#{self.version}"

    @property
    def source_ref(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def from_image_id(cls, image_id: str) -> ImageRef:
        """Inverse of image_id: bucket names hold no '/', version ids no '#'."""
        location, version = image_id.rsplit("#", 1)
        bucket, key = location.split("/", 1)
        return cls(bucket, key, version)


@dataclass(frozen=True)
class UploadedObject:
    """What an S3 ObjectCreated notification says about one object (key already URL-decoded)."""

    bucket: str
    key: str
    size: int
    event_name: str
    version_id: str | None
    etag: str

    def image_ref(self) -> ImageRef:
        # Without versioning the ETag tells one upload of a key from the next; with it, the version id.
        return ImageRef(self.bucket, self.key, self.version_id or f"etag-{self.etag or 'none'}")


def skip_reason(obj: UploadedObject, expected_bucket: str) -> SkipReason | None:
    """Why Ground Truth cannot take this object, or None when it is a labelable image."""
    if not obj.event_name.startswith("ObjectCreated:"):
        return SkipReason.NOT_OBJECT_CREATED
    if obj.bucket != expected_bucket:
        return SkipReason.WRONG_BUCKET
    if not obj.key.startswith(INPUT_PREFIX):
        return SkipReason.OUTSIDE_INPUT_PREFIX
    if obj.key.endswith("/"):
        return SkipReason.FOLDER_MARKER
    if not obj.key.lower().endswith(IMAGE_SUFFIXES):
        return SkipReason.NOT_AN_IMAGE
    if obj.size <= 0:
        return SkipReason.EMPTY_OBJECT
    if obj.size > MAX_IMAGE_BYTES:
        return SkipReason.TOO_LARGE
    return None


def members_digest(images: list[ImageRef]) -> str:
    """A short, order-independent digest of a set of image versions (names a job)."""
    digest = hashlib.sha256()
    for image in sorted(set(images)):
        digest.update(image.image_id.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:12]
