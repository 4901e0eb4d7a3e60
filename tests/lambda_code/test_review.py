"""The review step's pure parts: which images go to review, the review task's contract with the gate, the settings'
rules, a reviewer's answer read into the neutral stream, and the export with a reviewer's boxes final (the
consolidation settled against them, and what the reviewer changed counted). The whole step on the real server:
tests/label_studio/test_review_step.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labeling_pipeline.backends.label_studio.parts import CONSOLIDATED_VERSION, review_title
from labeling_pipeline.backends.label_studio.results import REVIEW_KEY, read_task
from labeling_pipeline.backends.label_studio.review import (
    ReviewCandidate,
    ReviewData,
    ReviewReason,
    annotator_ids,
    candidate,
    review_task,
    sampled,
)
from labeling_pipeline.backends.label_studio.settings import ReviewSettings
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.box_changes import ReviewTally
from labeling_pipeline.consolidation import annotator_scores, consolidate, settle
from labeling_pipeline.exports.formats import ExportStats, LabelSpace, export, make_writers
from labeling_pipeline.labels import SETTLED_BY_BACKEND, Box, LabeledImage, ReadStats
from labeling_pipeline.settings import SettingsError, validate_json

SIZE = (800, 600)


def region(x: float, y: float, w: float, h: float, label: str, origin: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": SIZE[0],
        "original_height": SIZE[1],
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }
    if origin is not None:
        found["origin"] = origin
    return found


def annotation(annotation_id: int, user: int, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": annotation_id, "completed_by": user, "result": results, "lead_time": 3.0, **extra}


def task(task_id: int, annotations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data = {"image": f"s3://bucket/images/{task_id}.png", "job": "job-1", "imageVersion": f"v{task_id}"}
    return {"id": task_id, "data": data, "annotations": annotations, **extra}


DOG = region(10, 10, 30, 40, "Dog")
CAT = region(10, 10, 30, 40, "Cat")


def read(raw: dict[str, Any]) -> LabeledImage:
    return read_task(raw, 1, None, ReadStats())


# --- which images go to review -----------------------------------------------------------------------------------


def test_low_agreement_a_label_tie_and_the_sample_send_an_image_to_review_and_nothing_else_does() -> None:
    low = ReviewSettings(agreement_below=0.6, sample_share=0.0)
    agreeing = task(1, [annotation(1, 3, [DOG]), annotation(2, 4, [DOG]), annotation(3, 5, [DOG])])
    one_wrong = task(2, [annotation(4, 3, [DOG]), annotation(5, 4, [DOG]), annotation(6, 5, [CAT])])
    tied = task(3, [annotation(7, 3, [DOG]), annotation(8, 4, [CAT])])
    skipped = task(4, [annotation(9, 3, [], was_cancelled=True), annotation(10, 4, [], was_cancelled=True)])
    alone = task(5, [annotation(11, 3, [DOG])])
    reasons = {raw["id"]: candidate(raw, read(raw), low).reason for raw in (agreeing, one_wrong, tied, skipped, alone)}
    # one_wrong: pairs 1, 0, 0 -> 1/3 < 0.6; tied: 0 (a Dog and a Cat on one spot); the skipped image is relabeled;
    # one annotator has no agreement to fall short.
    assert reasons == {1: None, 2: ReviewReason.LOW_AGREEMENT, 3: ReviewReason.LOW_AGREEMENT, 4: None, 5: None}
    # Under a lower bar the tie alone still sends its image: its label was a coin toss.
    lenient = ReviewSettings(agreement_below=0.0, sample_share=0.0)
    assert candidate(tied, read(tied), lenient).reason == ReviewReason.LABEL_TIE
    assert candidate(one_wrong, read(one_wrong), lenient).reason is None
    assert candidate(alone, read(alone), ReviewSettings(sample_share=1.0)).reason == ReviewReason.SAMPLED


def test_the_sample_is_the_same_on_every_attempt_and_about_its_share() -> None:
    keys = [(f"s3://bucket/images/{n}.png", f"v{n % 7}") for n in range(20_000)]
    picked = [key for key in keys if sampled(*key, 0.3)]
    assert picked == [key for key in keys if sampled(*key, 0.3)]
    assert abs(len(picked) / len(keys) - 0.3) < 0.015
    # A larger share keeps every image a smaller one picked (one draw per image version).
    assert set(picked) <= {key for key in keys if sampled(*key, 0.5)}
    assert all(sampled(*key, 1.0) for key in keys[:100]) and not any(sampled(*key, 0.0) for key in keys[:100])
    # Another version of the same image is another draw.
    assert {sampled("s3://bucket/images/x.png", f"v{n}", 0.5) for n in range(50)} == {True, False}


# --- the review task -----------------------------------------------------------------------------------------------


def test_the_review_task_names_the_annotators_and_shows_the_consolidated_boxes() -> None:
    raw = task(2, [annotation(4, 12, [DOG]), annotation(5, 3, [DOG]), annotation(6, 7, [CAT])])
    found = candidate(raw, read(raw), ReviewSettings(agreement_below=0.6))
    made = review_task("job-1", found, ["Dog", "Cat"])
    assert made["data"] == {
        "image": "s3://bucket/images/2.png",
        "job": "job-1",
        "imageVersion": "v2",
        # Numeric order, delimited at both ends: the gate looks for ",<its id>,".
        ReviewData.ANNOTATOR_IDS: ",3,7,12,",
        ReviewData.REASON: ReviewReason.LOW_AGREEMENT,
        ReviewData.LABELING_TASK: 2,
    }
    [prediction] = made["predictions"]
    assert prediction["model_version"] == CONSOLIDATED_VERSION
    [shown] = prediction["result"]
    assert shown["value"]["rectanglelabels"] == ["Dog"]
    assert [shown["value"][key] for key in ("x", "y", "width", "height")] == pytest.approx([10, 10, 30, 40])
    assert shown["score"] == pytest.approx(2 / 3) and prediction["score"] == pytest.approx(2 / 3)
    # The same answers make the same task: a retried step sends the same region ids.
    assert review_task("job-1", candidate(raw, read(raw), ReviewSettings()), ["Dog", "Cat"])["predictions"] == [
        prediction
    ]


def test_an_image_answered_with_no_box_is_reviewed_with_nothing_shown() -> None:
    raw = task(8, [annotation(1, 3, []), annotation(2, 4, [])])
    image = read(raw)
    found = ReviewCandidate(8, image, image, "v8", ReviewReason.SAMPLED)
    assert review_task("job-1", found, ["Dog"])["predictions"] == [
        {"model_version": CONSOLIDATED_VERSION, "result": []}
    ]
    assert annotator_ids([]) == ","


def test_review_titles_stay_within_label_studios_fifty_characters() -> None:
    assert review_title("Bounding boxes") == "Bounding boxes (review)"
    long = review_title("x" * 50)
    assert len(long) == 50 and long.endswith(" (review)")


# --- the settings ---------------------------------------------------------------------------------------------------


def settings_text(**overrides: Any) -> str:
    raw = {
        "backend": "label-studio",
        "labels": ["Dog", "Cat"],
        "taskTitle": "Boxes",
        "shortInstructions": "Box them.",
        "fullInstructions": "Box every animal.",
        "workersPerImage": 3,
        "jobNamePrefix": "bbox",
        **overrides,
    }
    return json.dumps(raw)


def test_review_settings_have_defaults_and_name_what_is_wrong() -> None:
    model = settings_model("label-studio")
    parsed = validate_json(model, settings_text(review={}))
    assert parsed.review == ReviewSettings(agreement_below=0.5, sample_share=0.0)  # type: ignore[attr-defined]
    assert validate_json(model, settings_text()).review is None  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match=r"review.agreementBelow: must be between 0 and 1, got 1.5"):
        validate_json(model, settings_text(review={"agreementBelow": 1.5}))
    with pytest.raises(SettingsError, match=r"review.sampleShare"):
        validate_json(model, settings_text(review={"sampleShare": "all"}))
    with pytest.raises(SettingsError, match=r"workersPerImage 1 no image has an agreement"):
        validate_json(model, settings_text(workersPerImage=1, review={}))
    assert validate_json(model, settings_text(workersPerImage=1, review={"sampleShare": 1})).review is not None  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match=r"projectTitle: must not end with '\(review\)'"):
        validate_json(model, settings_text(projectTitle="Cats (review)"))
    # Ground Truth reviews with its own jobs: the key is not one of its settings.
    with pytest.raises(SettingsError, match=r"review"):
        validate_json(settings_model("ground-truth"), settings_text(backend="ground-truth", review={}))


# --- a reviewer's answer, read -------------------------------------------------------------------------------------


def test_the_reviewers_latest_answer_is_the_images_final_boxes_and_a_skipped_review_changes_nothing() -> None:
    labeled = task(2, [annotation(4, 3, [DOG]), annotation(5, 4, [CAT])])
    moved = region(12, 11, 30, 40, "Dog", "prediction-changed")
    review = {
        "id": 90,
        "data": {},
        "annotations": [
            annotation(20, 9, [DOG]),
            annotation(21, 9, [moved, region(60, 50, 10, 10, "Cat", "manual")]),
            annotation(22, 9, [], was_cancelled=True),
        ],
    }
    image = read({**labeled, REVIEW_KEY: review})
    assert image.settled_by == "9" and image.annotators == ("3", "4")
    assert [(box.label, box.left, box.top, box.origin, box.annotator) for box in image.settled_boxes or ()] == [
        ("Dog", pytest.approx(96), pytest.approx(66), "prediction-changed", None),
        ("Cat", pytest.approx(480), pytest.approx(300), "manual", None),
    ]
    # The annotators' own boxes stay, for the agreement.
    assert [box.annotator for box in image.boxes] == ["3", "4"]
    skipped = {**review, "annotations": [annotation(22, 9, [], was_cancelled=True)]}
    assert read({**labeled, REVIEW_KEY: skipped}).settled_boxes is None
    assert read({**labeled, REVIEW_KEY: {**review, "annotations": []}}) == read(labeled)


# --- the consolidation settled against final boxes, and the export --------------------------------------------------


def box(label: str, left: float, top: float, annotator: str | None = None, width: float = 40) -> Box:
    return Box(label, left, top, width, 40, annotator=annotator)


def test_settling_keeps_the_clusters_the_final_boxes_kept_under_their_labels() -> None:
    answers = {
        "a": [box("Dog", 0, 0, "a"), box("Cat", 200, 0, "a")],
        "b": [box("Dog", 1, 0, "b"), box("Dog", 200, 1, "b")],
        "c": [box("Cat", 0, 1, "c")],
    }
    consolidated = consolidate(answers)
    # The reviewer: the first object is a Cat after all; the second is dropped; a third is added.
    settled = settle(consolidated, [box("Cat", 0, 0), box("Bird", 400, 400)])
    assert settled.boxes == (box("Cat", 0, 0), box("Bird", 400, 400))
    assert sorted((cluster.box.label, cluster.kept) for cluster in settled.clusters) == [
        ("Cat", False),  # the second object's consolidated box (a tie, Cat first), not kept by the reviewer
        ("Cat", True),
    ]
    scores = annotator_scores(settled)
    assert (scores["a"].kept, scores["a"].relabeled, scores["a"].dropped) == (0, 1, 1)
    assert (scores["b"].kept, scores["b"].relabeled, scores["b"].dropped) == (0, 1, 1)
    assert (scores["c"].kept, scores["c"].relabeled, scores["c"].dropped) == (1, 0, 0)
    assert settled.agreement == consolidated.agreement


def test_a_reviewed_image_is_exported_with_the_reviewers_boxes_and_the_changes_are_counted(tmp_path: Path) -> None:
    reviewer_boxes = (
        box("Dog", 2, 0)._replace(origin="prediction-changed"),
        box("Cat", 300, 300)._replace(origin="manual"),
    )
    reviewed = LabeledImage(
        1,
        "s3://bucket/images/a.png",
        800,
        600,
        3,
        (box("Dog", 0, 0, "3"), box("Dog", 0, 0, "4")),
        annotators=("3", "4"),
        settled_boxes=reviewer_boxes,
        settled_by="9",
    )
    by_backend = LabeledImage(
        2,
        "s3://bucket/images/b.png",
        800,
        600,
        3,
        (box("Dog", 0, 0, "w1"), box("Cat", 0, 0, "w2")),
        annotators=("w1", "w2"),
        settled_boxes=(box("Dog", 0, 0)._replace(confidence=0.6),),
        settled_by=SETTLED_BY_BACKEND,
    )
    stats = ExportStats()
    labels = LabelSpace(["Dog", "Cat"])
    exported: list[LabeledImage] = []
    export(
        [reviewed, by_backend],
        make_writers(("coco",), tmp_path, labels, stats, archive=True),
        stats,
        labels,
        exported=exported.append,
    )
    assert [image.boxes for image in exported] == [reviewer_boxes, by_backend.settled_boxes]
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert [(a["image_id"], a["bbox"], a.get("confidence")) for a in coco["annotations"]] == [
        (1, [2, 0, 40, 40], None),
        (1, [300, 300, 40, 40], None),
        (2, [0, 0, 40, 40], 0.6),
    ]
    summary = stats.summary("job-1")
    # Only the reviewer's image counts as reviewed: the backend's consolidation is not a review.
    assert summary["review"] == {
        "images": 1,
        "imagesChanged": 1,
        "changed": ["s3://bucket/images/a.png"],
        "boxes": {"shown": 1, "accepted": 0, "moved": 1, "relabeled": 0, "deleted": 0, "added": 1},
        "reviewers": {"9": {"images": 1, "boxes": summary["review"]["boxes"]}},
    }
    # Both images' annotators are scored against the final boxes: w2's Cat lost to the backend's Dog.
    assert summary["consolidation"]["annotators"]["w2"]["relabeled"] == 1
    assert summary["consolidation"]["boxesKept"] == 3


def test_a_review_that_changes_nothing_is_all_accepted() -> None:
    tally = ReviewTally()
    same = (box("Dog", 0, 0), box("Cat", 100, 100))
    comparison = tally.add("a", "9", same, same)
    assert (comparison.accepted, tally.images, tally.images_changed) == (2, 1, [])
