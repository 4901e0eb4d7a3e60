"""What names a job and which images go into it (the same for every backend)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from labeling_pipeline.images import ImageRef, members_digest


def job_name(prefix: str, when: datetime, members: list[ImageRef]) -> str:
    """<prefix>-<yyyymmdd>-<digest>: readable, valid for the API, and fixed by the job's members,
    so that a retried CreateLabelingJob for the same images reuses the same name."""
    # Lower case: the service compares names case-insensitively and job ARNs (and so events) carry them
    # in lower case.
    return f"{prefix.lower()}-{when:%Y%m%d}-{members_digest(members)}"


def chunks(images: Sequence[ImageRef], size: int) -> list[list[ImageRef]]:
    ordered = sorted(set(images))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]
