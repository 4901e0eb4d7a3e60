"""The ledger's attributes, its one secondary index (labeling_pipeline/ledger_schema.py) and how a job's
images are found (by key, from its candidate list), against moto."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import candidates_key, job_images
from labeling_pipeline.ledger import Ledger, dataset_of
from labeling_pipeline.ledger_schema import GROUP_KEY, GROUP_SORT, MAX_GROUP_KEY_BYTES, dataset_group
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


def test_claims_in_a_dataset_and_job_items_carry_their_index_group(world: World) -> None:
    walk, loose = ImageRef(BUCKET, "images/walk/a.jpg", "v1"), ImageRef(BUCKET, "images/a.jpg", "v1")
    world.ledger.claim_many([walk, loose], "job-1")
    claimed = item(world, walk)
    assert claimed["dataset"] == "walk"
    assert (claimed[GROUP_KEY], claimed[GROUP_SORT]) == ("dataset#walk", claimed["claimed_at"])
    assert not {"dataset", GROUP_KEY, GROUP_SORT} & set(item(world, loose))  # in no group
    world.ledger.mark_job_created("job-1", 2, "s3://b/jobs/job-1/input.manifest")
    job = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "job#job-1"}})["Item"]
    assert (job[GROUP_KEY]["S"], job[GROUP_SORT]["S"]) == ("jobs", job["created_at"]["S"])
    assert [row["name"] for row in world.ledger.jobs(5)] == ["job-1"]
    assert [image for image, _ in world.ledger.images_of_dataset("walk")] == [walk]


def test_the_table_has_one_index_whose_keys_are_short_enough_for_any_s3_key(world: World) -> None:
    [index] = world.dynamodb.describe_table(TableName=TABLE)["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "ledger-groups"
    # A 1,024-byte key (S3's limit) whose dataset name fills it: the group key stays under 1,024 bytes.
    name = "d" * (1024 - len("images/") - len("/k.jpg"))
    key = f"images/{name}/k.jpg"
    image = ImageRef(BUCKET, key, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")
    assert len(key.encode()) == 1024 and len(dataset_group(name).encode()) < 1024 < MAX_GROUP_KEY_BYTES
    assert world.ledger.claim(image, "job-1") == "job-1"
    assert [found for found, _ in world.ledger.images_of_dataset(name)] == [image]
    # moto refuses an index partition key over 2,048 bytes, as DynamoDB does: the check above is a real one.
    with pytest.raises(ClientError, match="Size of hashkey has exceeded"):
        world.dynamodb.put_item(
            TableName=TABLE,
            Item={"pk": {"S": "image#x"}, GROUP_KEY: {"S": "g" * 2049}, GROUP_SORT: {"S": "t"}},
        )


def test_an_image_with_a_1024_byte_key_can_be_claimed_and_found(world: World) -> None:
    # An index sort key holds at most 1,024 bytes: with pk (image#bucket/key#version) as the index's sort key,
    # this claim would be refused (moto refuses it as DynamoDB does).
    key = "images/long/" + "k" * (1024 - len("images/long/") - 4) + ".jpg"
    image = ImageRef(BUCKET, key, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")
    assert len(key.encode()) == 1024
    assert world.ledger.claim(image, "job-1") == "job-1"
    assert world.ledger.members("job-1", [image]) == {image: None}
    assert [found for found, _ in world.ledger.images_of_dataset("long")] == [image]


def test_a_jobs_images_are_its_candidates_that_the_ledger_gives_it(world: World) -> None:
    images = [ImageRef(BUCKET, f"images/walk/{n}.jpg", f"v{n}") for n in range(150)]
    taken, never = ImageRef(BUCKET, "images/walk/taken.jpg", "v1"), ImageRef(BUCKET, "images/walk/never.jpg", "v1")
    world.ledger.claim(taken, "job-2")
    world.ledger.claim_many(images, "job-1")
    world.s3.put_object(
        Bucket=BUCKET,
        Key=candidates_key("job-1"),
        Body=json.dumps([[i.bucket, i.key, i.version] for i in [taken, *images, never]]).encode(),
    )
    world.ledger.record_results("job-1", [(images[0], {"status": "NEEDS_RELABEL", "failure_reason": "x"})])
    calls: Counter[str] = Counter()
    world.dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))

    found = job_images(world.s3, BUCKET, world.ledger, "job-1")
    assert list(found) == images  # not another job's image, nor an unclaimed one; in the candidates' order
    assert found[images[0]] == "NEEDS_RELABEL" and set(list(found.values())[1:]) == {None}
    assert calls == {"BatchGetItem": 2}  # 152 candidates, 100 keys a call, consistent: no index
    with pytest.raises(ClientError, match="NoSuchKey"):
        job_images(world.s3, BUCKET, world.ledger, "job-9")


def test_recorded_results_keep_the_claim_and_stay_in_the_index(world: World) -> None:
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
    assert {"claimed_at", "dataset", "source_ref", "job_name", GROUP_KEY, GROUP_SORT} <= set(recorded)
    assert "status" not in item(world, other)
    assert (
        world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{unclaimed.image_id}"}}).get("Item") is None
    )
    assert set(world.ledger.members("job-1", images).values()) == {"LABELED"}
    rows = list(world.ledger.images_of_dataset("walk"))
    assert Counter(fields["job_name"] for _, fields in rows) == {"job-1": 130, "job-2": 1}
    assert Counter(fields.get("status") for _, fields in rows) == {"LABELED": 130, None: 1}
    # What the index holds of an image: its keys and the projected job_name and status, never more.
    assert set(rows[0][1]) <= {"pk", "job_name", "status", "claimed_at"}


def test_recording_the_results_of_a_claim_from_before_the_index_gives_it_its_group(world: World) -> None:
    image = ImageRef(BUCKET, "images/walk/old.jpg", "v1")
    world.dynamodb.put_item(  # a claim as the code before the index wrote it: no dataset, no group
        TableName=TABLE,
        Item={
            "pk": {"S": f"image#{image.image_id}"},
            "job_name": {"S": "job-1"},
            "source_ref": {"S": image.source_ref},
            "claimed_at": {"S": "2026-10-01T00:00:00+00:00"},
        },
    )
    assert world.ledger.record_results("job-1", [(image, {"status": "LABELED", "box_count": 2})]) == 1
    recorded = item(world, image)
    assert (recorded["dataset"], recorded[GROUP_KEY], recorded[GROUP_SORT]) == (
        "walk",
        "dataset#walk",
        "2026-10-01T00:00:00+00:00",
    )
    assert [(found, fields["status"]) for found, fields in world.ledger.images_of_dataset("walk")] == [
        (image, "LABELED")
    ]


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


def _grouped(pk: str, group: str, n: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, GROUP_KEY: {"S": group}, GROUP_SORT: {"S": f"2026-11-0{n + 1}"}}


def test_queries_follow_last_evaluated_key() -> None:
    rows = [_grouped(f"image#{BUCKET}/images/walk/{n}.jpg#v1", "dataset#walk", n) for n in range(5)]
    client = PagingClient(rows)
    found = list(Ledger(client, TABLE).images_of_dataset("walk"))
    assert [image.key for image, _ in found] == [f"images/walk/{n}.jpg" for n in range(5)]
    assert found[1][1] == {"pk": rows[1]["pk"]["S"], "claimed_at": "2026-11-02"}
    assert len(client.requests) == 3
    jobs = PagingClient([_grouped(f"job#job-{n}", "jobs", n) for n in range(5)])
    assert [job["name"] for job in Ledger(jobs, TABLE).jobs(3)] == ["job-0", "job-1", "job-2"]
    assert [request["Limit"] for request in jobs.requests] == [3, 1]  # no more read than asked for


# --- items written before the index, and `bbox-labeling ledger upgrade` -----------------------------------------


def _put(world: World, **attributes: str) -> None:
    world.dynamodb.put_item(TableName=TABLE, Item={name: {"S": value} for name, value in attributes.items()})


def _image_pk(key: str, version: str = "v1") -> str:
    return f"image#{BUCKET}/{key}#{version}"


def old_items(world: World) -> None:
    """Items as the code before the index wrote them (and two as the short-lived three-index code did)."""
    _put(
        world,
        pk="job#job-old-1",
        status="COMPLETED",
        manifest_uri="s3://b/m",
        created_at="2026-10-01T00:00:00+00:00",
        finished_at="2026-10-04T00:00:00+00:00",
        summary="{}",
    )
    _put(world, pk="job#job-old-2", status="CREATED", created_at="2026-10-02T00:00:00+00:00")
    _put(world, pk="job#job-old-3", status="CREATED", record_type="job", created_at="2026-10-03T00:00:00+00:00")
    # Labeled before the index: the outcome was written without claimed_at or dataset.
    _put(world, pk=_image_pk("images/walk/a.jpg"), job_name="job-old-1", status="LABELED", finished_at="2026-10-04")
    # The same, of a job whose item is not there: its finish time is the best estimate.
    _put(world, pk=_image_pk("images/walk/b.jpg"), job_name="job-gone", status="LABELED", finished_at="2026-10-05")
    _put(world, pk=_image_pk("images/walk/c.jpg"), job_name="job-old-2", claimed_at="2026-10-02T00:00:00.5+00:00")
    _put(
        world,
        pk=_image_pk("images/walk/d.jpg"),
        job_name="job-old-3",
        claimed_at="2026-10-03T00:00:00+00:00",
        dataset="walk",
    )
    _put(world, pk=_image_pk("images/loose.jpg"), job_name="job-old-2", claimed_at="2026-10-02T00:00:00+00:00")


class SmallPages:
    """The test's DynamoDB client, with Scan pages of two items, and a hook before each UpdateItem."""

    def __init__(self, client: Any, before_update: Any = None) -> None:
        self._client = client
        self._before_update = before_update
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**request: Any) -> Any:
            self.calls[name] += 1
            if name == "scan":
                request["Limit"] = 2
            if name == "update_item" and self._before_update is not None:
                self._before_update(request)
            return method(**request)

        return call


