"""Job-events Lambda against moto (S3, DynamoDB, SNS, SQS) and the Ground Truth fake."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from labeling_pipeline import job_events
from labeling_pipeline.backends import TransientBackendError
from labeling_pipeline.exports.formats import image_name
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_results import JobBusy
from tests.lambda_code.test_handler import FakeContext
from tests.support import BUCKET, REGION, TABLE, World, job_events_environment, job_state_change_event


@dataclass
class Events:
    world: World
    inbox_url: str

    def event(self, job_name: str, status: str) -> dict[str, Any]:
        return job_state_change_event(job_name, status)

    def send(self, job_name: str, status: str) -> dict[str, Any]:
        return dict(job_events.lambda_handler(self.event(job_name, status), FakeContext()))

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.world.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(message["Body"])["Message"]) for message in messages]

    def ledger_item(self, image: ImageRef) -> dict[str, Any]:
        item = self.world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{image.image_id}"}})["Item"]
        return {key: next(iter(value.values())) for key, value in item.items()}


@pytest.fixture
def events(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Events]:
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="labeling-results")["TopicArn"]
    inbox_url = world.sqs.create_queue(QueueName="results-inbox")["QueueUrl"]
    inbox_arn = world.sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    for name, value in job_events_environment(topic_arn).items():
        monkeypatch.setenv(name, value)

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    job_events._finisher, job_events._backend = job_events.build_finisher(make_client)
    yield Events(world, inbox_url)
    job_events._finisher = job_events._backend = None


def launch(world: World, count: int = 3, folder: str = "run") -> tuple[str, list[ImageRef]]:
    images = [ImageRef(BUCKET, f"images/{folder}/{index}.jpg", f"v{index}") for index in range(count)]
    outcomes = world.launcher().launch(images)
    [name] = {outcome.job_name for outcome in outcomes.values()}
    assert name is not None
    return name, images


def output_line(image: ImageRef, boxes: list[tuple[int, int, int, int, int]], job: str) -> str:
    return json.dumps(
        {
            "source-ref": image.source_ref,
            "labels": {
                "annotations": [
                    {"class_id": c, "left": x, "top": y, "width": w, "height": h} for c, x, y, w, h in boxes
                ],
                "image_size": [{"width": 400, "height": 300, "depth": 3}],
            },
            "labels-metadata": {
                "class-map": {"0": "Cat", "1": "Dog"},
                "job-name": f"labeling-job/{job}",
                "human-annotated": "yes",
                "objects": [{"confidence": 0.9}] * len(boxes),
                "type": "groundtruth/object-detection",
            },
        }
    )


def test_completed_job_is_exported_recorded_and_announced(events: Events) -> None:
    world = events.world
    name, images = launch(world)
    lines = [
        output_line(images[0], [(1, 10, 10, 100, 100), (0, 200, 50, 50, 50)], name),
        output_line(images[1], [], name),
        json.dumps(
            {
                "source-ref": images[2].source_ref,
                "labels-metadata": {"failure-reason": "ClientError: image unreadable", "job-name": name},
            }
        ),
    ]
    world.ground_truth.finish(name, "Completed", lines)

    assert events.send(name, "Completed") == {"action": "exported", "job": name}

    prefix = f"exports/{name}/"
    listed = {obj["Key"] for obj in world.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert listed == {prefix + leaf for leaf in ("coco.json", "yolo.tar.gz", "voc.tar.gz", "summary.json")}
    coco = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "coco.json")["Body"].read())
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2]  # Dog=1, Cat=2 whatever the class-map said
    yolo_object = world.s3.get_object(Bucket=BUCKET, Key=prefix + "yolo.tar.gz")
    assert yolo_object["ContentType"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(yolo_object["Body"].read()), mode="r:gz") as yolo:
        first, second = (image_name(image.source_ref).id for image in images[:2])  # the third failed
        assert sorted(yolo.getnames()) == sorted(
            ["classes.txt", "data.yaml", "train.txt", "val.txt", f"labels/{first}.txt", f"labels/{second}.txt"]
        )
        label_file = yolo.extractfile(f"labels/{first}.txt")
        assert label_file is not None
        assert label_file.read().decode().splitlines()[0] == "0 0.150000 0.200000 0.250000 0.333333"
    voc_object = world.s3.get_object(Bucket=BUCKET, Key=prefix + "voc.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(voc_object["Body"].read()), mode="r:gz") as voc:
        assert sorted(voc.getnames()) == sorted(
            [f"Annotations/{first}.xml", f"Annotations/{second}.xml"]
            + [f"ImageSets/Main/{split}.txt" for split in ("train", "val", "trainval")]
        )

    assert events.ledger_item(images[0])["status"] == "LABELED"
    assert events.ledger_item(images[0])["box_count"] == "2"
    assert events.ledger_item(images[1])["box_count"] == "0"
    assert events.ledger_item(images[2])["status"] == "NEEDS_RELABEL"
    assert events.ledger_item(images[2])["failure_reason"] == "ClientError: image unreadable"

    [note] = events.notifications()
    assert note["status"] == "Completed" and note["job"] == name
    assert note["images"] == 3 and note["boxesPerLabel"] == {"Dog": 1, "Cat": 1}
    assert note["imagesWithoutBoxes"] == 1
    assert note["failedObjects"] == [{"sourceRef": images[2].source_ref, "reason": "ClientError: image unreadable"}]


def test_an_image_missing_from_a_completed_job_s_results_is_marked_for_relabel(events: Events) -> None:
    world = events.world
    name, images = launch(world, 2)
    world.ground_truth.finish(name, "Completed", [output_line(images[0], [(0, 1, 1, 5, 5)], name)])

    assert events.send(name, "Completed") == {"action": "exported", "job": name}

    assert events.ledger_item(images[0])["status"] == "LABELED"
    assert events.ledger_item(images[1])["status"] == "NEEDS_RELABEL"
    assert events.ledger_item(images[1])["failure_reason"] == "missing from the job's results"
    [note] = events.notifications()
    assert (note["status"], note["images"], note["imagesMissingFromOutput"]) == ("Completed", 1, 1)
    assert "imagesToRelabel" not in note and "failureReason" not in note


def test_completed_twice_exports_once_and_late_in_progress_changes_nothing(events: Events) -> None:
    world = events.world
    name, images = launch(world, 2)
    world.ground_truth.finish(name, "Completed", [output_line(image, [(0, 1, 1, 5, 5)], name) for image in images])
    assert events.send(name, "Completed")["action"] == "exported"
    puts_after_first = len(world.s3.list_object_versions(Bucket=BUCKET, Prefix=f"exports/{name}/").get("Versions", []))
    assert events.send(name, "Completed")["action"] == "duplicate"
    assert events.send(name, "InProgress")["action"] == "duplicate"
    assert len(events.notifications()) == 1
    versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=f"exports/{name}/").get("Versions", [])
    assert len(versions) == puts_after_first


def test_in_progress_before_the_end_does_nothing(events: Events) -> None:
    name, _ = launch(events.world)
    assert events.send(name, "InProgress")["action"] == "not-terminal"
    assert events.notifications() == []


def test_failed_job_marks_images_for_relabel_and_says_why(events: Events) -> None:
    world = events.world
    name, images = launch(world)
    world.ground_truth.finish(name, "Failed", reason="Workteam not found")
    assert events.send(name, "Failed")["action"] == "relabel-marked"
    assert {events.ledger_item(image)["status"] for image in images} == {"NEEDS_RELABEL"}
    [note] = events.notifications()
    assert note == {
        "status": "Failed",
        "job": name,
        "failureReason": "Workteam not found",
        "imagesToRelabel": 3,
        "labeledBeforeTheEnd": 0,
        "relabelCommand": f"bbox-labeling relabel {name}",
    }


def test_stopped_job_keeps_what_was_labeled_and_marks_only_the_rest(events: Events) -> None:
    world = events.world
    name, images = launch(world)
    # Stopped after one of the three images: its output manifest holds that one line only.
    world.ground_truth.finish(
        name, "Stopped", [output_line(images[0], [(1, 10, 10, 50, 40)], name)], reason="Stopped by the team"
    )
    assert events.send(name, "Stopped")["action"] == "relabel-marked"
    assert events.ledger_item(images[0])["status"] == "LABELED"
    assert events.ledger_item(images[0])["box_count"] == "1"
    for image in images[1:]:
        assert events.ledger_item(image)["status"] == "NEEDS_RELABEL"
        assert events.ledger_item(image)["failure_reason"] == "Stopped by the team"
    [note] = events.notifications()
    assert (note["status"], note["images"], note["imagesToRelabel"], note["failureReason"]) == (
        "Stopped",
        1,
        2,
        "Stopped by the team",
    )
    assert note["relabelCommand"] == f"bbox-labeling relabel {name}"
    coco = json.loads(world.s3.get_object(Bucket=BUCKET, Key=f"exports/{name}/coco.json")["Body"].read())
    assert [image["source_ref"] for image in coco["images"]] == [images[0].source_ref]


def test_stopped_job_without_output_marks_every_image(events: Events) -> None:
    world = events.world
    name, images = launch(world)
    world.ground_truth.finish(name, "Stopped")
    job = world.ground_truth.jobs[name.lower()]
    # The service may name the output location before anything is written there.
    job["LabelingJobOutput"] = {"OutputDatasetS3Uri": f"s3://{BUCKET}/output/{name}/manifests/output/output.manifest"}
    assert events.send(name, "Stopped")["action"] == "relabel-marked"
    assert {events.ledger_item(image)["status"] for image in images} == {"NEEDS_RELABEL"}
    [note] = events.notifications()
    assert note["imagesToRelabel"] == 3 and note["failureReason"] == "job stopped"


def test_events_for_other_jobs_and_other_sources_are_ignored(events: Events) -> None:
    assert events.send("someone-elses-job", "Completed")["action"] == "not-ours"
    other = events.event("x", "Completed") | {"source": "aws.s3"}
    assert job_events.lambda_handler(other, FakeContext())["action"] == "ignored"
    no_resource = events.event("x", "Completed") | {"resources": []}
    assert job_events.lambda_handler(no_resource, FakeContext())["action"] == "ignored"
    assert events.notifications() == []


def test_a_failure_mid_export_releases_the_job_for_the_retry(events: Events, monkeypatch: pytest.MonkeyPatch) -> None:
    world = events.world
    name, images = launch(world, 1)
    world.ground_truth.finish(name, "Completed", [output_line(images[0], [], name)])
    finisher = job_events._finisher
    assert finisher is not None
    original = finisher._publish

    def broken_publish(summary: dict[str, Any]) -> None:
        raise RuntimeError("SNS unavailable")

    monkeypatch.setattr(finisher, "_publish", broken_publish)
    with pytest.raises(RuntimeError, match="SNS unavailable"):
        events.send(name, "Completed")
    monkeypatch.setattr(finisher, "_publish", original)
    assert events.send(name, "Completed")["action"] == "exported"
    assert len(events.notifications()) == 1


def test_a_held_lease_makes_the_event_retry(events: Events) -> None:
    world = events.world
    name, images = launch(world, 1)
    world.ground_truth.finish(name, "Completed", [output_line(images[0], [], name)])
    from datetime import UTC, datetime

    assert world.ledger.try_lease_job(name, datetime.now(UTC), 900)
    with pytest.raises(JobBusy):
        events.send(name, "Completed")


def test_a_job_that_fails_in_the_reconcilers_sweep_does_not_keep_the_others_from_ending(
    events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = events.world
    first, first_images = launch(world, 1, "first")
    second, second_images = launch(world, 1, "second")
    world.ground_truth.finish(first, "Completed", [output_line(first_images[0], [], first)])
    world.ground_truth.finish(second, "Completed", [output_line(second_images[0], [], second)])
    backend = job_events._backend
    assert backend is not None
    describe = backend.describe_job

    def unavailable_for_one(name: str) -> Any:
        if name == sorted([first, second])[0]:
            raise TransientBackendError("the service answered 503")
        return describe(name)

    monkeypatch.setattr(backend, "describe_job", unavailable_for_one)
    tick = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "resources": []}
    answer = job_events.lambda_handler(tick, FakeContext())
    assert answer == {
        "action": "reconciled",
        "checked": 2,
        "finished": [sorted([first, second])[1]],
        "failed": [sorted([first, second])[0]],
    }
    monkeypatch.setattr(backend, "describe_job", describe)
    answer = job_events.lambda_handler(tick, FakeContext())  # the next tick
    assert answer == {"action": "reconciled", "checked": 1, "finished": [sorted([first, second])[0]], "failed": []}
    assert sorted(n["job"] for n in events.notifications()) == sorted([first, second])


def shown_proposals(line: str) -> str:
    """An adjustment job's output line: its input's prior label (the proposals, made by a machine) kept beside."""
    entry = json.loads(line)
    entry["labels-proposals"] = {"annotations": [], "image_size": [{"width": 400, "height": 300, "depth": 3}]}
    entry["labels-proposals-metadata"] = {"type": "groundtruth/object-detection", "human-annotated": "no"}
    return json.dumps(entry)


def test_with_pre_labels_the_job_end_writes_the_report_and_the_predictions_beside_the_exports(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labeling_pipeline.labels import Box
    from labeling_pipeline.names import EnvironmentVariable
    from labeling_pipeline.prelabel.proposals import Proposal, encode, proposal_key
    from tests.support import settings_json

    prelabel = {"modelUri": "s3://models-123456789012/d.onnx", "classMap": {"16": "Dog"}, "modelVersion": "det-v1"}
    monkeypatch.setenv(EnvironmentVariable.PIPELINE_SETTINGS, settings_json(prelabel=prelabel))
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="labeling-results")["TopicArn"]
    for name, value in job_events_environment(topic_arn).items():
        if name != EnvironmentVariable.PIPELINE_SETTINGS:
            monkeypatch.setenv(name, value)

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    job_events._finisher, job_events._backend = job_events.build_finisher(make_client)
    try:
        name, images = launch(world)
        # Image 0: shown a kept proposal (moved 10 px) and a deleted one; image 1 held out; image 2: its proposals
        # file was written after the job began (a late duplicate), so its worker saw none: not counted as shown.
        kept, deleted = Box("Dog", 20, 10, 100, 100, 0.9), Box("Dog", 300, 200, 40, 40, 0.3)
        proposals = [
            Proposal("det-v1", images[0], 400, 300, (kept, deleted)),
            Proposal("det-v1", images[1], 400, 300, held_out=True),
            Proposal("det-v1", images[2], 400, 300, (Box("Dog", 1, 1, 50, 50, 0.8),)),
        ]
        for proposal in proposals:
            world.s3.put_object(Bucket=BUCKET, Key=proposal_key("det-v1", proposal.image), Body=encode(proposal))
        world.ground_truth.finish(
            name,
            "Completed",
            [
                shown_proposals(output_line(images[0], [(1, 10, 10, 100, 100), (0, 200, 50, 50, 50)], name)),
                output_line(images[1], [(0, 5, 5, 20, 20)], name),
                output_line(images[2], [], name),
            ],
        )
        assert dict(job_events.lambda_handler(job_state_change_event(name, "Completed"), FakeContext())) == {
            "action": "exported",
            "job": name,
        }
    finally:
        job_events._finisher = job_events._backend = None

    prefix = f"exports/{name}/"
    report = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "prelabel-report.json")["Body"].read())
    assert report["images"] == {"images": 3, "proposed": 1, "heldOut": 1, "withoutProposals": 1, "unanswered": 0}
    assert report["boxes"] == {"proposed": 2, "accepted": 0, "moved": 1, "relabeled": 0, "deleted": 1, "added": 1,
                               "final": 2}  # fmt: skip
    assert report["model"]["precision"] == 0.5 and report["model"]["recall"] == 0.5
    coco = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "coco.json")["Body"].read())
    [first_id] = [entry["id"] for entry in coco["images"] if entry["source_ref"] == images[0].source_ref]
    predictions = json.loads(
        world.s3.get_object(Bucket=BUCKET, Key=prefix + "predictions.coco-results.json")["Body"].read()
    )
    assert predictions == [
        {"image_id": first_id, "category_id": 1, "bbox": [20.0, 10.0, 100.0, 100.0], "score": 0.9},
        {"image_id": first_id, "category_id": 1, "bbox": [300.0, 200.0, 40.0, 40.0], "score": 0.3},
    ]
    summary = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "summary.json")["Body"].read())
    assert summary["prelabel"]["report"] == f"s3://{BUCKET}/{prefix}prelabel-report.json"
    assert summary["prelabel"]["boxes"]["deleted"] == 1


def test_a_ground_truth_job_of_several_workers_reports_their_agreement_and_exports_its_consolidation(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ground Truth's consolidated boxes are what the formats hold; its worker-response files give the agreement per
    image and per worker, each worker's boxes measured against Ground Truth's."""
    from labeling_pipeline.names import EnvironmentVariable
    from tests.support import make_settings, settings_json

    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="labeling-results")["TopicArn"]
    for variable, value in job_events_environment(topic_arn).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv(EnvironmentVariable.PIPELINE_SETTINGS, settings_json(workersPerImage=3))

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    def box(label: str, left: int, top: int, width: int = 100, height: int = 80) -> dict[str, Any]:
        return {"label": label, "left": left, "top": top, "width": width, "height": height}

    job_events._finisher, job_events._backend = job_events.build_finisher(make_client)
    try:
        images = [ImageRef(BUCKET, f"images/crowd/{index}.jpg", f"v{index}") for index in range(2)]
        outcomes = world.launcher(make_settings(workersPerImage=3)).launch(images)
        [name] = {outcome.job_name for outcome in outcomes.values()}
        assert name is not None
        first, second = (image.source_ref for image in images)
        answers = {
            # Two of three drew the cat; Ground Truth kept the dog alone (its own call, not our rule's).
            first: [
                ("worker-1", [box("Dog", 10, 10), box("Cat", 200, 100, 50, 50)]),
                ("worker-2", [box("Dog", 12, 10), box("Cat", 202, 100, 50, 50)]),
                ("worker-3", [box("Dog", 11, 12)]),
            ],
            # One of three named the animal otherwise.
            second: [
                ("worker-1", [box("Cat", 50, 50, 60, 60)]),
                ("worker-2", [box("Cat", 52, 50, 60, 60)]),
                ("worker-3", [box("Dog", 51, 51, 60, 60)]),
            ],
        }
        settled = {
            first: [box("Dog", 11, 11) | {"confidence": 0.9}],
            second: [box("Cat", 51, 50, 60, 60) | {"confidence": 0.67}],
        }
        fake = world.ground_truth
        fake.finish(name, "Completed", fake.worker_output(name, answers, consolidated=settled))
        assert dict(job_events.lambda_handler(job_state_change_event(name, "Completed"), FakeContext())) == {
            "action": "exported",
            "job": name,
        }
    finally:
        job_events._finisher = job_events._backend = None

    prefix = f"exports/{name}/"
    coco = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "coco.json")["Body"].read())
    ids = {entry["id"]: entry["source_ref"] for entry in coco["images"]}
    assert sorted((ids[a["image_id"]], a["category_id"], a["bbox"]) for a in coco["annotations"]) == sorted(
        [(first, 1, [11, 11, 100, 80]), (second, 2, [51, 50, 60, 60])]  # Dog=1, Cat=2: Ground Truth's boxes
    )
    own = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "coco.annotators.json")["Body"].read())
    assert sorted({a["annotator"] for a in own["annotations"]}) == ["worker-1", "worker-2", "worker-3"]
    assert len(own["annotations"]) == 8

    summary = json.loads(world.s3.get_object(Bucket=BUCKET, Key=prefix + "summary.json")["Body"].read())
    assert summary["boxesPerLabel"] == {"Dog": 1, "Cat": 1}
    consolidation = summary["consolidation"]
    assert (consolidation["consolidatedImages"], consolidation["boxesDrawn"], consolidation["boxesKept"]) == (2, 8, 2)
    # Mean pairwise F1 per image: (1 + 2/3 + 2/3) / 3 for the first, (1 + 0 + 0) / 3 for the second.
    assert consolidation["agreement"] | {"low": None} == {
        "mean": 0.5556,
        "median": 0.5556,
        "lowThreshold": 0.5,
        "lowCount": 1,
        "low": None,
    }
    assert consolidation["agreement"]["low"] == [{"image": second, "agreement": 0.3333}]
    # Kept: as Ground Truth kept it. The cat two drew is dropped, the dog one named on the second image relabeled.
    assert consolidation["annotators"] == {
        "worker-1": {"images": 2, "drawn": 3, "kept": 2, "relabeled": 0, "dropped": 1, "share": 0.6667},
        "worker-2": {"images": 2, "drawn": 3, "kept": 2, "relabeled": 0, "dropped": 1, "share": 0.6667},
        "worker-3": {"images": 2, "drawn": 2, "kept": 1, "relabeled": 1, "dropped": 0, "share": 0.5},
    }
    # The ledger counts the boxes exported (Ground Truth's), not every worker's.
    for image in images:
        item = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"image#{image.image_id}"}})["Item"]
        assert item["box_count"] == {"N": "1"} or item["box_count"] == {"S": "1"}


