"""The review step on the real Label Studio server: three annotators (worker accounts, each signed in with their own
token) answer a synthetic set whose consolidation is known exactly, and a reviewer corrects what the job end sends
to review. The expected figures are worked out by hand in the comments.

The set, at IoU 0.5, three annotators A, B, C, agreement below 0.6 reviewed:
- agree.png: all three draw the same Dog. Agreement 1, not reviewed; exported as that box, confidence 1.
- one-wrong-label.png: the same box, C calls it Cat. Pairs A-B 1, A-C 0, B-C 0: agreement 1/3, reviewed. Consolidated:
  Dog (2 of 3 votes), confidence 2/3 x 1. The reviewer accepts it as it is.
- tie.png: A draws a Dog, B a Cat on the same spot, C nothing. Every pair 0: agreement 0, reviewed; the cluster is
  kept (2 of 3) with a tied label, Cat (first by sort), confidence 1/3. The reviewer relabels it Dog.
- missed.png: A and B draw the same Dog, C nothing. Agreement 1/3, reviewed; kept (2 of 3). The reviewer moves
  it and adds a Cat that everybody missed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from labeling_cli.commands import status_command
from labeling_cli.prelabel_report import report_command
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION, review_title
from labeling_pipeline.backends.label_studio.project import review_project_ids
from labeling_pipeline.backends.label_studio.review import ReviewData, ReviewReason
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.names import LedgerJobStatus
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import LabelStudioClient, choose_password, password_link
from tests.label_studio.pipeline_world import Pipeline, label_studio_pipeline, png, rectangle, until

SIZE = (800, 600)
DOG = (10.0, 10.0, 30.0, 40.0)  # percent of the image: x, y, width, height
MOVED_DOG = (12.0, 11.0, 30.0, 40.0)
MISSED_CAT = (60.0, 50.0, 20.0, 20.0)
# What each annotator answers, per image: (label, box) or nothing.
ANSWERS: dict[str, dict[str, list[tuple[str, tuple[float, float, float, float]]]]] = {
    "agree.png": {"A": [("Dog", DOG)], "B": [("Dog", DOG)], "C": [("Dog", DOG)]},
    "one-wrong-label.png": {"A": [("Dog", DOG)], "B": [("Dog", DOG)], "C": [("Cat", DOG)]},
    "tie.png": {"A": [("Dog", DOG)], "B": [("Cat", DOG)], "C": []},
    "missed.png": {"A": [("Dog", DOG)], "B": [("Dog", DOG)], "C": []},
}
REVIEWED = {"one-wrong-label.png", "tie.png", "missed.png"}


def pixels(box: tuple[float, float, float, float]) -> list[float]:
    x, y, width, height = box
    return [x * SIZE[0] / 100, y * SIZE[1] / 100, width * SIZE[0] / 100, height * SIZE[1] / 100]


@dataclass
class World:
    pipeline: Pipeline
    annotators: dict[str, LabelStudioClient]
    annotator_ids: dict[str, int]
    reviewer: LabelStudioClient
    reviewer_id: int
    job: str


def account(api: LabelStudioApi, base_url: str, email: str, *, reviewer: bool = False) -> LabelStudioClient:
    password = f"Review-{email.split('@')[0]}-2026"
    choose_password(password_link(LabelStudioWorkers(api).add(email, reviewer=reviewer)), password)
    return LabelStudioClient.signed_in(base_url, email, password)


def key_of(task: dict[str, Any]) -> str:
    return str(task["data"]["image"]).rsplit("/", 1)[1]


def answer_all(client: LabelStudioClient, project_id: int, name: str) -> int:
    answered = 0
    while (task := client.next_task(project_id)) is not None:
        image = client.source_ref(int(task["id"])).rsplit("/", 1)[1]
        boxes = [rectangle(*box, label, SIZE) for label, box in ANSWERS[image][name]]
        client.submit(int(task["id"]), boxes)
        answered += 1
    return answered


@pytest.fixture(scope="module")
def world(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[World]:
    with label_studio_pipeline(
        moto_s3_server, label_studio, "Review tests", workersPerImage=3, review={"agreementBelow": 0.6}
    ) as pipeline:
        base = label_studio.url
        annotators = {name: account(pipeline.api, base, f"annotator-{name.lower()}@example.com") for name in "ABC"}
        reviewer = account(pipeline.api, base, "reviewer@example.com", reviewer=True)
        for key in ANSWERS:
            pipeline.upload(f"images/review/{key}", png(*SIZE))
        assert pipeline.launch(pipeline.receive_uploads(len(ANSWERS))) == {"batchItemFailures": []}
        (job,) = {task["data"]["job"] for task in pipeline.tasks()}
        yield World(
            pipeline,
            annotators,
            {name: int(client.me()["id"]) for name, client in annotators.items()},
            reviewer,
            int(reviewer.me()["id"]),
            job,
        )


def review_tasks(world: World) -> list[dict[str, Any]]:
    (project_id,) = review_project_ids(world.pipeline.api, world.pipeline.settings)
    return list(world.pipeline.api.tasks(project_id, {"job": world.job}, with_annotations=True))


def test_the_deployment_makes_the_review_project_beside_the_labeling_project(world: World) -> None:
    api = world.pipeline.api
    (project_id,) = review_project_ids(api, world.pipeline.settings)
    project = api.project(project_id, fields=("id", "title", "maximum_annotations", "model_version"))
    assert project["title"] == review_title("Review tests") == "Review tests (review)"
    assert project["maximum_annotations"] == 1 and project["model_version"] == CONSOLIDATED_VERSION
    # Its answers reach the job end as the labeling project's do, and so do its images' links.
    assert [hook["url"] for hook in api.webhooks(project_id)] == [world.pipeline.webhook_url]
    assert [storage["bucket"] for storage in api.s3_import_storages(project_id)] == [world.pipeline.bucket]
    # Deploying again changes nothing.
    assert world.pipeline.deploy().changed == []


def test_review_tasks_are_made_once_for_the_images_the_annotators_disagree_on(world: World) -> None:
    pipeline = world.pipeline
    for name, client in world.annotators.items():
        assert answer_all(client, pipeline.project_id, name) == len(ANSWERS)
    # The last answer's webhook took the step: the review tasks are there, and the job waits for them.
    made = until(lambda: len(review_tasks(world)) == len(REVIEWED))
    assert made, f"review tasks: {[key_of(task) for task in review_tasks(world)]}"
    assert pipeline.ledger.job_status(world.job) == LedgerJobStatus.CREATED
    description = pipeline.backend().describe_job(world.job)
    assert (description.backend_status, description.step_progress) == ("InReview", "0 of 3 images reviewed")
    # What `bbox-labeling status` shows of it: every labeling task answered, the review left.
    stack = pipeline.stack_info()
    lines = status_command(stack, pipeline.ledger, pipeline.backend(), pipeline.client("sqs"), 20)
    (row,) = [line for line in lines if line.startswith(world.job)]
    assert row.split() == [world.job, "InReview", "4", "4", "0", "0"]
    assert f"in review: {world.job}: 0 of 3 images reviewed" in lines
    # A repeated signal, and the reconciler's sweep, make no second review task.
    assert pipeline.reconcile()["checked"] >= 1
    tasks = {key_of(task): task for task in review_tasks(world)}
    assert sorted(tasks) == sorted(REVIEWED) and len(review_tasks(world)) == len(REVIEWED)
    everyone = "," + ",".join(str(world.annotator_ids[name]) for name in "ABC") + ","
    for key, task in tasks.items():
        data = task["data"]
        assert data[ReviewData.ANNOTATOR_IDS] == everyone
        assert data[ReviewData.REASON] == (ReviewReason.LOW_AGREEMENT)
        assert data["job"] == world.job and data["image"].endswith(f"/images/review/{key}")
    # The consolidated boxes are the reviewer's starting point, each with its confidence.
    (wrong_label,) = tasks["one-wrong-label.png"]["predictions"]
    assert wrong_label["model_version"] == CONSOLIDATED_VERSION
    (region,) = wrong_label["result"]
    assert region["value"]["rectanglelabels"] == ["Dog"] and region["score"] == pytest.approx(2 / 3)
    assert [region["value"][axis] for axis in ("x", "y", "width", "height")] == pytest.approx(list(DOG))
    (tie_region,) = tasks["tie.png"]["predictions"][0]["result"]
    assert tie_region["value"]["rectanglelabels"] == ["Cat"] and tie_region["score"] == pytest.approx(1 / 3)


def test_the_reviewers_answers_are_the_export_and_the_summary_says_what_they_changed(world: World) -> None:
    pipeline = world.pipeline
    (project_id,) = review_project_ids(pipeline.api, pipeline.settings)
    reviewed = []
    while (task := world.reviewer.next_task(project_id)) is not None:
        key = world.reviewer.source_ref(int(task["id"])).rsplit("/", 1)[1]
        (prediction,) = [found for found in task["predictions"] if found["model_version"] == CONSOLIDATED_VERSION]
        regions = [dict(region, origin="prediction") for region in prediction["result"]]
        if key == "tie.png":
            regions[0]["value"] = dict(regions[0]["value"], rectanglelabels=["Dog"])
            regions[0]["origin"] = "prediction-changed"
        elif key == "missed.png":
            x, y, width, height = MOVED_DOG
            regions[0]["value"] = dict(regions[0]["value"], x=x, y=y, width=width, height=height)
            regions[0]["origin"] = "prediction-changed"
            regions.append(dict(rectangle(*MISSED_CAT, "Cat", SIZE), origin="manual", id="added"))
        world.reviewer.submit(int(task["id"]), regions, parent_prediction=int(prediction["id"]))
        reviewed.append(key)
    assert sorted(reviewed) == sorted(REVIEWED)
    assert until(lambda: pipeline.ledger.job_status(world.job) == LedgerJobStatus.COMPLETED)
    exports = pipeline.exports(world.job)
    coco = json.loads(exports["coco.json"])
    names = {image["id"]: image["source_ref"].rsplit("/", 1)[1] for image in coco["images"]}
    boxes: dict[str, list[tuple[str, list[float], float | None]]] = {}
    labels = {category["id"]: category["name"] for category in coco["categories"]}
    for annotation in coco["annotations"]:
        boxes.setdefault(names[annotation["image_id"]], []).append(
            (labels[annotation["category_id"]], annotation["bbox"], annotation.get("confidence"))
        )
    assert boxes["agree.png"] == [("Dog", pytest.approx(pixels(DOG)), 1.0)]
    assert boxes["one-wrong-label.png"] == [("Dog", pytest.approx(pixels(DOG)), None)]
    assert boxes["tie.png"] == [("Dog", pytest.approx(pixels(DOG)), None)]
    assert sorted(boxes["missed.png"]) == sorted(
        [("Dog", pytest.approx(pixels(MOVED_DOG)), None), ("Cat", pytest.approx(pixels(MISSED_CAT)), None)]
    )
    # Every annotator's own boxes, beside: 3 + 3 + 2 + 2.
    assert len(json.loads(exports["coco.annotators.json"])["annotations"]) == 10
    summary = json.loads(exports["summary.json"])
    review = summary["review"]
    assert review["images"] == 3 and review["imagesChanged"] == 2
    assert review["boxes"] == {"shown": 3, "accepted": 1, "moved": 1, "relabeled": 1, "deleted": 0, "added": 1}
    assert review["reviewers"] == {str(world.reviewer_id): {"images": 3, "boxes": review["boxes"]}}
    # The annotators' scores against the final boxes: C's Cat lost on one-wrong-label; on tie, A's Dog won and
    # B's Cat lost; on missed, A's and B's Dog were kept (moved).
    scores = summary["consolidation"]["annotators"]
    a, b, c = (scores[str(world.annotator_ids[name])] for name in "ABC")
    assert (a["drawn"], a["kept"], a["relabeled"]) == (4, 4, 0)
    assert (b["drawn"], b["kept"], b["relabeled"]) == (4, 3, 1)
    assert (c["drawn"], c["kept"], c["relabeled"]) == (2, 1, 1)
    assert summary["consolidation"]["agreement"]["lowCount"] == 3
    assert summary["consolidation"]["labelTies"]["images"] == [f"s3://{pipeline.bucket}/images/review/tie.png"]
    # The raw tasks file carries each reviewed image's review task, so that it alone gives the same export.
    lines = [
        json.loads(line)
        for line in pipeline.client("s3")
        .get_object(Bucket=pipeline.bucket, Key=f"output/{world.job}/tasks.jsonl")["Body"]
        .read()
        .splitlines()
    ]
    assert sorted(key_of(line) for line in lines if "pipelineReview" in line) == sorted(REVIEWED)
    report = report_command(pipeline.client("s3"), pipeline.bucket, world.job)
    assert (
        "review: 3 image(s) reviewed, 2 changed; of 3 consolidated box(es) shown: accepted 1, moved or resized 1, "
        "relabeled 1, deleted 0; boxes reviewers added: 1"
    ) in report