def test_the_upgrade_gives_items_from_before_the_index_their_group(world: World) -> None:
    old_items(world)
    world.ledger.claim(ImageRef(BUCKET, "images/walk/new.jpg", "v1"), "job-new")  # grouped when written
    assert world.ledger.jobs(10) == [] and [i.key for i, _ in world.ledger.images_of_dataset("walk")] == [
        "images/walk/new.jpg"
    ]
    client = SmallPages(world.dynamodb)
    pages: list[int] = []

    report = Ledger(client, TABLE).upgrade_items(pages.append)
    assert (report.examined, report.updated, report.in_no_group, report.already_grouped) == (9, 7, 1, 0)
    # Five pages of two; each page whose labeled images lack claimed_at reads their jobs' times by key.
    assert client.calls == {"scan": 5, "update_item": 7, "batch_get_item": 2}
    assert sum(pages) == 9
    assert [(job["name"], job["status"], job["created_at"]) for job in world.ledger.jobs(10)] == [
        ("job-old-3", "CREATED", "2026-10-03T00:00:00+00:00"),
        ("job-old-2", "CREATED", "2026-10-02T00:00:00+00:00"),
        ("job-old-1", "COMPLETED", "2026-10-01T00:00:00+00:00"),
    ]
    rows = {image.key: fields for image, fields in world.ledger.images_of_dataset("walk")}
    assert {key: (fields["job_name"], fields["claimed_at"]) for key, fields in rows.items()} == {
        "images/walk/a.jpg": ("job-old-1", "2026-10-01T00:00:00+00:00"),  # its job's creation, just after the claim
        "images/walk/b.jpg": ("job-gone", "2026-10-05"),
        "images/walk/c.jpg": ("job-old-2", "2026-10-02T00:00:00.5+00:00"),
        "images/walk/d.jpg": ("job-old-3", "2026-10-03T00:00:00+00:00"),
        "images/walk/new.jpg": ("job-new", rows["images/walk/new.jpg"]["claimed_at"]),
    }
    # Only the group was added: the summary, statuses and everything else are as they were.
    assert item(world, ImageRef(BUCKET, "images/walk/a.jpg", "v1")) == {
        "pk": _image_pk("images/walk/a.jpg"),
        "job_name": "job-old-1",
        "status": "LABELED",
        "finished_at": "2026-10-04",
        GROUP_KEY: "dataset#walk",
        GROUP_SORT: "2026-10-01T00:00:00+00:00",
    }
    again = world.ledger.upgrade_items()
    assert (again.updated, again.in_no_group, again.already_grouped) == (0, 1, 0)


def test_the_upgrade_never_overwrites_a_group_written_meanwhile(world: World) -> None:
    old_items(world)

    def pipeline_first(request: dict[str, Any]) -> None:
        # Between the Scan and this update, the item got its group from elsewhere (another run, a writer).
        if request["Key"]["pk"]["S"] == "job#job-old-2":
            world.dynamodb.update_item(
                TableName=TABLE,
                Key=request["Key"],
                UpdateExpression="SET group_key = :k, group_sort = :s",
                ExpressionAttributeValues={":k": {"S": "jobs"}, ":s": {"S": "written-meanwhile"}},
            )

    report = Ledger(SmallPages(world.dynamodb, pipeline_first), TABLE).upgrade_items()
    assert (report.updated, report.already_grouped) == (6, 1)
    job = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "job#job-old-2"}})["Item"]
    assert job[GROUP_SORT]["S"] == "written-meanwhile"
