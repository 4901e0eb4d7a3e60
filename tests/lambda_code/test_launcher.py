"""The exactly-once protocol against moto (S3, DynamoDB) and the Ground Truth fake (the backend)."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from labeling_pipeline import ledger as ledger_module
from labeling_pipeline.backends import BackendError, JobRequest, StartOutcomeUnknown, TransientBackendError
from labeling_pipeline.backends.ground_truth.service import GroundTruthBackend, TaskFiles
from labeling_pipeline.backends.ground_truth.task_inputs import LABEL_CONFIG_FILE, MANIFEST_FILE, TEMPLATE_FILE
from labeling_pipeline.images import ImageRef
from labeling_pipeline.launcher import START_LEASE_SECONDS, Launcher, candidates_key, job_prefix
from labeling_pipeline.ledger import Ledger
from tests.support import BUCKET, FIXED_NOW, REGION, ROLE_ARN, TABLE, WORKTEAM_ARN, Serialized, World, make_settings


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
    prefix = job_prefix(name)
    assert prefix == f"jobs/{name}/"
    candidates = json.loads(world.s3.get_object(Bucket=BUCKET, Key=candidates_key(name))["Body"].read())
    assert candidates == [[image.bucket, image.key, image.version] for image in batch]
    labels = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + LABEL_CONFIG_FILE)["Body"].read())
    assert labels == {"document-version": "2018-11-28", "labels": [{"label": "Dog"}, {"label": "Cat"}]}
    template = world.s3.get_object(Bucket=BUCKET, Key=prefix + TEMPLATE_FILE)["Body"].read().decode()
    assert "<crowd-bounding-box" in template and "&lt;animal&gt; &amp;" in template
    request = world.ground_truth.jobs[name.lower()]
    assert request["OutputConfig"]["S3OutputPath"] == f"s3://{BUCKET}/output/"
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(":432418664414:function:PRE-BoundingBox")
    assert world.ledger.job_created(name)


def test_the_job_is_marked_created_with_the_input_the_backend_reports(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked: list[tuple[str, int, str]] = []
    mark = world.ledger.mark_job_created

    def record(job_name: str, image_count: int, input_uri: str) -> None:
        marked.append((job_name, image_count, input_uri))
        mark(job_name, image_count, input_uri)

    monkeypatch.setattr(world.ledger, "mark_job_created", record)
    world.launcher().launch(images(3))

    [name] = world.ground_truth.created_names
    # Ground Truth's input is the manifest it wrote under the job's prefix.
    assert marked == [(name, 3, f"s3://{BUCKET}/{job_prefix(name)}{MANIFEST_FILE}")]


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

    class CrashingBackend(GroundTruthBackend):
        """Writes the job's task inputs as the real backend does, then dies before CreateLabelingJob."""

        def _create(
            self, name: str, files: TaskFiles, *, adjustment: bool = False, tags: Sequence[tuple[str, str]] = ()
        ) -> None:
            raise Crash("killed after writing the manifest")

    crashing = CrashingBackend(
        world.sagemaker, world.s3, make_settings(), region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
    )
    batch = images(4)
    name = "bbox-20261125-deadbeef0000"
    with pytest.raises(Crash):
        launcher = world.launcher(backend=crashing)
        launcher._put_json(candidates_key(name), [[i.bucket, i.key, i.version] for i in batch])
        for image in batch:
            world.ledger.claim(image, name)
        launcher.finish(name)
    assert world.s3.get_object(Bucket=BUCKET, Key=job_prefix(name) + MANIFEST_FILE)["ContentLength"] > 0
    assert world.ground_truth.created_names == []
    assert not world.ledger.job_created(name)
    # Messages come back one by one, in other groupings, on another day: each joins the half-made job.
    for image in batch[::-1]:
        outcomes = world.launcher().launch([image])
        assert outcomes[image].job_name == "bbox-20261125-deadbeef0000"
    assert world.ground_truth.created_names == ["bbox-20261125-deadbeef0000"]
    assert Counter(world.manifest_sources()) == Counter(image.source_ref for image in batch)


