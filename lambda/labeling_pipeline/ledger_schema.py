"""The ledger table's key and secondary indexes, defined once.

The stack declares the table from this (stacks/constructs/launch_pipeline.py), the `Ledger` queries these
indexes, and the tests build the same table in moto (tests/support.py); tests/stacks/test_pipeline_stack.py
checks that the synthesized template says the same. No dependencies, so that the stacks can import it.

The three global secondary indexes are sparse: an item appears in an index only when it has the index's
key attributes.

- ``job-images``: partition ``job_name``, no sort key. Every image item carries ``job_name`` (from its
  claim), so this lists a job's images; job items have no ``job_name``. Projection ALL: image items are
  small (well under the 1 KB that a write unit covers), so projecting everything costs the same writes
  as projecting the five attributes the callers read, and a caller that reads one more needs no change.
- ``jobs-by-creation``: partition ``record_type`` (the constant ``job``, only on job items), sort
  ``created_at``. Projection INCLUDE ``status`` and ``image_count``: a finished job's item also holds its
  summary (up to 300 KB), which ALL would copy into the index and which would make a page of 20 jobs
  several 1 MB query pages.
- ``dataset-images``: partition ``dataset`` (the first folder under ``images/``; see
  `labeling_pipeline.ledger.dataset_of`), sort ``claimed_at``. Projection ALL, as for job-images.

Why the image indexes do not sort on ``pk``: an index sort key holds at most 1,024 bytes, and DynamoDB
refuses a table write whose index key is longer. ``pk`` is ``image#<bucket>/<key>#<version>`` and an S3 key
alone may be 1,024 bytes, so sorting on ``pk`` would make the claim of an image with a long key fail. No
caller needs the images of a job in order; a dataset's are ordered by claim time, which helps nothing but
reading and gives DynamoDB a sort key to split a busy dataset's partition on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PARTITION_KEY = "pk"

JOB_IMAGES_INDEX = "job-images"
JOBS_BY_CREATION_INDEX = "jobs-by-creation"
DATASET_IMAGES_INDEX = "dataset-images"

JOB_RECORD_TYPE = "job"  # record_type of every job item: the one partition of jobs-by-creation


@dataclass(frozen=True)
class LedgerIndex:
    name: str
    partition_key: str
    sort_key: str | None
    projected: tuple[str, ...] | None  # non-key attributes projected (INCLUDE); None projects ALL

    def projection(self) -> dict[str, Any]:
        if self.projected is None:
            return {"ProjectionType": "ALL"}
        return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projected)}

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.partition_key, "KeyType": "HASH"}]
        if self.sort_key is not None:
            schema.append({"AttributeName": self.sort_key, "KeyType": "RANGE"})
        return schema


LEDGER_INDEXES = (
    LedgerIndex(JOB_IMAGES_INDEX, "job_name", None, None),
    LedgerIndex(JOBS_BY_CREATION_INDEX, "record_type", "created_at", ("status", "image_count")),
    LedgerIndex(DATASET_IMAGES_INDEX, "dataset", "claimed_at", None),
)


def create_table_arguments() -> dict[str, Any]:
    """KeySchema, AttributeDefinitions and GlobalSecondaryIndexes as CreateTable takes them (every key is a
    string), with on-demand billing as the stack sets it."""
    names = [PARTITION_KEY]
    for index in LEDGER_INDEXES:
        names += [name for name in (index.partition_key, index.sort_key) if name and name not in names]
    return {
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in names],
        "GlobalSecondaryIndexes": [
            {"IndexName": index.name, "KeySchema": index.key_schema(), "Projection": index.projection()}
            for index in LEDGER_INDEXES
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
