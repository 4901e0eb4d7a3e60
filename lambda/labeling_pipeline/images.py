"""Which uploaded objects the labeling backend can take (by its `Limits`), and the identity of an image version."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from labeling_pipeline.names import INPUT_PREFIX


class SkipReason(StrEnum):
    NOT_OBJECT_CREATED = "NotObjectCreated"
    OUTSIDE_INPUT_PREFIX = "OutsideInputPrefix"
    FOLDER_MARKER = "FolderMarker"
    NOT_AN_IMAGE = "NotAnImage"
    EMPTY_OBJECT = "EmptyObject"
    TOO_LARGE = "TooLarge"
    WRONG_BUCKET = "WrongBucket"
    SUPERSEDED = "Superseded"


class ImageRef(NamedTuple):
    """One version of one uploaded object: what the ledger assigns to exactly one job.

    A named tuple rather than a dataclass: a launch hashes and sorts thousands of them, and a tuple's
    hash and comparisons run in C (a frozen dataclass builds a tuple in Python for each). Images sort by
    bucket, key, version, so chunks and manifests are stable."""

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
    sequencer: str | None = None
    event_time: str = ""

    def image_ref(self) -> ImageRef:
        # Without versioning the ETag tells one upload of a key from the next; with it, the version id.
        return ImageRef(self.bucket, self.key, self.version_id or f"etag-{self.etag or 'none'}")


class ImageLimits(Protocol):
    @property
    def image_suffixes(self) -> tuple[str, ...]: ...

    @property
    def max_image_bytes(self) -> int: ...


def skip_reason(obj: UploadedObject, expected_bucket: str, limits: ImageLimits) -> SkipReason | None:
    """Why the backend cannot take this object, or None when it is a labelable image."""
    if not obj.event_name.startswith("ObjectCreated:"):
        return SkipReason.NOT_OBJECT_CREATED
    if obj.bucket != expected_bucket:
        return SkipReason.WRONG_BUCKET
    if not obj.key.startswith(INPUT_PREFIX):
        return SkipReason.OUTSIDE_INPUT_PREFIX
    if obj.key.endswith("/"):
        return SkipReason.FOLDER_MARKER
    if not obj.key.lower().endswith(limits.image_suffixes):
        return SkipReason.NOT_AN_IMAGE
    if obj.size <= 0:
        return SkipReason.EMPTY_OBJECT
    if obj.size > limits.max_image_bytes:
        return SkipReason.TOO_LARGE
    return None


def _sequencer_order(sequencer: str, width: int) -> str:
    # S3: "The sequencers can be of different lengths. So, to compare these values, first right pad the
    # shorter value with zeros, and then do a lexicographical comparison." Only events on one key compare.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
    return sequencer.upper().ljust(width, "0")


def superseded_versions(objects: Sequence[UploadedObject]) -> dict[int, UploadedObject]:
    """Among labelable uploads of one batch, the positions of those overwritten by a later upload of the same
    key, each with the upload that replaced it. A manifest names an object by key, never by version, so a
    job can only ever show workers the newest version: older versions in the batch are skipped, not labeled
    under the newest one's content. Order by S3's sequencer when every version has one, else by event time,
    else by position in the batch."""
    by_key: dict[tuple[str, str], list[int]] = {}
    for position, obj in enumerate(objects):
        by_key.setdefault((obj.bucket, obj.key), []).append(position)
    replaced: dict[int, UploadedObject] = {}
    for positions in by_key.values():
        if len(positions) < 2 or len({objects[p].image_ref() for p in positions}) < 2:
            continue  # one version, perhaps delivered more than once
        sequencers = [objects[p].sequencer for p in positions]
        if all(sequencers):
            width = max(len(s or "") for s in sequencers)
            newest = max(positions, key=lambda p: (_sequencer_order(objects[p].sequencer or "", width), p))
        else:
            newest = max(positions, key=lambda p: (objects[p].event_time, p))
        winner = objects[newest]
        for position in positions:
            if objects[position].image_ref() != winner.image_ref():
                replaced[position] = winner
    return replaced


def members_digest(images: list[ImageRef]) -> str:
    """A short, order-independent digest of a set of image versions (names a job)."""
    digest = hashlib.sha256()
    for image in sorted(set(images)):
        digest.update(image.image_id.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:12]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Bucket and key of an s3:// URI as manifests write it: the key verbatim, not URL-encoded, so a
    '#' or '?' in it is part of the key (a URL parser would cut the key there)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"not an s3:// URI: {uri}")
    return bucket, key.lstrip("/")