def test_concurrent_invocations_with_overlapping_batches(world: World) -> None:
    world.ledger = Ledger(Serialized(world.dynamodb), TABLE)  # see Serialized
    # Versioned, as the stack's bucket is. Two launchers finishing the same job write its task files to the
    # same keys; in an unversioned bucket moto closes the replaced object's buffer while the other thread
    # still reads it (moto/s3/utils.py, setlist), an I/O error that S3 cannot produce.
    world.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    pool = images(60)
    batches = [pool[0:30], pool[20:50], pool[40:60], pool[10:40], pool[::3]]
    errors: list[BaseException] = []

    def run(batch: list[ImageRef]) -> None:
        try:
            outcomes = world.launcher().launch(batch)
            failed = {outcome.error for outcome in outcomes.values() if not outcome.ok}
            assert failed == set()
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


# --- the batched claim -----------------------------------------------------------------------------
# moto 5.2.5 implements TransactWriteItems with per-item CancellationReasons, and returns the old item
# under ReturnValuesOnConditionCheckFailure=ALL_OLD. It never reports TransactionConflict or throttling
# (it has no concurrency), so those are injected below as DynamoDB's wire response, which botocore then
# parses; everything else is moto's own answer.


@dataclass
class CallLog:
    """Counts DynamoDB operations (and TransactWriteItems sizes) as they leave botocore."""

    operations: Counter[str] = field(default_factory=Counter)
    transaction_sizes: list[int] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.operations[model.name] += 1
        if model.name == "TransactWriteItems":
            self.transaction_sizes.append(len(params["TransactItems"]))


def log_calls(world: World) -> CallLog:
    log = CallLog()
    world.dynamodb.meta.events.register("provide-client-params.dynamodb", log)
    return log


def cancel_transactions(world: World, reasons: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]) -> None:
    """Answer TransactWriteItems with DynamoDB's TransactionCanceledException body whenever `reasons`
    returns a list (one reason per item, as DynamoDB does); otherwise let moto answer. The body goes
    through botocore's own JSON parser and modeled-error step, as an HTTP answer would."""

    def before_call(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params["body"]
        items = (body if isinstance(body, dict) else json.loads(body))["TransactItems"]
        answer = reasons(items)
        if answer is None:
            return None
        raw = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "CancellationReasons": answer,
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                f"[{', '.join(reason['Code'] for reason in answer)}]",
            }
        ).encode()
        headers = {"x-amzn-ErrorType": "TransactionCanceledException"}
        response = {"status_code": 400, "headers": headers, "body": raw}
        parser = create_parser("json")
        parsed: dict[str, Any] = parser.parse(response, model.output_shape)
        parsed.update(parser.parse(response, model.service_model.shape_for_error_code(parsed["Error"]["Code"])))
        return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, headers, None), parsed

    world.dynamodb.meta.events.register_first("before-call.dynamodb.TransactWriteItems", before_call)


def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr(ledger_module.time, "sleep", pauses.append)
    return pauses


def stored(world: World, image: ImageRef) -> dict[str, Any]:
    item = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{image.image_id}"}})["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


def test_first_claim_wins_across_two_jobs_with_overlapping_images(world: World) -> None:
    pool = images(250)
    first = world.ledger.claim_many(pool[:150], "job-a")
    second = world.ledger.claim_many(pool[100:], "job-b")

    assert first == dict.fromkeys(pool[:150], "job-a")
    assert second == {image: "job-a" if image in pool[:150] else "job-b" for image in pool[100:]}
    assert world.ledger.owners(pool) == {image: "job-a" if image in pool[:150] else "job-b" for image in pool}
    assert stored(world, pool[120])["job_name"] == "job-a"  # the losing claim wrote nothing


def test_repeated_claim_by_the_same_job_is_a_no_op(world: World) -> None:
    pool = images(120)
    world.ledger.claim_many(pool, "job-a")
    before = stored(world, pool[7])
    world.ledger.set_image_status(pool[7], "NEEDS_RELABEL")  # the job ended meanwhile
    log = log_calls(world)

    again = world.ledger.claim_many(list(reversed(pool)), "job-a")

    # Each transaction is cancelled with every item owned: the owner comes back with the reasons.
    assert log.operations == Counter({"TransactWriteItems": 2})
    assert again == dict.fromkeys(pool, "job-a")
    assert stored(world, pool[7]) == {**before, "status": "NEEDS_RELABEL"}  # not overwritten


