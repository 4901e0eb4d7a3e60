"""`bbox-labeling status` and `relabel` read the ledger through its index and by key, never by scanning it:
the DynamoDB (and S3) calls they make are the same with 1,000 and with 200,000 unrelated ledger items.
`status` is one Query of the index's jobs group; `relabel` reads the job's candidate list from S3 and its
images' owners and statuses by key (no index at all).

The unrelated items (other jobs' images, in 40 other datasets, and those jobs' records, with the attributes
the pipeline writes) go straight into moto's table storage. Measured here: through the API
(BatchWriteItem, 25 a call) 20,000 items took 7.9 s, so 200,000 about 80 s; moto's backend put_item 2.2 s
for 20,000 (about 22 s); stored directly, 9 s for 199,000 on a loaded 2-core machine, and the whole test
about 20 s. They are items like any other to the API afterwards (the test counts the jobs group and one
dataset's group through the index). The calls counted are the API calls of the CLI's own DynamoDB and S3
clients (botocore's before-call event, once per call).

With the scanning code this replaced, the same test counted 1 Scan for status at 1,000 items and 64 at
200,000 (moto returns 1 MB pages, as DynamoDB does)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from labeling_cli import main as cli
from sandbox.emulator import ACCOUNT
from tests.cli.conftest import Deployed
from tests.cli.test_cli import launched_job
from tests.support import BUCKET, REGION, TABLE

IMAGES_PER_OTHER_JOB = 500
SUMMARY = json.dumps(
    {"status": "Completed", "images": IMAGES_PER_OTHER_JOB, "boxesPerLabel": {"Dog": 700}}
    | {"failedObjects": [{"sourceRef": f"s3://{BUCKET}/images/other/IMG_{n:06d}.jpg", "reason": "x"} for n in range(8)]}
)


def _other_job(number: int) -> str:
    return f"bbox-20261101-{number:012x}"


def _unrelated_items(start: int, stop: int) -> list[dict[str, Any]]:
    """Items of other, finished jobs: each job's record, then its images (labeled, in 40 datasets)."""
    items: list[dict[str, Any]] = []
    for number in range(start, stop):
        job = _other_job(number // IMAGES_PER_OTHER_JOB)
        created_at = f"2026-11-01T{number // 360_000:02d}:00:00+00:00"
        if number % IMAGES_PER_OTHER_JOB == 0:
            items.append(
                {
                    "pk": {"S": f"job#{job}"},
                    "status": {"S": "COMPLETED"},
                    "image_count": {"N": str(IMAGES_PER_OTHER_JOB)},
                    "manifest_uri": {"S": f"s3://{BUCKET}/jobs/{job}/input.manifest"},
                    "created_at": {"S": created_at},
                    "group_key": {"S": "jobs"},
                    "group_sort": {"S": created_at},
                    "finished_at": {"S": "2026-11-02T00:00:00+00:00"},
                    "summary": {"S": SUMMARY},
                }
            )
        key = f"images/other-{number % 40:02d}/IMG_{number:06d}.jpg"
        items.append(
            {
                "pk": {"S": f"image#{BUCKET}/{key}#{number:032x}"},
                "job_name": {"S": job},
                "source_ref": {"S": f"s3://{BUCKET}/{key}"},
                "claimed_at": {"S": "2026-11-01T00:00:00.000000+00:00"},
                "dataset": {"S": f"other-{number % 40:02d}"},
                "group_key": {"S": f"dataset#other-{number % 40:02d}"},
                "group_sort": {"S": "2026-11-01T00:00:00.000000+00:00"},
                "status": {"S": "LABELED"},
                "box_count": {"N": str(number % 4)},
                "finished_at": {"S": "2026-11-02T00:00:00+00:00"},
            }
        )
    return items


def _store(items: list[dict[str, Any]]) -> None:
    """Into moto's table as its PutItem stores them: an Item per primary key, each attribute a DynamoType in
    the Item's LimitedSizeDict. The dict is filled with dict.update, which skips LimitedSizeDict's
    per-attribute check of the item's size (it measures the whole item again at each attribute: storing
    200,000 items took 37 s with it, 9 s without); these items are under 1 KB, far from the 400 KB limit."""
    table = dynamodb_backends[ACCOUNT][REGION].get_table(TABLE)
    for attributes in items:
        key = DynamoType(attributes["pk"])
        item = Item(key, None, {})
        dict.update(item.attrs, {name: DynamoType(value) for name, value in attributes.items()})
        table.items[key] = item  # type: ignore[assignment]  # moto's own put_item says the same


class CountingSession:
    """The deployed session, counting the API calls of every DynamoDB and S3 client the CLI makes from it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.region_name = inner.region_name
        self.calls: Counter[str] = Counter()

    def get_credentials(self) -> Any:
        return self._inner.get_credentials()

    def client(self, service: str, **kwargs: Any) -> Any:
        client = self._inner.client(service, **kwargs)
        if service in ("dynamodb", "s3"):
            client.meta.events.register(f"before-call.{service}", self._count)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1


def _calls(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> Counter[str]:
    session = CountingSession(deployed.session)
    monkeypatch.setattr(cli, "_session", lambda args: session)
    code = cli.main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return session.calls


def test_status_and_relabel_make_the_same_calls_with_1000_and_200000_unrelated_items(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = deployed.world
    name, images = launched_job(deployed, count=30)
    calls: dict[int, tuple[Counter[str], Counter[str]]] = {}
    stored = 0
    for unrelated in (1_000, 200_000):
        _store(_unrelated_items(stored, unrelated))
        stored = unrelated
        # The job stopped before any image was labeled: all 30 wait for relabel (again, on the second round).
        world.ledger.record_results(
            name, [(image, {"status": "NEEDS_RELABEL", "failure_reason": "Stopped"}) for image in images]
        )
        calls[unrelated] = (
            _calls(deployed, monkeypatch, capsys, "status"),
            _calls(deployed, monkeypatch, capsys, "relabel", name),
        )

    # The stored items are real to the API: the jobs group and one dataset's group, through the index.
    def count(group: str) -> int:
        request: dict[str, Any] = {
            "TableName": TABLE,
            "IndexName": "ledger-groups",
            "KeyConditionExpression": "group_key = :group",
            "ExpressionAttributeValues": {":group": {"S": group}},
            "Select": "COUNT",
        }
        counted = 0
        while True:  # 1 MB pages
            page = world.dynamodb.query(**request)
            counted += page["Count"]
            if "LastEvaluatedKey" not in page:
                return counted
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    assert count("jobs") == 200_000 // IMAGES_PER_OTHER_JOB + 1  # and the launched job
    assert count("dataset#other-07") == 200_000 // 40
    assert len(dynamodb_backends[ACCOUNT][REGION].get_table(TABLE).items) > 200_000

    status, relabel = calls[200_000]
    assert calls[1_000] == calls[200_000]
    assert status == {"dynamodb:Query": 1}  # the newest 20 jobs, one page of the index's jobs group
    # the job's candidate list, its images' owners and statuses by key, one copy and status update per image
    assert relabel == {
        "s3:GetObject": 1,
        "dynamodb:BatchGetItem": 1,
        "s3:CopyObject": 30,
        "dynamodb:UpdateItem": 30,
    }
