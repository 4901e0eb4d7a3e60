"""The pre-label report on synthetic jobs with exact truth: a detector with known errors (metrics.simulate), people
who fix exactly those errors, held-out images timed apart. The report must state the injected shares exactly, its
mAP must be COCOeval's on the files the job end writes, and its sentences must say what to change."""

from __future__ import annotations

import contextlib
import io
import json
import random
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box
from labeling_pipeline.prelabel.holdout import held_out
from labeling_pipeline.prelabel.metrics import iou_matrix, simulate
from labeling_pipeline.prelabel.proposals import Proposal
from labeling_pipeline.prelabel.report import ImageOutcome, advice, build_report, coco_results

LABELS = ("Dog", "Cat", "Bird")
BUCKET = "labeling-123456789012"


def grid_truth(images: int, per_image: int, seed: int) -> dict[str, list[Box]]:
    """Boxes far apart (each in its own 200 px cell, 60-120 px a side), so that a jittered box overlaps only its own."""
    rng = random.Random(seed)
    truth: dict[str, list[Box]] = {}
    for index in range(images):
        boxes = []
        for cell in range(per_image):
            width, height = rng.uniform(60, 120), rng.uniform(60, 120)
            boxes.append(Box(rng.choice(LABELS), (cell % 4) * 200 + 30, (cell // 4) * 200 + 30, width, height))
        truth[f"s3://{BUCKET}/images/set/{index:03d}.jpg"] = boxes
    return truth


def ref(source_ref: str) -> ImageRef:
    key = source_ref.removeprefix(f"s3://{BUCKET}/")
    return ImageRef(BUCKET, key, "v1")


def people_fix(proposals: tuple[Box, ...], truth: list[Box]) -> list[Box]:
    """What careful people end with: the true boxes. A true box that some proposal overlaps came from that proposal
    (moved, relabeled or kept: origin prediction-changed, or prediction when identical); the others were drawn."""
    finals = []
    for true_box in truth:
        overlapping = [p for p in proposals if iou_matrix([p], [true_box])[0, 0] > 0]
        if not overlapping:
            origin = "manual"
        elif overlapping[0][:5] == true_box[:5]:
            origin = "prediction"
        else:
            origin = "prediction-changed"
        finals.append(true_box._replace(origin=origin, annotator="7"))
    return finals


def simulated_job(
    *, missed: float, extra: float, relabeled: float, jitter: float, seed: int, hold_out: int = 0
) -> tuple[list[ImageOutcome], Any]:
    truth = grid_truth(40, 8, seed)
    simulation = simulate(
        truth, missed=missed, extra=extra, relabeled=relabeled, jitter=jitter, labels=LABELS, seed=seed
    )
    outcomes = []
    for source_ref, true_boxes in truth.items():
        image = ref(source_ref)
        if held_out(image.source_ref, image.version, hold_out):
            proposal = Proposal("det-v1", image, 1000, 800, held_out=True)
            outcomes.append(ImageOutcome(image, proposal, tuple(b._replace(origin="manual") for b in true_boxes), 40.0))
            continue
        proposed = simulation.proposals_by_image[source_ref]
        proposal = Proposal("det-v1", image, 1000, 800, proposed)
        outcomes.append(ImageOutcome(image, proposal, tuple(people_fix(proposed, true_boxes)), 12.0))
    return outcomes, simulation


@pytest.mark.parametrize(
    ("missed", "extra", "relabeled", "jitter", "seed"),
    [(0.1, 0.2, 0.1, 0.05, 1), (0.3, 0.0, 0.0, 0.0, 2), (0.0, 0.5, 0.25, 0.03, 3), (0.0, 0.0, 0.0, 0.0, 4)],
)
def test_the_report_states_exactly_the_errors_the_detector_made(
    missed: float, extra: float, relabeled: float, jitter: float, seed: int
) -> None:
    outcomes, simulation = simulated_job(missed=missed, extra=extra, relabeled=relabeled, jitter=jitter, seed=seed)
    report = build_report("bbox-20261206-000000000001", "det-v1", 0.25, LABELS, outcomes)
    boxes = report["boxes"]
    proposed = simulation.kept + simulation.extra
    assert boxes["proposed"] == proposed
    assert boxes["relabeled"] == simulation.relabeled
    assert boxes["deleted"] == simulation.extra
    assert boxes["added"] == simulation.missed
    assert boxes["accepted"] + boxes["moved"] == simulation.kept - simulation.relabeled
    if jitter == 0:
        assert boxes["moved"] == 0
    if jitter == 0.05:  # every kept box below IoU 1 / 1.1 < 0.95: moved, never accepted
        assert boxes["accepted"] == 0
    assert report["shares"]["deleted"] == pytest.approx(simulation.extra / proposed, abs=1e-4)
    assert report["images"] == {"images": 40, "proposed": 40, "heldOut": 0, "withoutProposals": 0, "unanswered": 0}
    # Precision and recall at IoU 0.5, with the label: kept boxes not relabeled are right.
    right = simulation.kept - simulation.relabeled
    assert report["model"]["precision"] == pytest.approx(right / proposed, abs=1e-4)
    assert report["model"]["recall"] == pytest.approx(right / (simulation.kept + simulation.missed), abs=1e-4)


def cocoeval_stats(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = ground_truth
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats[:3]]


def test_the_reports_map_is_cocoevals_on_the_coco_json_and_the_predictions_file() -> None:
    outcomes, _ = simulated_job(missed=0.15, extra=0.3, relabeled=0.1, jitter=0.04, seed=11)
    report = build_report("job", "det-v1", 0.25, LABELS, outcomes)
    # coco.json as the job end writes it (ids from 1 in stream order, categories in label order from 1).
    image_ids = {outcome.image.source_ref: index + 1 for index, outcome in enumerate(outcomes)}
    annotations = [
        {"id": n + 1, "image_id": image_ids[o.image.source_ref], "category_id": LABELS.index(b.label) + 1,
         "bbox": [b.left, b.top, b.width, b.height], "area": b.width * b.height, "iscrowd": 0}
        for n, (o, b) in enumerate((o, b) for o in outcomes for b in o.finals or ())
    ]  # fmt: skip
    ground_truth = {
        "images": [{"id": i, "width": 1000, "height": 800} for i in image_ids.values()],
        "annotations": annotations,
        "categories": [{"id": index + 1, "name": label} for index, label in enumerate(LABELS)],
    }
    results = coco_results({o.image.source_ref: o.proposal for o in outcomes if o.proposal}, image_ids, LABELS)
    stats = cocoeval_stats(ground_truth, results)
    model = report["model"]
    assert [model["mAP"], model["mAP50"], model["mAP75"]] == pytest.approx(stats, abs=1e-4)
    assert 0 < model["mAP"] < 1


def test_held_out_images_time_labeling_without_proposals_and_a_slowdown_is_said_plainly() -> None:
    outcomes, _ = simulated_job(missed=0.1, extra=1.2, relabeled=0.0, jitter=0.0, seed=5, hold_out=30)
    held = [o for o in outcomes if o.proposal is not None and o.proposal.held_out]
    assert 5 <= len(held) <= 20  # about 30 % of 40
    # People took longer with these proposals (most of them false) than without.
    slowed = [o if o in held else ImageOutcome(o.image, o.proposal, o.finals, 55.0) for o in outcomes]
    report = build_report("job", "det-v1", 0.25, LABELS, slowed)
    assert report["images"]["heldOut"] == len(held)
    seconds = report["secondsPerImage"]
    assert (seconds["withProposals"], seconds["withoutProposals"]) == (55.0, 40.0)
    assert (seconds["timedWith"], seconds["timedWithout"], seconds["ratio"]) == (40 - len(held), len(held), 1.375)
    sentences = " ".join(report["advice"])
    assert "Pre-labels slowed people down: 55.0 s an image with them against 40.0 s without" in sentences
    assert "Most proposals were deleted" in sentences and "raise minScore (now 0.25)" in sentences
    # Held-out images are not compared: their boxes were all drawn.
    assert all("compared" not in entry for entry in report["perImage"] if entry.get("heldOut"))

    helped = build_report("job", "det-v1", 0.25, LABELS, simulated_job(
        missed=0.05, extra=0.05, relabeled=0.0, jitter=0.0, seed=5, hold_out=30)[0])  # fmt: skip
    assert helped["advice"][0].startswith("Pre-labels helped: 12.0 s an image with them against 40.0 s without")


def test_relabels_and_imprecise_boxes_name_the_class_map_and_the_model() -> None:
    total_relabeled = build_report(
        "job", "det-v1", 0.25, LABELS,
        simulated_job(missed=0.0, extra=0.0, relabeled=0.4, jitter=0.0, seed=8)[0],
    )  # fmt: skip
    assert any("check classMap" in sentence for sentence in total_relabeled["advice"])
    imprecise = build_report(
        "job", "det-v1", 0.25, LABELS,
        simulated_job(missed=0.0, extra=0.0, relabeled=0.0, jitter=0.08, seed=9)[0],
    )  # fmt: skip
    assert imprecise["boxes"]["moved"] == imprecise["boxes"]["proposed"]
    assert imprecise["keptIou"]["mean"] < 0.8
    assert any("imprecise" in sentence for sentence in imprecise["advice"])


def test_images_without_proposals_or_answers_are_counted_not_compared() -> None:
    image = ImageRef(BUCKET, "images/a.jpg", "v1")
    other = ImageRef(BUCKET, "images/b.jpg", "v1")
    proposal = Proposal("det-v1", image, 100, 100, (Box("Dog", 1, 1, 10, 10, 0.9),))
    report = build_report(
        "job",
        "det-v1",
        0.25,
        LABELS,
        [ImageOutcome(image, proposal, None), ImageOutcome(other, None, (Box("Cat", 5, 5, 20, 20),), 9.0)],
    )
    assert report["images"] == {"images": 2, "proposed": 1, "heldOut": 0, "withoutProposals": 1, "unanswered": 1}
    assert report["boxes"]["proposed"] == 0
    assert report["advice"] == ["No proposal was shown in this job, so there is nothing to judge yet."]
    json.dumps(report)  # what the job end writes must be JSON


def test_an_empty_answer_deletes_every_proposal_and_two_annotators_are_two_copies() -> None:
    image = ImageRef(BUCKET, "images/a.jpg", "v1")
    dog = Box("Dog", 10, 10, 50, 50, 0.9)
    proposal = Proposal("det-v1", image, 100, 100, (dog, Box("Cat", 70, 70, 20, 20, 0.4)))
    empty = build_report("job", "det-v1", 0.25, LABELS, [ImageOutcome(image, proposal, ())])
    assert empty["boxes"]["deleted"] == 2 and empty["boxes"]["proposed"] == 2
    two = build_report(
        "job", "det-v1", 0.25, LABELS,
        [ImageOutcome(image, proposal, (dog._replace(annotator="1", origin="prediction", confidence=None),
                                        dog._replace(annotator="2", origin="prediction", confidence=None)))],
    )  # fmt: skip
    assert two["boxes"] | {"final": 0} == {
        "proposed": 4, "accepted": 2, "moved": 0, "relabeled": 0, "deleted": 2, "added": 0, "final": 0}  # fmt: skip


def test_advice_needs_enough_timed_images_to_speak_of_speed() -> None:
    from labeling_pipeline.prelabel.metrics import Comparison

    few = advice(Comparison(accepted=8, moved=2), [30.0] * 4, [10.0] * 4, 0.25)
    assert few == [
        "10 of 10 proposals were kept; too few timed images (at least 5 with and 5 without proposals) to compare speed."
    ]