def test_claims_of_more_than_100_images_span_several_transactions(world: World) -> None:
    log = log_calls(world)
    pool = images(250)
    owners = world.ledger.claim_many(pool + pool[:10], "job-a")  # duplicates are claimed once

    assert owners == dict.fromkeys(pool, "job-a")
    assert log.transaction_sizes == [100, 100, 50]
    assert world.ledger.owners(pool) == dict.fromkeys(pool, "job-a")


def test_a_conflicting_transaction_is_sent_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = no_sleep(monkeypatch)
    pool = images(5)
    world.ledger.claim_many(pool[:1], "job-a")
    conflicts = {"left": 2}

    def conflict_on_the_third_item(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if not conflicts["left"]:
            return None
        conflicts["left"] -= 1
        reasons = [{"Code": "None"} for _ in items]
        reasons[2] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item."}
        return reasons

    cancel_transactions(world, conflict_on_the_third_item)
    log = log_calls(world)
    owners = world.ledger.claim_many(pool, "job-b")

    assert owners == {image: "job-a" if image == pool[0] else "job-b" for image in pool}
    assert log.operations["TransactWriteItems"] == 4  # 2 conflicts, 1 cancelled by job-a's image, 1 written
    assert len(pauses) == 2
    assert world.ledger.owners(pool) == owners


def test_persistent_throttling_surfaces_as_a_retryable_failure(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = no_sleep(monkeypatch)
    cancel_transactions(world, lambda items: [{"Code": "ThrottlingError", "Message": "slow down"} for _ in items])

    with pytest.raises(ClientError) as raised:
        world.ledger.claim_many(images(3), "job-a")
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert len(pauses) == ledger_module.CLAIM_ATTEMPTS - 1

    outcomes = world.launcher().launch(images(3))
    assert all(not outcome.ok and outcome.retryable for outcome in outcomes.values())
    assert world.ground_truth.created_names == []
    assert world.ledger.owners(images(3)) == dict.fromkeys(images(3))  # nothing half-written


def test_owner_missing_from_the_cancellation_is_read_consistently(world: World) -> None:
    pool = images(3)
    world.ledger.claim_many(pool[1:2], "job-a")
    answered = {"done": False}

    def without_item(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if answered["done"]:
            return None
        answered["done"] = True
        reasons = [{"Code": "None"} for _ in items]
        reasons[1] = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
        return reasons

    cancel_transactions(world, without_item)
    log = log_calls(world)
    assert world.ledger.claim_many(pool, "job-b") == {pool[0]: "job-b", pool[1]: "job-a", pool[2]: "job-b"}
    assert log.operations == Counter({"TransactWriteItems": 2, "BatchGetItem": 1})


def test_launch_calls_grow_with_jobs_not_images(world: World) -> None:
    log = log_calls(world)
    world.launcher(make_settings(maxImagesPerJob=125)).launch(images(250))
    # Two jobs: claims 100 to a call; per job, one read of the owners' state and one PutItem (mark created).
    assert log.operations == Counter({"TransactWriteItems": 4, "BatchGetItem": 2, "PutItem": 2})
    assert log.transaction_sizes == [100, 25, 100, 25]
    assert len(world.ground_truth.created_names) == 2

    log.operations.clear()
    outcomes = world.launcher(make_settings(maxImagesPerJob=250)).launch(images(250))  # redelivered, regrouped
    # One chunk: its claims are all cancelled with their owners, and one read finds both jobs created.
    assert log.operations == Counter({"TransactWriteItems": 3, "BatchGetItem": 1})
    assert len({outcome.job_name for outcome in outcomes.values()}) == 2
    assert len(world.ground_truth.created_names) == 2


def test_a_late_duplicate_of_an_ended_jobs_upload_leaves_the_job_ended(world: World) -> None:
    batch = images(2, "images/late")
    (name,) = {outcome.job_name for outcome in world.launcher().launch(batch).values()}
    assert name is not None
    world.ledger.mark_job_finished(name, "COMPLETED", {"job": name})
    calls = len(world.ground_truth.calls)
    # SQS delivers one of the uploads again after the job ended (at least once; or a redrive).
    outcomes = world.launcher().launch(batch[:1])
    assert [(o.job_name, o.ok) for o in outcomes.values()] == [(name, True)]
    assert world.ledger.job_status(name) == "COMPLETED"  # not started again, not CREATED again
    assert len(world.ground_truth.calls) == calls


@dataclass
class NonIdempotentStarts:
    """A backend whose start is not idempotent (Label Studio's import), failing its first starts as told."""

    failures: list[BackendError]
    idempotent_start: bool = False
    starts: list[str] = field(default_factory=list)

    def create_job(self, request: JobRequest) -> str:
        self.starts.append(request.name)
        if self.failures:
            raise self.failures.pop(0)
        return f"example://{request.name}"


@pytest.mark.parametrize(
    ("failure", "lease_kept"),
    [
        (StartOutcomeUnknown("the import timed out after it was sent"), True),
        (TransientBackendError("the service answered 429: nothing was done"), False),
    ],
)
def test_a_start_whose_outcome_is_unknown_keeps_the_start_lease_until_it_lapses(
    world: World, failure: BackendError, lease_kept: bool
) -> None:
    backend = NonIdempotentStarts([failure])
    now = [FIXED_NOW]

    def launcher() -> Launcher:
        return Launcher(
            s3_client=world.s3,
            ledger=world.ledger,
            backend=backend,  # type: ignore[arg-type]  # launch() reaches only create_job and idempotent_start
            bucket=BUCKET,
            settings=make_settings(),
            clock=lambda: now[0],
            sleep=lambda _seconds: None,
        )

    batch = images(2, "images/unknown")
    assert all(not o.ok and o.retryable for o in launcher().launch(batch).values())
    (name,) = set(backend.starts)
    retried = launcher().launch(batch)  # SQS's retry, before the lease lapsed
    if lease_kept:
        assert {o.error for o in retried.values()} == {f"job {name} is being started by another invocation"}
        assert backend.starts == [name]  # nobody imported again while the first import may still land
        now[0] += timedelta(seconds=START_LEASE_SECONDS + 1)
        retried = launcher().launch(batch)
    assert all(o.ok for o in retried.values())
    assert backend.starts == [name, name]
    assert world.ledger.job_created(name)


# --- proposals (labeling.prelabel) ---------------------------------------------------------------------------

PRELABEL = {"modelUri": "s3://models-123456789012/d.onnx", "classMap": {"0": "Dog"}, "modelVersion": "det-v1"}


class RecordingBackend:
    """The Ground Truth backend, keeping the requests the launcher hands it."""

    def __init__(self, backend: GroundTruthBackend) -> None:
        self._backend = backend
        self.idempotent_start = backend.idempotent_start
        self.requests: list[JobRequest] = []

    def create_job(self, request: JobRequest) -> str:
        self.requests.append(request)
        return self._backend.create_job(request)


def test_a_job_carries_the_proposals_that_the_pre_label_stage_wrote_for_its_images(world: World) -> None:
    from labeling_pipeline.labels import Box
    from labeling_pipeline.prelabel.proposals import Proposal, encode, proposal_key

    settings = make_settings(prelabel=PRELABEL)
    batch = images(4)
    proposed = Proposal("det-v1", batch[0], 640, 480, (Box("Dog", 10.5, 20.25, 100.0, 50.0, 0.91),))
    held_out = Proposal("det-v1", batch[1], 800, 600, held_out=True)
    for proposal in (proposed, held_out):
        world.s3.put_object(Bucket=BUCKET, Key=proposal_key("det-v1", proposal.image), Body=encode(proposal))
    # Another model version's file, and a file that names another image: neither is shown.
    world.s3.put_object(
        Bucket=BUCKET, Key=proposal_key("det-v0", batch[2]), Body=encode(Proposal("det-v0", batch[2], 1, 1))
    )
    world.s3.put_object(Bucket=BUCKET, Key=proposal_key("det-v1", batch[3]), Body=encode(proposed))
    backend = RecordingBackend(world.backend(settings))
    launcher = world.launcher(settings, backend=backend)
    outcomes = launcher.launch(batch)

    assert all(outcome.ok for outcome in outcomes.values())
    [request] = backend.requests
    assert dict(request.proposals) == {batch[0]: proposed, batch[1]: held_out}
    [(image, why)] = launcher.unreadable_proposals
    assert image == batch[3] and batch[0].image_id in why
