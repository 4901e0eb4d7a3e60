"""Which images get no proposals: a share of every job's images, so that each job measures labeling with and
without them on its own data. Chosen by a hash of the image's key and version, so that a retry, another function
and the report all agree, and so that an image uploaded again (a new version) is drawn again."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def held_out(source_ref: str, version: str, percent: int) -> bool:
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{source_ref}\n{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS < percent * (BUCKETS // 100)
