"""Several workers per image on Ground Truth: Ground Truth's own consolidation kept as the image's settled boxes, each
worker's own boxes read from the job's worker-response files (worker_responses.py). Against moto and the fake."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling_pipeline.backends import JobRequest
from labeling_pipeline.backends.ground_truth.job_parts import pipeline_job_name, unassisted_job_name
from labeling_pipeline.backends.ground_truth.service import GroundTruthBackend
from labeling_pipeline.backends.ground_truth.worker_responses import (
    WorkerAnswer,
    WorkerResponseError,
    dataset_object_ids,
    parse_worker_response,
    worker_response_prefix,
)
from labeling_pipeline.images import ImageRef, split_s3_uri
from labeling_pipeline.labels import SETTLED_BY_BACKEND, Box, LabeledImage, ReadStats
from tests.lambda_code.ground_truth.test_adjustment import mixed_batch, prelabel_settings
from tests.support import BUCKET, World, make_settings

NAME = "bbox-20261125-0a1b2c3d4e5f"
# Listed in this order on purpose: the input manifest is sorted (a, b, c), so line order and list order differ.
IMAGES = (
    ImageRef(BUCKET, "images/w/c.jpg", "v3"),
    ImageRef(BUCKET, "images/w/a.jpg", "v1"),
    ImageRef(BUCKET, "images/w/b.jpg", "v2"),
)
A, B, C = sorted(IMAGES)  # dataset objects 0, 1 and 2


def box(label: str, left: float, top: float, width: float, height: float) -> dict[str, Any]:
    """A box as crowd-bounding-box submits it."""
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


def start(world: World, workers: int = 3, images: tuple[ImageRef, ...] = IMAGES) -> GroundTruthBackend:
    backend = world.backend(make_settings(workersPerImage=workers))
    backend.create_job(JobRequest(NAME, images, BUCKET, f"jobs/{NAME}/", "output/"))
    return backend


def read(backend: GroundTruthBackend, stats: ReadStats | None = None) -> dict[str, LabeledImage]:
    found = backend.read_results(backend.describe_job(NAME), stats or ReadStats())
    return {image.source_ref: image for image in found}


def response_key(world: World, object_id: int, iteration: int = 1) -> str:
    """The key of the one worker-response file the fake wrote for a dataset object."""
    bucket, prefix = split_s3_uri(
        f"{world.ground_truth.worker_response_prefix(NAME)}iteration-{iteration}/{object_id}/"
    )
    [found] = world.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    return str(found["Key"])


def count_calls(world: World, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    world.s3.meta.events.register(f"before-call.s3.{operation}", lambda params, **_: calls.append(params))
    return calls


# GT's consolidation of image A, as a test sets it: unlike any one worker's boxes, so that it can be told apart.
SETTLED_A = [box("Dog", 12, 10, 99, 81) | {"confidence": 0.91}, box("Cat", 201, 101, 49, 50) | {"confidence": 0.62}]
ANSWERS_A = [
    ("worker-1", [box("Dog", 10, 10, 100, 80), box("Cat", 200, 100, 50, 50)]),
    # Her cat spills past the 400 x 300 image: clipped like every box the readers give.
    ("worker-2", [box("Dog", 14, 12, 96, 80), box("Cat", 380, 250, 40, 80)]),
    ("worker-3", [box("Dog", 12, 8, 100, 84)]),
]


def test_three_workers_own_boxes_beside_ground_truths_consolidation(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth
    answers = {A.source_ref: ANSWERS_A, B.source_ref: [(f"worker-{n}", [box("Cat", 5, 5, 30, 30)]) for n in (1, 2)]}
    fake.finish(NAME, "Completed", fake.worker_output(NAME, answers, consolidated={A.source_ref: SETTLED_A}))
    stats = ReadStats()

    images = read(backend, stats)

    first = images[A.source_ref]
    assert first.settled_boxes == (Box("Dog", 12, 10, 99, 81, 0.91), Box("Cat", 201, 101, 49, 50, 0.62))
    assert first.settled_by == SETTLED_BY_BACKEND
    assert first.annotators == ("worker-1", "worker-2", "worker-3")
    assert first.boxes == (
        Box("Dog", 10, 10, 100, 80, annotator="worker-1"),
        Box("Cat", 200, 100, 50, 50, annotator="worker-1"),
        Box("Dog", 14, 12, 96, 80, annotator="worker-2"),
        Box("Cat", 380, 250, 20, 50, annotator="worker-2"),
        Box("Dog", 12, 8, 100, 84, annotator="worker-3"),
    )
    assert (first.width, first.height, first.failure_reason, first.job_name) == (400, 300, None, NAME)
    assert stats.boxes_clipped == 1
    # Two workers answered image B (the fake's stand-in consolidation kept their one box).
    second = images[B.source_ref]
    assert second.annotators == ("worker-1", "worker-2")
    assert second.settled_boxes == (Box("Cat", 5, 5, 30, 30, 1.0),)
    assert [b.annotator for b in second.boxes] == ["worker-1", "worker-2"]
    [(part, read_stats)] = backend.worker_responses
    assert (part, read_stats.files_read, read_stats.files_skipped, read_stats.images_with_answers) == (NAME, 2, 0, 2)


def test_a_worker_who_drew_nothing_is_one_who_answered(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth
    answers = {
        C.source_ref: [
            ("worker-1", [box("Dog", 50, 50, 100, 100)]),
            ("worker-2", []),
            ("worker-3", [box("Dog", 52, 50, 100, 98)]),
        ]
    }
    fake.finish(NAME, "Completed", fake.worker_output(NAME, answers))

    [image] = read(backend).values()

    assert image.source_ref == C.source_ref
    assert image.annotators == ("worker-1", "worker-2", "worker-3")
    assert [(b.annotator, b.left) for b in image.boxes] == [("worker-1", 50), ("worker-3", 52)]
    assert image.settled_boxes == (Box("Dog", 51, 50, 100, 99, 0.67),)


def test_each_line_is_matched_to_its_dataset_object_by_source_ref_not_by_its_place(world: World) -> None:
    """Dataset object ids are input manifest lines; the output manifest here lists C before A and lacks B (a stopped
    job's), so its first line is not object 0."""
    backend = start(world)
    fake = world.ground_truth
    answers = {
        A.source_ref: [("worker-1", [box("Dog", 1, 1, 10, 10)]), ("worker-2", [box("Dog", 1, 1, 10, 11)])],
        C.source_ref: [("worker-1", [box("Cat", 200, 200, 20, 20)]), ("worker-2", [])],
    }
    lines = fake.worker_output(NAME, answers)
    fake.finish(NAME, "Stopped", list(reversed(lines)))

    images = read(backend)

    assert list(images) == [C.source_ref, A.source_ref]
    assert [b.label for b in images[C.source_ref].boxes] == ["Cat"]
    assert [b.height for b in images[A.source_ref].boxes] == [10, 11]


def test_a_malformed_or_missing_worker_response_is_skipped_logged_and_counted(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    backend = start(world)
    fake = world.ground_truth
    two = [("worker-1", [box("Dog", 5, 5, 20, 20)]), ("worker-2", [box("Dog", 6, 5, 20, 20)])]
    answers = {image.source_ref: two for image in (A, B, C)}
    settled = {image.source_ref: [box("Dog", 7, 7, 21, 21) | {"confidence": 0.5}] for image in (A, B, C)}
    fake.finish(NAME, "Completed", fake.worker_output(NAME, answers, consolidated=settled))
    not_json, no_content = response_key(world, 1), response_key(world, 2)
    world.s3.put_object(Bucket=BUCKET, Key=not_json, Body=b'{"answers": [')
    world.s3.put_object(Bucket=BUCKET, Key=no_content, Body=json.dumps({"answers": [{"workerId": "worker-1"}]}))

    with caplog.at_level(logging.WARNING):
        images = read(backend)

    # B and C: exported with Ground Truth's boxes, as with one worker; A as it should be.
    for image in (B, C):
        assert images[image.source_ref].boxes == (Box("Dog", 7, 7, 21, 21, 0.5),)
        assert (images[image.source_ref].settled_boxes, images[image.source_ref].annotators) == (None, ())
    assert images[A.source_ref].annotators == ("worker-1", "worker-2")
    [(_, stats)] = backend.worker_responses
    assert (stats.files_read, stats.files_skipped, stats.images_with_answers, stats.images_without_answers) == (
        1,
        2,
        1,
        2,
    )
    assert [uri for uri, _ in stats.skipped] == [f"s3://{BUCKET}/{not_json}", f"s3://{BUCKET}/{no_content}"]
    assert stats.skipped[1][1] == "malformed: answers[0] has no answerContent.boundingBox.boundingBoxes list"
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(not_json in message and "malformed" in message for message in warned)


def test_a_file_listed_then_gone_is_skipped(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth
    answers = {A.source_ref: [("worker-1", [box("Dog", 5, 5, 20, 20)]), ("worker-2", [])]}
    fake.finish(NAME, "Completed", fake.worker_output(NAME, answers))
    gone = response_key(world, 0)

    def delete_after_listing(**_: Any) -> None:
        world.s3.delete_object(Bucket=BUCKET, Key=gone)

    world.s3.meta.events.register("after-call.s3.ListObjectsV2", delete_after_listing)
    [image] = read(backend).values()

    assert (image.settled_boxes, image.annotators) == (None, ())
    [(_, stats)] = backend.worker_responses
    assert stats.skipped == [(f"s3://{BUCKET}/{gone}", "cannot be read (NoSuchKey)")]


def test_one_worker_per_image_reads_the_output_manifest_alone(world: World) -> None:
    backend = start(world, workers=1)
    fake = world.ground_truth
    lines = fake.worker_output(NAME, {A.source_ref: [("worker-1", [box("Dog", 5, 5, 20, 20)])]})
    fake.finish(NAME, "Completed", lines)
    listings = count_calls(world, "ListObjectsV2")

    [image] = read(backend).values()
    # A deployment now set to three workers still reads a job that ran with one as one.
    [again] = read(world.backend(make_settings(workersPerImage=3))).values()

    assert image == again
    assert image.boxes == (Box("Dog", 5, 5, 20, 20, 1.0),)
    assert (image.settled_boxes, image.settled_by, image.annotators) == (None, None, ())
    assert listings == []


def test_an_image_without_a_worker_response_keeps_ground_truths_boxes(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth
    lines = fake.worker_output(NAME, {A.source_ref: [("worker-1", []), ("worker-2", [])]})
    plain = json.loads(lines[0]) | {"source-ref": B.source_ref}  # a line whose object has no worker-response folder
    fake.finish(NAME, "Completed", [*lines, json.dumps(plain)])

    images = read(backend)

    assert (images[A.source_ref].annotators, images[A.source_ref].boxes) == (("worker-1", "worker-2"), ())
    assert images[A.source_ref].settled_boxes == ()
    assert (images[B.source_ref].annotators, images[B.source_ref].settled_boxes) == ((), None)


def test_the_latest_iteration_of_each_object_wins_compared_as_numbers(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth

    def answered(left: int) -> list[tuple[str, list[dict[str, Any]]]]:
        return [("worker-1", [box("Dog", left, 5, 20, 20)]), ("worker-2", [box("Dog", left, 6, 20, 20)])]

    fake.worker_output(NAME, {A.source_ref: answered(1), B.source_ref: answered(2)}, iteration=1)
    fake.worker_output(NAME, {A.source_ref: answered(9)}, iteration=9)
    lines = fake.worker_output(NAME, {A.source_ref: answered(10)}, iteration=10)
    fake.finish(NAME, "Completed", lines + fake.worker_output(NAME, {B.source_ref: answered(2)}, iteration=1))

    images = read(backend)

    assert {b.left for b in images[A.source_ref].boxes} == {10}  # iteration-10, though "iteration-9" sorts after it
    assert {b.left for b in images[B.source_ref].boxes} == {2}


def test_one_file_per_worker_is_read_as_one_answer_each(world: World) -> None:
    backend = start(world)
    fake = world.ground_truth
    lines = fake.worker_output(NAME, {B.source_ref: ANSWERS_A}, file_per_worker=True)
    fake.finish(NAME, "Completed", lines)
    folder = f"output/{NAME}/annotations/worker-response/iteration-1/1/"
    keys = [item["Key"] for item in world.s3.list_objects_v2(Bucket=BUCKET, Prefix=folder)["Contents"]]
    assert len(keys) == 3
    # A later file of worker 2 (sorted after the others) replaces her first answer.
    again = {"answers": [{"workerId": "worker-2", "answerContent": {"boundingBox": {"boundingBoxes": []}}}]}
    world.s3.put_object(Bucket=BUCKET, Key=f"{folder}2099-01-01_00:00:00.json", Body=json.dumps(again))

    [image] = read(backend).values()

    assert image.annotators == ("worker-1", "worker-2", "worker-3")
    assert [b.annotator for b in image.boxes] == ["worker-1", "worker-1", "worker-3"]


def test_a_folder_the_role_may_not_list_leaves_ground_truths_boxes(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    backend = start(world)
    fake = world.ground_truth
    fake.finish(NAME, "Completed", fake.worker_output(NAME, {A.source_ref: ANSWERS_A}))

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "AccessDenied", "Message": "Access Denied"}
        return AWSResponse("https://s3.fake", 403, {}, None), {"Error": error, "ResponseMetadata": {}}

    world.s3.meta.events.register("before-call.s3.ListObjectsV2", refuse)
    with caplog.at_level(logging.WARNING):
        [image] = read(backend).values()

    # Ground Truth's one box (the stand-in kept the dog three drew, not the cats two placed apart).
    assert (image.settled_boxes, image.annotators, [b.label for b in image.boxes]) == (None, (), ["Dog"])
    [(_, stats)] = backend.worker_responses
    assert stats.listing_error is not None and "AccessDenied" in stats.listing_error
    assert any("workers' own answers not read" in record.getMessage() for record in caplog.records)


def test_a_job_in_two_parts_reads_each_parts_worker_responses(world: World) -> None:
    """The adjustment job and the plain job beside it number their dataset objects each from 0."""
    batch = mixed_batch(world)  # images 0 and 3 shown proposals (adjustment part), 1, 2 and 4 not (plain part)
    settings = prelabel_settings(workersPerImage=2)
    world.launcher(settings).launch(batch)
    fake = world.ground_truth
    name = next(name for name in fake.created_names if pipeline_job_name(name) == name)
    sibling = unassisted_job_name(name)
    parts = {name: ("adjusted", (batch[0], batch[3])), sibling: ("plain", (batch[1], batch[2], batch[4]))}
    for part, (who, members) in parts.items():
        answers = {
            image.source_ref: [(f"{who}-1", [box("Dog", 10 * index, 1, 5, 5)]), (f"{who}-2", [])]
            for index, image in enumerate(batch)
            if image in members
        }
        fake.finish(part, "Completed", fake.worker_output(part, answers))
    backend = world.backend(settings)

    images = {image.source_ref: image for image in backend.read_results(backend.describe_job(name), ReadStats())}

    for index, image in enumerate(batch):
        [drawn] = images[image.source_ref].boxes
        assert drawn.left == 10 * index
        who = "adjusted" if index in (0, 3) else "plain"
        assert images[image.source_ref].annotators == (f"{who}-1", f"{who}-2")
    assert [part for part, _ in backend.worker_responses] == [name, sibling]


def test_the_worker_response_folder_and_dataset_object_ids() -> None:
    uri = f"s3://{BUCKET}/output/{NAME}/manifests/output/output.manifest"
    assert worker_response_prefix(uri) == f"output/{NAME}/annotations/worker-response/"
    assert worker_response_prefix(f"s3://{BUCKET}/elsewhere/tasks.jsonl") is None
    lines: list[bytes | str] = [b'{"source-ref": "s3://b/x.jpg"}', b"not json", '{"source-ref": "s3://b/y.jpg"}']
    lines.append(b'{"source": "t"}')
    assert dataset_object_ids(lines) == {"s3://b/x.jpg": 0, "s3://b/y.jpg": 2}


# The documented answer: crowd-bounding-box's output under its name (sms-bounding-box.html), workerId beside it.
DOCUMENTED = {
    "answers": [
        {
            "acceptanceTime": "2020-12-28T18:59:15.191Z",
            "answerContent": {
                "boundingBox": {
                    "boundingBoxes": [{"height": 2833, "label": "bird", "left": 681, "top": 599, "width": 1364}],
                    "inputImageProperties": {"height": 3726, "width": 2662},
                }
            },
            "submissionTime": "2020-12-28T18:59:58.321Z",
            "timeSpentInSeconds": 40.543,
            "workerId": "a12b3cdefg4h5i67",
        }
    ]
}


def test_the_documented_answer_parses() -> None:
    assert parse_worker_response(DOCUMENTED) == [
        WorkerAnswer("a12b3cdefg4h5i67", (("bird", 681.0, 599.0, 1364.0, 2833.0),), 2662, 3726)
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "no 'answers' list"),
        ({"answers": [{"answerContent": {}}]}, "answers\\[0\\] has no workerId"),
        ({"answers": [{"workerId": "w", "answerContent": {"other": {}}}]}, "no answerContent.boundingBox"),
        (
            {"answers": [{"workerId": "w", "answerContent": {"boundingBox": {"boundingBoxes": [{"label": "x"}]}}}]},
            r"boundingBoxes\[0\].left is not a number \(None\)",
        ),
        (
            {
                "answers": [
                    {
                        "workerId": "w",
                        "answerContent": {
                            "boundingBox": {"boundingBoxes": [{"label": "x", "left": 10**400, "top": 0}]}
                        },
                    }
                ]
            },
            r"boundingBoxes\[0\].left is not a number \(1000",
        ),
        (
            {"answers": [{"workerId": "w", "answerContent": {"boundingBox": {"boundingBoxes": [{"left": 1}]}}}]},
            "has no label",
        ),
    ],
)
def test_a_malformed_answer_names_what_is_wrong(document: Any, message: str) -> None:
    with pytest.raises(WorkerResponseError, match=message):
        parse_worker_response(document)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["answers", "workerId", "answerContent", "boundingBox", "boundingBoxes", "label", "left"])
_near_valid = st.recursive(
    _json,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_near_valid)
def test_any_json_parses_or_is_refused_by_name(document: Any) -> None:
    try:
        answers = parse_worker_response(document)
    except WorkerResponseError:
        return
    assert all(isinstance(answer.worker_id, str) and answer.worker_id for answer in answers)
