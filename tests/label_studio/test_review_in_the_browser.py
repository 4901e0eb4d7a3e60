"""The review step in the real UI: three annotators answer through Label Studio's API, the job end sends the image they
disagree on to review, and a reviewer, signed in in headless Chromium, finds the review project on the projects
list, starts the labeling stream, sees the consolidated box drawn over the image, drags it onto the animal and
submits. The webhook ends the job; the export holds the reviewer's box, and the summary says it was moved, and by
whom. An annotator who is not a reviewer, signed in in the same way, is not shown the review project and is refused
its labeling stream (labeling_gate's 403).

The set (800 x 600 pictures), at IoU 0.5, agreement below 0.6 reviewed:
- agree.png: A, B and C draw the same Dog. Agreement 1: not reviewed, exported as drawn.
- disagree.png: A and B draw a Dog a little apart (IoU 0.67: one object), C draws nothing. Pairs A-B 1, A-C 0,
  B-C 0: agreement 1/3, reviewed. Consolidated: the mean of A's and B's boxes (2 of 3 drew it), a box neither drew.
  The reviewer moves it 200 px right and 150 px down (IoU with the consolidated box 0.03: the region's origin,
  "prediction-changed", tells the summary it was moved, not deleted and redrawn).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION, review_title
from labeling_pipeline.backends.label_studio.project import review_project_ids
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.names import LedgerJobStatus
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import (
    VIEWPORT,
    LabelingEditor,
    browser,
    editor_from_project_list,
    project_titles,
    sign_in,
)
from sandbox.label_studio_server import LabelStudioServer
from sandbox.simulated_annotators import LabelStudioClient, choose_password, password_link
from tests.label_studio.pipeline_world import Pipeline, label_studio_pipeline, png, rectangle, until

TITLE = "Review in the browser"
SIZE = WIDTH, HEIGHT = 800, 600
Percent = tuple[float, float, float, float]  # x, y, width, height, in percent of the image
DOG_A: Percent = (10.0, 10.0, 30.0, 40.0)
DOG_B: Percent = (14.0, 13.0, 30.0, 40.0)
CONSOLIDATED: Percent = (12.0, 11.5, 30.0, 40.0)  # the mean of A's and B's
AGREED: Percent = (50.0, 50.0, 20.0, 20.0)
ANSWERS: dict[str, dict[str, list[tuple[str, Percent]]]] = {
    "agree.png": {"A": [("Dog", AGREED)], "B": [("Dog", AGREED)], "C": [("Dog", AGREED)]},
    "disagree.png": {"A": [("Dog", DOG_A)], "B": [("Dog", DOG_B)], "C": []},
}
# The consolidated box's confidence: 2 of 3 drew it, times their boxes' IoU (208 x 222 px shared of 69,024).
SCORE = 2 / 3 * (208 * 222) / (2 * 240 * 240 - 208 * 222)
MOVE_BY = (200.0, 150.0)  # image pixels
OUTLINER_ITEM = ".lsf-outliner-item"  # a region in the editor's regions panel
PREDICTED_MARK = ".lsf-outliner-item__control_type_predict svg"  # while the region is the prediction's, unchanged
# labeling_gate.review_gate's refusal, and the header the gate puts on its refusals (labeling_gate.middleware).
NOT_A_REVIEWER = "only reviewers may see review projects and their tasks"
REFUSED_HEADER = "x-labeling-gate"


def pixels(box: Percent) -> list[float]:
    """[left, top, width, height] in image pixels, as COCO's bbox."""
    x, y, width, height = box
    return [x * WIDTH / 100, y * HEIGHT / 100, width * WIDTH / 100, height * HEIGHT / 100]


def screen_colour(editor: LabelingEditor, point: tuple[float, float]) -> tuple[int, int, int]:
    """The colour on screen at the image point: the picture, with whatever the editor paints over it."""
    x, y = editor.screen_point(point)
    shot = editor.page.screenshot(clip={"x": x, "y": y, "width": 1, "height": 1})
    red, green, blue = Image.open(io.BytesIO(shot)).convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    return red, green, blue


def password_of(email: str) -> str:
    """A password Django's validators take: not like the email (UserAttributeSimilarityValidator)."""
    return f"Quartz-lantern-{sum(email.encode()) % 97}-harbour"


