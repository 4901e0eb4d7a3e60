"""The exactly-once protocol against moto (S3, DynamoDB) and the Ground Truth fake."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from labeling_pipeline.backends import JobSpec
from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import job_files
from tests.support import BUCKET, World, make_settings


def images(count: int, prefix: str = "images/set") -> list[ImageRef]:
    return [ImageRef(BUCKET, f"{prefix}/{index:05d}.jpg", f"v{index}") for index in range(count)]


def test_one_chunk_becomes_one_job_with_manifest_and_task_files(world: World) -> None:
    batch = images(3)
    outcomes = world.launcher().launch(batch)

    assert len(world.ground_truth.created_names) == 1
    name = world.ground_truth.created_names[0]
    assert re.fullmatch(r"bbox-20261125-[0-9a-f]{12}", name)
    assert {outcome.job_name for outcome in outcomes.values()} == {name}
    assert all(outcome.ok for outcome in outcomes.values())
    assert sorted(world.manifest_sources()) == sorted(image.source_ref for image in batch)
    files = job_files(name)
    labels = json.loads(world.s3.get_object(Bucket=BUCKET, Key=files.label_config)["Body"].read())
    assert labels == {"document-version": "2018-11-28", "labels": [{"label": "Dog"}, {"label": "Cat"}]}
    template = world.s3.get_object(Bucket=BUCKET, Key=files.template)["Body"].read().decode()
    assert "<crowd-bounding-box" in template and "&lt;animal&gt; &amp;" in template
    request = world.ground_truth.jobs[name.lower()]
    assert request["OutputConfig"]["S3OutputPath"] == f"s3://{BUCKET}/output/"
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(":432418664414:function:PRE-BoundingBox")
    assert world.ledger.job_created(name)


def test_same_images_delivered_again_create_no_second_job(world: World) -> None:
    batch = images(5)
    world.launcher().launch(batch)
    world.launcher().launch(list(reversed(batch)))
    world.launcher().launch(batch[:2])  # a retry that carries only part of the batch

    assert len(world.ground_truth.created_names) == 1
    assert Counter(world.manifest_sources()) == Counter(image.source_ref for image in batch)


def test_overlapping_batches_assign_each_image_to_one_job(world: World) -> None:
    first, second = images(6)[:4], images(6)[2:]
    world.launcher().launch(first)
    outcomes = world.launcher().launch(second)

    sources = Counter(world.manifest_sources())
    assert set(sources.values()) == {1}
    assert set(sources) == {image.source_ref for image in images(6)}
    assert len(world.ground_truth.created_names) == 2
    assert all(outcome.ok for outcome in outcomes.values())


def test_batch_over_the_per_job_maximum_is_split(world: World) -> None:
    batch = images(25)
    world.launcher(make_settings(maxImagesPerJob=10)).launch(batch)

    assert len(world.ground_truth.created_names) == 3
    assert Counter(world.manifest_sources()) == Counter(image.source_ref for image in batch)


def test_transient_failure_is_retryable_and_the_retry_creates_the_job_once(world: World) -> None:
    throttled = {"left": 1}

    def throttle_once(operation: str, _request: dict) -> str | None:
        if operation == "CreateLabelingJob" and throttled["left"]:
            throttled["left"] -= 1
            return "ThrottlingException"
        return None

    world.ground_truth.fault = throttle_once
    batch = images(4)
    first = world.launcher().launch(batch)
    assert all(not outcome.ok and outcome.retryable for outcome in first.values())
    assert world.ground_truth.created_names == []

    second = world.launcher().launch(batch)
    assert all(outcome.ok for outcome in second.values())
    assert len(world.ground_truth.created_names) == 1


def test_crash_between_manifest_and_create_is_finished_by_the_next_delivery(world: World) -> None:
    class Crash(Exception):
        pass

    class CrashingBackend:
        def create_job(self, spec: JobSpec) -> None:
            raise Crash("killed after writing the manifest")

    batch = images(4)
    with pytest.raises(Crash):
        launcher = world.launcher(backend=CrashingBackend())
        name = "bbox-20261125-deadbeef0000"
        launcher._put_json(job_files(name).candidates, [[i.bucket, i.key, i.version] for i in batch])
        for image in batch:
            world.ledger.claim(image, name)
        launcher.finish(name)
    # Messages come back one by one, in other groupings, on another day: each joins the half-made job.
    for image in batch[::-1]:
        outcomes = world.launcher().launch([image])
        assert outcomes[image].job_name == "bbox-20261125-deadbeef0000"
    assert world.ground_truth.created_names == ["bbox-20261125-deadbeef0000"]
    assert Counter(world.manifest_sources()) == Counter(image.source_ref for image in batch)


def test_concurrent_invocations_with_overlapping_batches(world: World) -> None:
    pool = images(60)
    batches = [pool[0:30], pool[20:50], pool[40:60], pool[10:40], pool[::3]]
    errors: list[BaseException] = []

    def run(batch: list[ImageRef]) -> None:
        try:
            outcomes = world.launcher().launch(batch)
            assert all(outcome.ok for outcome in outcomes.values())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    sources = Counter(world.manifest_sources())
    assert set(sources) == {image.source_ref for image in pool}
    assert set(sources.values()) == {1}
    assert len(set(world.ground_truth.created_names)) == len(world.ground_truth.created_names)


def test_permanent_rejection_is_not_retryable(world: World) -> None:
    world.ground_truth.fault = lambda op, _r: "ValidationException" if op == "CreateLabelingJob" else None
    outcomes = world.launcher().launch(images(2))
    assert all(not outcome.ok and not outcome.retryable for outcome in outcomes.values())


def test_ledger_failure_leaves_the_chunk_for_retry(world: World) -> None:
    class BrokenLedger:
        def claim(self, image: ImageRef, job_name: str) -> str:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "PutItem"
            )

    launcher = world.launcher()
    launcher._ledger = BrokenLedger()  # type: ignore[assignment]
    outcomes = launcher.launch(images(2))
    assert all(outcome.retryable for outcome in outcomes.values())
    assert world.ground_truth.created_names == []