class SteppingBackend:
    """A backend whose job waits for a step (as Label Studio's review does): the step's outcome is scripted."""

    idempotent_start = False

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        self.outcomes = outcomes
        self.steps = 0

    def authenticate(self, event: Any) -> None:
        pass

    def create_job(self, request: Any) -> str:
        raise NotImplementedError

    def describe_job(self, name: str) -> Any:
        from labeling_pipeline.backends import JobDescription
        from labeling_pipeline.names import JobState

        return JobDescription(name, JobState.IN_PROGRESS, "ReviewPending", None, None, 1, 0, 0, None, "review")

    def read_results(self, description: Any, stats: Any) -> Any:
        raise NotImplementedError

    def take_step(self, description: Any) -> str:
        self.steps += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "made"


def test_a_step_whose_outcome_is_unknown_keeps_the_jobs_lease_until_it_lapses(world: World) -> None:
    """The step may still land (an import the service is finishing): nobody may list and step again before the lease
    lapses. Any other failure releases the lease at once, for the retry."""
    from datetime import UTC, datetime, timedelta

    from labeling_pipeline.backends import StartOutcomeUnknown
    from labeling_pipeline.job_results import JobFinisher

    name = "lsbox-20261206-step"
    world.ledger.try_lease_job_start(name, datetime.now(UTC), 60)
    world.ledger.mark_job_created(name, 1, "s3://bucket/jobs/x")
    now = [datetime.now(UTC)]
    backend = SteppingBackend([StartOutcomeUnknown("import timed out"), RuntimeError("refused"), None])
    finisher = JobFinisher(
        s3_client=world.s3,
        sns_client=boto3.client("sns", region_name=REGION),
        ledger=world.ledger,
        backend=backend,
        bucket=BUCKET,
        topic_arn="arn:aws:sns:us-east-1:123456789012:results",
        labels=["Dog"],
        lease_seconds=600,
        clock=lambda: now[0],
    )
    with pytest.raises(StartOutcomeUnknown):
        finisher.handle(name)
    # Held: a webhook a minute later finds the job busy and takes no step.
    now[0] += timedelta(minutes=1)
    with pytest.raises(JobBusy):
        finisher.handle(name)
    assert backend.steps == 1
    # Lapsed: the next attempt steps again; its failure releases the lease, so the one after steps at once.
    now[0] += timedelta(minutes=10)
    with pytest.raises(RuntimeError, match="refused"):
        finisher.handle(name)
    assert finisher.handle(name).action == "step-taken"
    assert backend.steps == 3