def account(api: LabelStudioApi, base_url: str, email: str, *, reviewer: bool = False) -> LabelStudioClient:
    """A worker account as `bbox-labeling workers add [--reviewer]` makes it, its password chosen on the link."""
    choose_password(password_link(LabelStudioWorkers(api).add(email, reviewer=reviewer)), password_of(email))
    return LabelStudioClient.signed_in(base_url, email, password_of(email))


@dataclass
class World:
    pipeline: Pipeline
    job: str
    annotator_email: str  # A's: a worker, not a reviewer
    reviewer_email: str
    reviewer_id: int
    review_project: int


@pytest.fixture(scope="module")
def world(moto_s3_server: MotoServer, label_studio: LabelStudioServer) -> Iterator[World]:
    with label_studio_pipeline(
        moto_s3_server, label_studio, TITLE, workersPerImage=3, review={"agreementBelow": 0.6}
    ) as pipeline:
        base = label_studio.url
        emails = {name: f"browser-annotator-{name.lower()}@example.com" for name in "ABC"}
        annotators = {name: account(pipeline.api, base, email) for name, email in emails.items()}
        reviewer_email = "browser-reviewer@example.com"
        reviewer = account(pipeline.api, base, reviewer_email, reviewer=True)
        for key in ANSWERS:
            pipeline.upload(f"images/review-browser/{key}", png(*SIZE))
        assert pipeline.launch(pipeline.receive_uploads(len(ANSWERS))) == {"batchItemFailures": []}
        (job,) = {task["data"]["job"] for task in pipeline.tasks()}
        for name, client in annotators.items():
            while (task := client.next_task(pipeline.project_id)) is not None:
                key = client.source_ref(int(task["id"])).rsplit("/", 1)[1]
                client.submit(int(task["id"]), [rectangle(*box, label, SIZE) for label, box in ANSWERS[key][name]])
        # The last answer's webhook took the review step: one review task, for disagree.png.
        review_ids = until(lambda: review_project_ids(pipeline.api, pipeline.settings))
        assert review_ids, f"no review project; webhook calls: {pipeline.webhook_calls}"
        (review_project,) = review_ids
        tasks = until(lambda: list(pipeline.api.tasks(review_project, {"job": job}, with_annotations=True)))
        assert [task["data"]["image"].rsplit("/", 1)[1] for task in tasks] == ["disagree.png"]
        yield World(pipeline, job, emails["A"], reviewer_email, int(reviewer.me()["id"]), review_project)


def test_an_annotator_who_is_not_a_reviewer_neither_sees_nor_opens_the_review_project(
    chromium: str, world: World, tmp_path: Path
) -> None:
    base = world.pipeline.label_studio.url
    with browser() as launched:
        context = launched.new_context(viewport=VIEWPORT)
        page = sign_in(context, base, world.annotator_email, password_of(world.annotator_email))
        try:
            # The projects list (newest first: this module's on its first page): the labeling project, and no review
            # project (other modules' projects may be listed too: Community shows a member every project).
            titles = project_titles(page, base)
            assert TITLE in titles and not [title for title in titles if title.endswith(" (review)")], titles
            # The labeling stream's address typed in: the gate's 403, which the browser shows as it is.
            answer = page.goto(f"{base}/projects/{world.review_project}/data?labeling=1")
            assert answer is not None
            assert (answer.status, answer.headers.get(REFUSED_HEADER)) == (403, "refused")
            assert NOT_A_REVIEWER in page.inner_text("body")
            # What the editor asks for the stream's next task is refused too, from the signed-in page.
            status = page.evaluate(
                "url => fetch(url, {credentials: 'same-origin'}).then(r => r.status)",
                f"{base}/api/projects/{world.review_project}/next",
            )
            assert status == 403
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            context.close()


