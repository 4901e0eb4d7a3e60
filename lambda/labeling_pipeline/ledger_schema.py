"""The ledger table's key and its one secondary index, defined once.

The stack declares the table from this (stacks/constructs/launch_pipeline.py), the `Ledger` writes and
queries the index, and the tests build the same table in moto (tests/support.py);
tests/stacks/test_pipeline_stack.py checks that the synthesized template says the same. No dependencies,
so that the stacks can import it.

One global secondary index, ``ledger-groups``: partition ``group_key``, sort ``group_sort``. It is sparse:
an item is in it only when it has both attributes, and only two kinds of item have them:

- every job item: ``group_key`` = ``jobs``, ``group_sort`` = its ``created_at`` (ISO 8601 in UTC, so the
  string order is the time order). ``status --limit N`` is one Query of the ``jobs`` group, newest first.
- an image item whose key is in a dataset (``images/<NAME>/...``, see `labeling_pipeline.ledger.dataset_of`):
  ``group_key`` = ``dataset#<NAME>``, ``group_sort`` = its claim time. ``export --dataset NAME`` is a
  paged Query of that group. An image directly under ``images/`` is in no group.

Why one index and not one per question: CloudFormation (DynamoDB's UpdateTable) creates or deletes at most
one global secondary index per table update ("Cannot perform more than one GSI creation or deletion in a
single update"), so a deployed table, which has none, takes this one in one deploy. A job's images are not
indexed at all: they are the job's candidate list in S3 read against the ledger by key
(`labeling_pipeline.launcher.job_images`), which is consistent and costs the size of the job.

Sizes: an index partition key holds at most 2,048 bytes and a sort key 1,024, and DynamoDB refuses a table
write whose index key is longer. ``group_sort`` is a timestamp (32 bytes). ``group_key`` holds a dataset
name, a folder inside an S3 key of at most 1,024 bytes, so with ``dataset#`` it stays under 1,024 bytes,
half of MAX_GROUP_KEY_BYTES: no S3 key can make a claim fail, and the name needs no cap or hash
(tests/lambda_code/test_ledger_indexes.py claims an image whose dataset name fills a 1,024-byte key).
``pk`` is never an index key: ``image#<bucket>/<key>#<version>`` can pass 1,024 bytes.

Projection INCLUDE of what the two queries read besides the keys (``pk``, ``group_key``, ``group_sort``):
``status`` and ``image_count`` of a job, ``job_name`` and ``status`` of an image. Never ALL: a finished
job's item holds its summary (up to 300 KB), which would be copied into the index and make a page of 20 jobs
several 1 MB query pages. An attribute added here later is a new index (a projection cannot be changed in
place), so the list is exactly what the code reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PARTITION_KEY = "pk"

GROUPS_INDEX = "ledger-groups"
GROUP_KEY = "group_key"
GROUP_SORT = "group_sort"
JOBS_GROUP = "jobs"  # group_key of every job item
DATASET_GROUP_PREFIX = "dataset#"  # group_key of an image item in a dataset: dataset#<name>
MAX_GROUP_KEY_BYTES = 2048  # DynamoDB's limit on a partition key value, an index's included


def dataset_group(dataset: str) -> str:
    return DATASET_GROUP_PREFIX + dataset


@dataclass(frozen=True)
class LedgerIndex:
    name: str
    partition_key: str
    sort_key: str
    projected: tuple[str, ...]  # the non-key attributes projected (INCLUDE)

    def projection(self) -> dict[str, Any]:
        return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projected)}

    def key_schema(self) -> list[dict[str, str]]:
        return [
            {"AttributeName": self.partition_key, "KeyType": "HASH"},
            {"AttributeName": self.sort_key, "KeyType": "RANGE"},
        ]


LEDGER_INDEX = LedgerIndex(GROUPS_INDEX, GROUP_KEY, GROUP_SORT, ("status", "image_count", "job_name"))


def create_table_arguments() -> dict[str, Any]:
    """KeySchema, AttributeDefinitions and GlobalSecondaryIndexes as CreateTable takes them (every key is a
    string), with on-demand billing as the stack sets it."""
    names = [PARTITION_KEY, LEDGER_INDEX.partition_key, LEDGER_INDEX.sort_key]
    return {
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in names],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LEDGER_INDEX.name,
                "KeySchema": LEDGER_INDEX.key_schema(),
                "Projection": LEDGER_INDEX.projection(),
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
