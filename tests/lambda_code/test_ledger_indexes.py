"""The ledger's attributes and secondary indexes (labeling_pipeline/ledger_schema.py) against moto."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from labeling_pipeline.images import ImageRef
from labeling_pipeline.ledger import Ledger, dataset_of
from tests.support import BUCKET, TABLE, World


def item(world: World, image: ImageRef) -> dict[str, str]:
    found = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{image.image_id}"}})["Item"]
    return {key: str(next(iter(value.values()))) for key, value in found.items()}


@pytest.mark.parametrize(
    ("key", "dataset"),
    [
        ("images/walk-2026/a.jpg", "walk-2026"),
        ("images/walk-2026/sub/folder/a.jpg", "walk-2026"),
        ("images/a b/c.jpg", "a b"),
        ("images/a.jpg", None),  # directly under images/: no dataset
        ("images//a.jpg", None),  # an empty first folder
        ("output/x/a.jpg", None),
    ],
)
def test_the_dataset_is_the_first_folder_under_images(key: str, dataset: str | None) -> None:
    assert dataset_of(key) == dataset


def test_claims_carry_their_dataset_and_job_items_their_record_type(world: World) -> None:
    walk, loose = ImageRef(BUCKET, "images/walk/a.jpg", "v1"), ImageRef(BUCKET, "images/a.jpg", "v1")
    world.ledger.claim_many([walk, loose], "job-1")
    assert item(world, walk)["dataset"] == "walk"
    assert "dataset" not in item(world, loose)
    world.ledger.mark_job_created("job-1", 2, "s3://b/jobs/job-1/input.manifest")
    assert [row["name"] for row in world.ledger.jobs(5)] == ["job-1"]
    assert [image for image, _ in world.ledger.images_of_dataset("walk")] == [walk]


def test_an_image_with_a_1024_byte_key_can_be_claimed_and_is_in_both_image_indexes(world: World) -> None:
    # An index sort key holds at most 1,024 bytes: with pk (image#bucket/key#version) as the sort key of an
    # image index, this claim would be refused (moto refuses it as DynamoDB does).
    key = "images/long/" + "k" * (1024 - len("images/long/") - 4) + ".jpg"
    image = ImageRef(BUCKET, key, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")
    assert len(key.encode()) == 1024
    assert world.ledger.claim(image, "job-1") == "job-1"
    assert [found for found, _ in world.ledger.images_of_job("job-1")] == [image]
    assert [found for found, _ in world.ledger.images_of_dataset("long")] == [image]


def test_recorded_results_keep_the_claim_and_stay_in_the_indexes(world: World) -> None:
    images = [ImageRef(BUCKET, f"images/walk/{n}.jpg", f"v{n}") for n in range(130)]
    world.ledger.claim_many(images, "job-1")
    claimed = item(world, images[0])
    other = ImageRef(BUCKET, "images/walk/other.jpg", "v1")
    world.ledger.claim(other, "job-2")
    unclaimed = ImageRef(BUCKET, "images/walk/never.jpg", "v1")

    outcomes: list[tuple[ImageRef, dict[str, Any]]] = [
        (image, {"status": "LABELED", "box_count": n % 3, "finished_at": "t"}) for n, image in enumerate(images)
    ]
    outcomes += [(other, {"status": "LABELED", "box_count": 1}), (unclaimed, {"status": "LABELED", "box_count": 1})]
    assert world.ledger.record_results("job-1", outcomes) == 130  # not another job's image, nor an unclaimed one

    recorded = item(world, images[0])
    assert recorded == {**claimed, "status": "LABELED", "box_count": "0", "finished_at": "t"}
    assert {"claimed_at", "dataset", "source_ref", "job_name"} <= set(recorded)
    assert "status" not in item(world, other)
    assert (
        world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{unclaimed.image_id}"}}).get("Item") is None
    )
    assert len(world.ledger.images_of_job("job-1", status="LABELED")) == 130
    assert Counter(fields["job_name"] for _, fields in world.ledger.images_of_dataset("walk")) == {
        "job-1": 130,
        "job-2": 1,
    }


def test_jobs_are_listed_newest_first_up_to_the_limit_in_one_query(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = iter(datetime(2026, 11, day, tzinfo=UTC) for day in (3, 1, 4, 2, 5))

    class Clock:
        @staticmethod
        def now(tz: Any = None) -> datetime:
            return next(times)

    monkeypatch.setattr("labeling_pipeline.ledger.datetime", Clock)
    for name in ("job-3", "job-1", "job-4", "job-2", "job-5"):
        world.ledger.mark_job_created(name, 7, f"s3://b/jobs/{name}/input.manifest")
    calls: list[dict[str, Any]] = []
    world.dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_: calls.append(params)
    )

    newest = world.ledger.jobs(3)
    assert [job["name"] for job in newest] == ["job-5", "job-4", "job-3"]
    assert newest[0] == {
        "name": "job-5",
        "status": "CREATED",
        "image_count": "7",
        "created_at": "2026-11-05T00:00:00+00:00",
    }
    assert len(calls) == 1 and calls[0]["Limit"] == 3 and calls[0]["ScanIndexForward"] is False
    assert [job["name"] for job in world.ledger.jobs(20)] == ["job-5", "job-4", "job-3", "job-2", "job-1"]


class PagingClient:
    """A DynamoDB client whose Query returns two items a page, to show the ledger follows LastEvaluatedKey."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.requests: list[dict[str, Any]] = []

    def query(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        start = int(request.get("ExclusiveStartKey", {}).get("at", {}).get("N", "0"))
        end = min(start + min(2, request.get("Limit", 2)), len(self.items))
        page: dict[str, Any] = {"Items": self.items[start:end]}
        if end < len(self.items):
            page["LastEvaluatedKey"] = {"at": {"N": str(end)}}
        return page


def test_queries_follow_last_evaluated_key() -> None:
    rows = [{"pk": {"S": f"image#{BUCKET}/images/walk/{n}.jpg#v1"}, "job_name": {"S": "job-1"}} for n in range(5)]
    client = PagingClient(rows)
    found = Ledger(client, TABLE).images_of_job("job-1")
    assert [image.key for image, _ in found] == [f"images/walk/{n}.jpg" for n in range(5)]
    assert len(client.requests) == 3
    jobs = PagingClient([{"pk": {"S": f"job#job-{n}"}, "record_type": {"S": "job"}} for n in range(5)])
    assert [job["name"] for job in Ledger(jobs, TABLE).jobs(3)] == ["job-0", "job-1", "job-2"]
    assert [request["Limit"] for request in jobs.requests] == [3, 1]  # no more read than asked for