def test_a_reviewer_moves_the_consolidated_box_and_the_export_holds_the_reviewers_box(
    chromium: str, world: World, tmp_path: Path
) -> None:
    pipeline = world.pipeline
    base = pipeline.label_studio.url
    consolidated = pixels(CONSOLIDATED)
    with editor_from_project_list(
        base, world.reviewer_email, password_of(world.reviewer_email), review_title(TITLE), screenshot_dir=tmp_path
    ) as (project_id, editor):
        assert project_id == world.review_project
        # The consolidated box, drawn over the image: the editor opened the task's prediction as its annotation.
        (shown,) = editor.wait_for_regions(1)
        editor.screenshot("review-shown")
        assert (shown["origin"], shown["value"]["rectanglelabels"]) == ("prediction", ["Dog"])
        value = shown["value"]
        assert [value["x"], value["y"], value["width"], value["height"]] == pytest.approx(list(CONSOLIDATED))
        # On screen: the regions panel lists it with the model's mark and its confidence, and it is painted over
        # the picture (inside it the blue is tinted; beside it, on the same blue, it is not).
        item = editor.page.locator(OUTLINER_ITEM)
        assert item.locator(".lsf-outliner-item__title").all_inner_texts() == ["Dog"]
        assert item.locator(PREDICTED_MARK).count() == 1
        assert item.locator(".lsf-outliner-item__control_type_score").inner_text().strip() == f"{SCORE:.2f}"
        left, top, width, height = consolidated
        inside = screen_colour(editor, (left + width / 2, top + height / 2))
        beside = screen_colour(editor, (left + width + 40, top + height / 2))
        assert max(abs(a - b) for a, b in zip(inside, beside, strict=True)) > 15, (inside, beside)

        # Grabbed in its middle and dragged onto the animal.
        grab = (left + width / 2, top + height / 2)
        start, end = editor.drag(grab, (grab[0] + MOVE_BY[0], grab[1] + MOVE_BY[1]))
        editor.page.wait_for_function(
            "x => window.Htx.annotationStore.selected.serializeAnnotation().some(r => r.value.x !== x)",
            arg=value["x"],
        )
        moved_by = (end[0] - start[0], end[1] - start[1])
        expected = [left + moved_by[0], top + moved_by[1], width, height]
        (edited,) = editor.result()
        assert edited["origin"] == "prediction-changed"
        expect(item.locator(PREDICTED_MARK)).to_have_count(0)  # the model's mark is gone: the reviewer's box now
        editor.screenshot("review-moved")
        saved = editor.submit()
        editor.screenshot("review-submitted")
    assert saved["parent_prediction"] is not None and saved["lead_time"] > 0
    (region,) = saved["result"]
    saved_box = [region["value"][axis] for axis in ("x", "y", "width", "height")]
    assert pixels((saved_box[0], saved_box[1], saved_box[2], saved_box[3])) == pytest.approx(expected, abs=2)

    # The reviewer's answer's webhook ended the job.
    ended = until(lambda: pipeline.ledger.job_status(world.job) == LedgerJobStatus.COMPLETED, timeout=30)
    assert ended, f"the job {world.job} did not end; webhook calls: {pipeline.webhook_calls}"
    exports = until(lambda: pipeline.exports(world.job).get("summary.json") and pipeline.exports(world.job))
    assert exports, f"no summary.json for {world.job}"
    coco = json.loads(exports["coco.json"])
    names = {image["id"]: image["source_ref"].rsplit("/", 1)[1] for image in coco["images"]}
    labels = {category["id"]: category["name"] for category in coco["categories"]}
    boxes: dict[str, list[tuple[str, list[float]]]] = {}
    for annotation in coco["annotations"]:
        boxes.setdefault(names[annotation["image_id"]], []).append(
            (labels[annotation["category_id"]], annotation["bbox"])
        )
    assert boxes["agree.png"] == [("Dog", pytest.approx(pixels(AGREED)))]
    # The reviewer's box where the mouse left it, not the consolidated one.
    ((label, bbox),) = boxes["disagree.png"]
    assert (label, bbox) == ("Dog", pytest.approx(expected, abs=2))
    assert bbox != pytest.approx(consolidated, abs=20)

    summary = json.loads(exports["summary.json"])
    review = summary["review"]
    moved = {"shown": 1, "accepted": 0, "moved": 1, "relabeled": 0, "deleted": 0, "added": 0}
    assert (review["images"], review["imagesChanged"], review["boxes"]) == (1, 1, moved)
    assert review["changed"] == [f"s3://{pipeline.bucket}/images/review-browser/disagree.png"]
    assert review["reviewers"] == {str(world.reviewer_id): {"images": 1, "boxes": moved}}
    (task,) = pipeline.api.tasks(world.review_project, {"job": world.job}, with_annotations=True)
    assert [annotation["id"] for annotation in task["annotations"]] == [saved["id"]]
    assert task["predictions"][0]["model_version"] == CONSOLIDATED_VERSION
