"""The proposal metrics: `coco_map` held to pycocotools' COCOeval on random scenes built to hit its edge cases
(ties in score, IoUs on the thresholds, empty images, labels without ground truth, images with detections only,
more than maxDets detections, boxes outside the area range); `compare` and `precision_recall` on hand cases;
`simulate` checked against `compare`, which must find exactly the errors it put in."""

from __future__ import annotations

import contextlib
import io
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeling_pipeline.labels import Box
from labeling_pipeline.prelabel.metrics import (
    Comparison,
    MapResult,
    PrecisionRecall,
    Simulation,
    coco_map,
    compare,
    precision_recall,
    simulate,
)

# --- the reference: COCOeval on the same data ----------------------------------------------------------------------

OTHER_CATEGORY = 10_000  # a category id for boxes whose label is not evaluated: in no category list, so COCOeval skips


def reference_map(
    ground_truth: Mapping[str, Sequence[Box]], detections: Mapping[str, Sequence[Box]], labels: Sequence[str]
) -> MapResult:
    """What COCOeval(gt, dt, "bbox") says, with default parameters: images numbered in `coco_map`'s order (those of
    `ground_truth`, then those only in `detections`), labels numbered in the order given."""
    label_order = list(dict.fromkeys(labels))
    images = [*ground_truth, *(image for image in detections if image not in ground_truth)]
    image_ids = {image: n for n, image in enumerate(images, 1)}
    category_ids = {label: k for k, label in enumerate(label_order, 1)}
    # Annotation ids start at 1: COCOeval stores the matched id and reads 0 as "unmatched".
    truth_annotations = [
        {
            "id": n,
            "image_id": image_ids[image],
            "category_id": category_ids.get(box.label, OTHER_CATEGORY),
            "bbox": [box.left, box.top, box.width, box.height],
            "area": box.width * box.height,
            "iscrowd": 0,
        }
        for n, (image, box) in enumerate(((image, box) for image in ground_truth for box in ground_truth[image]), 1)
    ]
    results = [
        {
            "image_id": image_ids[image],
            "category_id": category_ids.get(box.label, OTHER_CATEGORY),
            "bbox": [box.left, box.top, box.width, box.height],
            "score": box.confidence,
        }
        for image in detections
        for box in detections[image]
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": [{"id": image_ids[image]} for image in images],
            "categories": [{"id": k, "name": label} for label, k in category_ids.items()],
            "annotations": truth_annotations,
        }
        truth.createIndex()
        if results:
            detected = truth.loadRes(results)
        else:  # loadRes reads results[0]: no detections at all is a result set built by hand
            detected = COCO()
            detected.dataset = {"images": truth.dataset["images"], "categories": truth.dataset["categories"]}
            detected.dataset["annotations"] = []
            detected.createIndex()
        evaluation = COCOeval(truth, detected, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()

    def mean_or_none(value: float) -> float | None:
        return None if value == -1 else float(value)

    precision = evaluation.eval["precision"]
    ap_by_label: dict[str, float | None] = {}
    for k, label in enumerate(label_order):
        label_precision = precision[:, :, k, 0, 2]
        counted = label_precision[label_precision > -1]
        ap_by_label[label] = float(np.mean(counted)) if counted.size else None
    return MapResult(
        map_50_95=mean_or_none(evaluation.stats[0]),
        map_50=mean_or_none(evaluation.stats[1]),
        map_75=mean_or_none(evaluation.stats[2]),
        ap_by_label=ap_by_label,
    )


def assert_same_as_cocoeval(
    ground_truth: Mapping[str, Sequence[Box]], detections: Mapping[str, Sequence[Box]], labels: Sequence[str]
) -> MapResult:
    expected = reference_map(ground_truth, detections, labels)
    got = coco_map(ground_truth, detections, labels)
    # Bit for bit: the same operations in the same order (a difference of one ulp would still be a difference).
    assert got == expected
    return got


# --- random scenes -------------------------------------------------------------------------------------------------

LABEL_POOL = ("a", "b", "c", "d")
BOX_LABELS = (*LABEL_POOL, "x")  # "x" is never evaluated
TIED_SCORES = (0.1, 0.5, 0.9)

labels_strategy = st.sampled_from(BOX_LABELS)
scores = st.one_of(st.sampled_from(TIED_SCORES), st.floats(0.0, 1.0, allow_nan=False))
# Integer boxes on a small grid make exact IoUs (1/2, 3/4, 9/10, ...) and identical boxes common; float boxes test
# rounding; huge boxes cross COCOeval's area range "all" (area > 1e10 is ignored, 1e5 * 1e5 == 1e10 is not).
grid_boxes = st.builds(Box, labels_strategy, st.integers(0, 8), st.integers(0, 8), st.integers(1, 6), st.integers(1, 6))
float_boxes = st.builds(
    Box,
    labels_strategy,
    st.floats(0, 10, allow_nan=False),
    st.floats(0, 10, allow_nan=False),
    st.floats(0.1, 8, allow_nan=False),
    st.floats(0.1, 8, allow_nan=False),
)
huge_boxes = st.builds(
    Box,
    labels_strategy,
    st.sampled_from([0.0, 5e4]),
    st.sampled_from([0.0, 5e4]),
    st.sampled_from([1e5, 1.5e5, 2e5]),
    st.sampled_from([1e5, 0.5e5]),
)
truth_boxes = st.one_of(grid_boxes, grid_boxes, float_boxes, huge_boxes)
# Shifts and resizes of a true box, as shares of its sides: IoU 1, 1/2, 1/3, 3/5, ...
SHIFTS = (0.0, 0.0, 0.5, -0.25, 0.1, 1.0)
RESIZES = (1.0, 1.0, 0.5, 0.9, 1.5)


@st.composite
def detection_boxes(draw: st.DrawFn, truth: Sequence[Box]) -> Box:
    if len(truth) > 0 and draw(st.booleans()):
        base = draw(st.sampled_from(truth))
        label = base.label if draw(st.booleans()) else draw(labels_strategy)
        box = Box(
            label,
            base.left + draw(st.sampled_from(SHIFTS)) * base.width,
            base.top + draw(st.sampled_from(SHIFTS)) * base.height,
            base.width * draw(st.sampled_from(RESIZES)),
            base.height * draw(st.sampled_from(RESIZES)),
        )
    else:
        box = draw(truth_boxes)
    return box._replace(confidence=draw(scores))


Scene = tuple[dict[str, list[Box]], dict[str, list[Box]], list[str]]


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    labels = draw(st.lists(st.sampled_from(LABEL_POOL), min_size=1, max_size=4, unique=True))
    ground_truth = {f"image-{i}": draw(st.lists(truth_boxes, max_size=6)) for i in range(draw(st.integers(0, 4)))}
    detections: dict[str, list[Box]] = {}
    detection_images = [
        *(image for image in ground_truth if draw(st.booleans())),
        *(f"detections-only-{i}" for i in range(draw(st.integers(0, 2)))),
    ]
    for image in draw(st.permutations(detection_images)):
        detections[image] = draw(st.lists(detection_boxes(ground_truth.get(image, [])), max_size=8))
    return ground_truth, detections, labels


@settings(max_examples=150, deadline=None)
@given(scenes())
def test_coco_map_equals_cocoeval(scene: Scene) -> None:
    assert_same_as_cocoeval(*scene)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(95, 140),
    st.integers(0, 12),
    st.sampled_from([(0.5,), TIED_SCORES, (0.25, 0.5, 0.75, 0.8, 0.9, 0.95)]),
)
def test_coco_map_equals_cocoeval_beyond_max_detections(
    seed: int, crowded: int, truth_count: int, score_values: tuple[float, ...]
) -> None:
    """More than 100 detections of one label in one image: only the best-scored 100 count (per image and label), ties
    in score broken by their order; a second image and label make the cut per image and label, not per image."""
    rng = random.Random(seed)

    def grid_box(label: str) -> Box:
        return Box(label, rng.randint(0, 20), rng.randint(0, 20), rng.randint(2, 8), rng.randint(2, 8))

    def scored(box: Box) -> Box:
        return box._replace(confidence=rng.choice(score_values))

    crowd_truth = [grid_box("a") for _ in range(truth_count)]
    crowd = [
        scored(rng.choice(crowd_truth) if crowd_truth and rng.random() < 0.3 else grid_box("a")) for _ in range(crowded)
    ]
    crowd += [scored(grid_box("b")) for _ in range(rng.randint(0, 20))]
    rng.shuffle(crowd)
    other_truth = [grid_box(rng.choice("ab")) for _ in range(rng.randint(0, 5))]
    ground_truth = {"crowded": crowd_truth, "other": other_truth}
    detections = {
        "other": [scored(rng.choice([*other_truth, grid_box("a")])) for _ in range(rng.randint(0, 110))],
        "crowded": crowd,
    }
    assert_same_as_cocoeval(ground_truth, detections, ["a", "b"])


def test_coco_map_cut_at_max_detections_matters() -> None:
    """101 detections on one true box: the true one scored last is the 101st and does not count, so AP is 0."""
    truth = Box("a", 0, 0, 10, 10)
    false_ones = [Box("a", 100 + 20 * i, 0, 10, 10, confidence=0.9) for i in range(100)]
    result = assert_same_as_cocoeval({"i": [truth]}, {"i": [*false_ones, truth._replace(confidence=0.8)]}, ["a"])
    assert result.map_50_95 == 0.0
    # With one false detection fewer the true one is the 100th: found, at precision 1/100.
    result = assert_same_as_cocoeval({"i": [truth]}, {"i": [*false_ones[1:], truth._replace(confidence=0.8)]}, ["a"])
    assert result.map_50_95 == pytest.approx(0.01, rel=1e-6)


# A perfect detector's precision is 1 / (1 + eps) in COCOeval, a hair below 1.
ONE: Any = pytest.approx(1.0, abs=1e-12)


def test_coco_map_perfect_detector() -> None:
    ground_truth = {
        "one": [Box("cat", 10, 10, 50, 40), Box("dog", 100, 20, 30, 30)],
        "two": [Box("cat", 0, 0, 5, 5)],
        "empty": [],
    }
    detections = {image: [box._replace(confidence=0.9) for box in boxes] for image, boxes in ground_truth.items()}
    result = assert_same_as_cocoeval(ground_truth, detections, ["cat", "dog", "bird"])
    assert result == MapResult(ONE, ONE, ONE, {"cat": ONE, "dog": ONE, "bird": None})


def test_coco_map_no_detections() -> None:
    ground_truth = {"one": [Box("cat", 10, 10, 50, 40)], "two": [Box("dog", 0, 0, 5, 5)]}
    result = assert_same_as_cocoeval(ground_truth, {}, ["cat", "dog"])
    assert result == MapResult(0.0, 0.0, 0.0, {"cat": 0.0, "dog": 0.0})


def test_coco_map_no_ground_truth() -> None:
    detections = {"one": [Box("cat", 10, 10, 50, 40, confidence=0.5)], "two": []}
    result = assert_same_as_cocoeval({"one": [], "two": []}, detections, ["cat", "dog"])
    assert result == MapResult(None, None, None, {"cat": None, "dog": None})
    # Ground truth of a label not evaluated is no ground truth either.
    result = assert_same_as_cocoeval({"one": [Box("dog", 10, 10, 50, 40)]}, detections, ["cat"])
    assert result == MapResult(None, None, None, {"cat": None})
    assert coco_map({}, {}, []) == MapResult(None, None, None, {})


def test_coco_map_label_without_ground_truth_counts_in_no_mean() -> None:
    ground_truth = {"one": [Box("cat", 0, 0, 10, 10)]}
    detections = {"one": [Box("cat", 0, 0, 10, 10, confidence=0.9), Box("dog", 50, 50, 10, 10, confidence=0.95)]}
    result = assert_same_as_cocoeval(ground_truth, detections, ["cat", "dog", "cat"])
    assert result == MapResult(ONE, ONE, ONE, {"cat": ONE, "dog": None})


def test_coco_map_half_overlap_is_on_the_threshold() -> None:
    """IoU exactly 0.5 matches at the .50 threshold only."""
    result = assert_same_as_cocoeval({"i": [Box("a", 0, 0, 2, 1)]}, {"i": [Box("a", 0, 0, 1, 1, confidence=1)]}, ["a"])
    assert result.map_50 == ONE
    assert result.map_75 == 0.0
    assert result.map_50_95 == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("truth_width", "height", "detection_width", "threshold"),
    [
        # Computed as maskApi.c does (union = da + ga - i), the IoU is 0.49999999999999994; as da - i + ga it is 0.5.
        (21.20754943968761, 2.8927907036505673, 10.603774719843805, 0.5),
        # 0.8000000000000002 against 0.7999999999999999.
        (1.7098413096355154, 2.8525337782636373, 1.3678730477084122, 0.8),
    ],
)
def test_coco_map_iou_rounds_as_cocoeval(
    truth_width: float, height: float, detection_width: float, threshold: float
) -> None:
    """An IoU a rounding away from a threshold falls on COCOeval's side of it."""
    result = assert_same_as_cocoeval(
        {"i": [Box("a", 0, 0, truth_width, height)]},
        {"i": [Box("a", 0, 0, detection_width, height, confidence=0.5)]},
        ["a"],
    )
    assert result.map_50 == (0.0 if threshold == 0.5 else ONE)


def test_coco_map_stops_at_an_ignored_box_once_a_counted_one_matched() -> None:
    """A detection matching a counted box (area 1e10, IoU 0.77) is a true positive even though a box outside the
    area range (1.5e10) fits it better (IoU 0.87): COCOeval's scan stops at the first ignored box."""
    ground_truth = {"i": [Box("a", 0, 0, 1e5, 1.5e5), Box("a", 0, 0, 1e5, 1e5)]}
    detections = {"i": [Box("a", 0, 0, 1e5, 1.3e5, confidence=0.5)]}
    result = assert_same_as_cocoeval(ground_truth, detections, ["a"])
    assert result.map_50 == ONE
    # Alone, the ignored box makes the detection neither true nor false, and there is nothing to find.
    result = assert_same_as_cocoeval({"i": ground_truth["i"][:1]}, detections, ["a"])
    assert result.map_50 is None


def test_coco_map_ignores_unmatched_detections_outside_the_area_range() -> None:
    """An unmatched detection larger than 1e10 is no false positive; one of exactly 1e10 is."""
    truth = Box("a", 0, 0, 10, 10)
    for size, expected in [(1.5e5, ONE), (1e5, pytest.approx(0.5))]:
        detections = {"i": [Box("a", 1e3, 0, 1e5, size, confidence=0.9), truth._replace(confidence=0.5)]}
        assert assert_same_as_cocoeval({"i": [truth]}, detections, ["a"]).map_50_95 == expected


def test_coco_map_image_order_breaks_ties_across_images() -> None:
    """Tied scores across images rank in COCO's image id order: the ground truth's images in its order, then the
    images with detections only, whatever the order of `detections`."""
    a, b = Box("a", 0, 0, 10, 10), Box("a", 50, 50, 10, 10)
    false_one = Box("a", 200, 200, 10, 10, confidence=0.5)
    detections = {"only": [false_one], "second": [false_one], "first": [a._replace(confidence=0.5)]}
    # Ranked: the true positive of "first", then the false ones: precision 1 up to recall 1/2.
    result = assert_same_as_cocoeval({"first": [a], "second": [b]}, detections, ["a"])
    assert result.map_50_95 == pytest.approx(51 / 101)
    # The false one of "second" first: precision 1/2 at recall 1/2.
    result = assert_same_as_cocoeval({"second": [b], "first": [a]}, detections, ["a"])
    assert result.map_50_95 == pytest.approx(0.5 * 51 / 101)


@pytest.mark.parametrize("confidence", [None, math.nan])
def test_coco_map_needs_scores(confidence: float | None) -> None:
    with pytest.raises(ValueError, match="no score"):
        coco_map({"i": []}, {"i": [Box("a", 0, 0, 1, 1, confidence=confidence)]}, ["a"])


# --- compare -------------------------------------------------------------------------------------------------------

SPOT = Box("cat", 0, 0, 100, 100)
FAR = Box("cat", 500, 500, 100, 100)


def test_compare_accepted_at_unchanged_iou() -> None:
    assert compare([SPOT], [SPOT]) == Comparison(accepted=1, kept_ious=(1.0,))
    # IoU 9500 / 10000 == 0.95 exactly: still accepted; 0.94 is moved.
    assert compare([SPOT], [SPOT._replace(width=95)]) == Comparison(accepted=1, kept_ious=(0.95,))
    assert compare([SPOT], [SPOT._replace(width=94)]) == Comparison(moved=1, kept_ious=(0.94,))
    assert compare([SPOT], [SPOT._replace(width=94)], unchanged_iou=0.9) == Comparison(accepted=1, kept_ious=(0.94,))


def test_compare_moved_relabeled_deleted_added() -> None:
    proposals = [
        SPOT,  # moved: IoU 0.6
        Box("cat", 1000, 0, 100, 100),  # relabeled
        Box("dog", 2000, 0, 100, 100),  # deleted: nothing near it
    ]
    finals = [
        Box("dog", 1000, 0, 100, 100),
        SPOT._replace(width=60),
        FAR,  # added
    ]
    assert compare(proposals, finals) == Comparison(
        accepted=0, moved=1, relabeled=1, deleted=1, added=1, kept_ious=(1.0, 0.6)
    )


def test_compare_match_iou_is_inclusive() -> None:
    half = SPOT._replace(width=50)  # IoU 0.5
    assert compare([SPOT], [half]) == Comparison(moved=1, kept_ious=(0.5,))
    assert compare([SPOT], [SPOT._replace(width=49)]) == Comparison(deleted=1, added=1)
    assert compare([SPOT], [half], match_iou=0.6) == Comparison(deleted=1, added=1)
    assert compare([SPOT], [half._replace(label="dog")]) == Comparison(relabeled=1, kept_ious=(0.5,))


def test_compare_pairs_greedily_one_to_one() -> None:
    # Both proposals overlap the one final box; the closer one (IoU 0.9 against 0.8) becomes it.
    proposals = [SPOT._replace(width=80), SPOT._replace(width=90)]
    assert compare(proposals, [SPOT]) == Comparison(moved=1, deleted=1, kept_ious=(0.9,))
    # Two finals on the spot, the first of another label: on the tie the same label wins.
    finals = [SPOT._replace(label="dog"), SPOT]
    assert compare([SPOT], finals) == Comparison(accepted=1, added=1, kept_ious=(1.0,))
    # Two identical proposals, one final: one accepted, one deleted.
    assert compare([SPOT, SPOT], [SPOT]) == Comparison(accepted=1, deleted=1, kept_ious=(1.0,))
    # Highest IoU first overall, not proposal by proposal: the first proposal's best final (IoU 0.9) is the second's
    # too (IoU 1.0), so the first takes the other final (0.6).
    proposals = [SPOT._replace(width=90), SPOT]
    finals = [SPOT, SPOT._replace(width=54)]
    assert compare(proposals, finals) == Comparison(moved=1, accepted=1, kept_ious=(1.0, 0.6))


def test_compare_empty() -> None:
    assert compare([], []) == Comparison()
    assert compare([SPOT, FAR], []) == Comparison(deleted=2)
    assert compare([], [SPOT, FAR]) == Comparison(added=2)


def test_compare_manual_box_is_added_even_on_a_proposal() -> None:
    assert compare([SPOT], [SPOT], origins=["manual"]) == Comparison(deleted=1, added=1)
    # Without origins (or with no word) the same boxes are an accepted proposal.
    assert compare([SPOT], [SPOT], origins=[None]) == Comparison(accepted=1, kept_ious=(1.0,))
    assert compare([SPOT], [SPOT], origins=["something-new"]) == Comparison(accepted=1, kept_ious=(1.0,))
    # The proposal goes to another final box that is not manual.
    finals = [SPOT, SPOT._replace(width=80)]
    assert compare([SPOT], finals, origins=["manual", "prediction-changed"]) == Comparison(
        moved=1, added=1, kept_ious=(0.8,)
    )


def test_compare_prediction_moved_far_is_still_paired() -> None:
    assert compare([SPOT], [FAR], origins=["prediction-changed"]) == Comparison(moved=1, kept_ious=(0.0,))
    assert compare([SPOT], [FAR._replace(label="dog")], origins=["prediction-changed"]) == Comparison(
        relabeled=1, kept_ious=(0.0,)
    )
    assert compare([SPOT], [FAR], origins=["prediction"]) == Comparison(moved=1, kept_ious=(0.0,))
    # Geometry alone would call it deleted and added.
    assert compare([SPOT], [FAR]) == Comparison(deleted=1, added=1)
    assert compare([SPOT], [FAR], origins=[None]) == Comparison(deleted=1, added=1)


def test_compare_prediction_pairs_with_the_closest_unpaired_proposal() -> None:
    # The first proposal pairs by geometry; of the other two, the one nearer the moved box (IoU 0.25 against 0) is it.
    proposals = [SPOT, Box("cat", 1000, 0, 100, 100), Box("cat", 400, 0, 100, 100)]
    moved = Box("cat", 460, 0, 100, 100)  # IoU 40 / 160 with the third proposal
    comparison = compare(proposals, [SPOT, moved], origins=["prediction", "prediction-changed"])
    assert comparison == Comparison(accepted=1, moved=1, deleted=1, kept_ious=(1.0, 0.25))


def test_compare_prediction_without_a_proposal_left_is_added() -> None:
    assert compare([], [SPOT], origins=["prediction"]) == Comparison(added=1)
    assert compare([SPOT], [SPOT, FAR], origins=["prediction", "prediction-changed"]) == Comparison(
        accepted=1, added=1, kept_ious=(1.0,)
    )


@pytest.mark.parametrize("origins", [[], ["manual"], ["manual", None, "prediction"]])
def test_compare_origins_one_per_final_box(origins: list[str | None]) -> None:
    with pytest.raises(ValueError, match="one origin per final box"):
        compare([SPOT], [SPOT, FAR], origins=origins)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(grid_boxes, max_size=8),
    st.lists(st.tuples(grid_boxes, st.sampled_from([None, "manual", "prediction", "prediction-changed", "other"]))),
    st.booleans(),
)
def test_compare_accounts_for_every_box(
    proposals: list[Box], finals_with_origins: list[tuple[Box, str | None]], use_origins: bool
) -> None:
    finals = [box for box, _ in finals_with_origins]
    origins = [origin for _, origin in finals_with_origins] if use_origins else None
    comparison = compare(proposals, finals, origins=origins)
    assert comparison.proposals == len(proposals)
    assert comparison.finals == len(finals)
    assert len(comparison.kept_ious) == comparison.accepted + comparison.moved + comparison.relabeled
    assert all(0 <= iou <= 1 for iou in comparison.kept_ious)
    if origins is None:
        assert all(iou >= 0.5 for iou in comparison.kept_ious)
        assert comparison == compare(proposals, finals, origins=[None] * len(finals))
    else:
        assert comparison.added >= origins.count("manual")


def test_comparisons_add_up() -> None:
    comparisons = [
        Comparison(accepted=1, moved=2, relabeled=3, deleted=4, added=5, kept_ious=(1.0, 0.9)),
        Comparison(accepted=10, moved=20, relabeled=30, deleted=40, added=50, kept_ious=(0.5,)),
        Comparison(),
    ]
    total = sum(comparisons, Comparison())
    assert total == Comparison(accepted=11, moved=22, relabeled=33, deleted=44, added=55, kept_ious=(1.0, 0.9, 0.5))
    assert total.proposals == 11 + 22 + 33 + 44
    assert total.finals == 11 + 22 + 33 + 55
    comparison = compare([SPOT, FAR], [SPOT, Box("cat", 2000, 0, 10, 10), Box("cat", 3000, 0, 10, 10)])
    assert (comparison.proposals, comparison.finals) == (2, 3)


# --- precision_recall ----------------------------------------------------------------------------------------------


def test_precision_recall() -> None:
    proposals = {
        "one": [SPOT, Box("cat", 1000, 0, 100, 100), FAR],  # right, wrong label, nothing there
        "proposals-only": [SPOT],
        "two": [SPOT, SPOT._replace(width=90)],  # two on one final box: one right
    }
    finals = {
        "one": [SPOT, Box("dog", 1000, 0, 100, 100)],
        "two": [SPOT],
        "finals-only": [SPOT, FAR],
    }
    result = precision_recall(proposals, finals)
    assert result == PrecisionRecall(true_positives=2, proposals=6, finals=5)
    assert result.precision == 2 / 6
    assert result.recall == 2 / 5
    # The IoU threshold is inclusive.
    assert precision_recall({"i": [SPOT._replace(width=94)]}, {"i": [SPOT]}, iou=0.95).true_positives == 0
    assert precision_recall({"i": [SPOT._replace(width=95)]}, {"i": [SPOT]}, iou=0.95).true_positives == 1
    assert precision_recall({"i": [SPOT._replace(width=49)]}, {"i": [SPOT]}).true_positives == 0


def test_precision_recall_none_without_boxes() -> None:
    assert precision_recall({}, {}) == PrecisionRecall(0, 0, 0)
    assert precision_recall({}, {}).precision is None
    assert precision_recall({}, {}).recall is None
    only_finals = precision_recall({"i": []}, {"i": [SPOT]})
    assert (only_finals.precision, only_finals.recall) == (None, 0.0)
    only_proposals = precision_recall({"i": [SPOT]}, {})
    assert (only_proposals.precision, only_proposals.recall) == (0.0, None)


# --- simulate ------------------------------------------------------------------------------------------------------

LABELS = ["cat", "dog", "bird"]


def grid_truth(seed: int, images: int, per_image: int) -> dict[str, list[Box]]:
    """Boxes 20 to 40 pixels a side, one per 100-pixel cell: further apart than any jitter below moves an edge."""
    rng = random.Random(seed)
    truth: dict[str, list[Box]] = {}
    for i in range(images):
        count = rng.randint(0, per_image)
        cells = rng.sample(range(25), count)
        truth[f"image-{i}"] = [
            Box(
                rng.choice(LABELS),
                100 * (cell % 5) + rng.randint(0, 50),
                100 * (cell // 5) + rng.randint(0, 50),
                rng.randint(20, 40),
                rng.randint(20, 40),
            )
            for cell in cells
        ]
    return truth


def compare_all(simulation: Simulation, truth: Mapping[str, Sequence[Box]]) -> Comparison:
    assert set(simulation.proposals_by_image) == set(truth)
    return sum((compare(simulation.proposals_by_image[image], truth[image]) for image in truth), Comparison())


@settings(max_examples=60, deadline=None)
@given(
    truth_seed=st.integers(0, 2**32 - 1),
    images=st.integers(1, 5),
    per_image=st.integers(0, 12),
    missed=st.floats(0, 1),
    relabeled_share=st.floats(0, 1),
    extra=st.floats(0, 2),
    jitter=st.sampled_from([0.0, 0.02, 0.05, 0.08]),
    seed=st.integers(0, 2**32 - 1),
)
def test_simulate_errors_are_what_compare_finds(
    truth_seed: int,
    images: int,
    per_image: int,
    missed: float,
    relabeled_share: float,
    extra: float,
    jitter: float,
    seed: int,
) -> None:
    truth = grid_truth(truth_seed, images, per_image)
    count = sum(map(len, truth.values()))
    relabeled = relabeled_share * (1 - missed)
    assume(missed + relabeled <= 1)
    simulation = simulate(
        truth, missed=missed, extra=extra, relabeled=relabeled, jitter=jitter, labels=LABELS, seed=seed
    )
    assert simulation.missed == round(missed * count)
    assert simulation.kept == count - simulation.missed
    assert simulation.relabeled == min(round(relabeled * count), simulation.kept)
    assert simulation.extra == round(extra * count)
    proposals = [box for boxes in simulation.proposals_by_image.values() for box in boxes]
    assert len(proposals) == simulation.kept + simulation.extra
    assert all(box.confidence is not None and 0.05 <= box.confidence < 1 for box in proposals)

    total = compare_all(simulation, truth)
    assert total.relabeled == simulation.relabeled
    assert total.deleted == simulation.extra
    assert total.added == simulation.missed
    assert total.accepted + total.moved == simulation.kept - simulation.relabeled
    lowest, highest = ((1 - 2 * jitter) / (1 + 2 * jitter)) ** 2, 1 / (1 + 2 * jitter)
    assert len(total.kept_ious) == simulation.kept
    assert all(lowest - 1e-9 <= iou <= highest + 1e-9 for iou in total.kept_ious)
    if jitter == 0:
        assert total.moved == 0
    if jitter == 0.05:  # at most 1 / 1.1 < 0.95
        assert total.accepted == 0

    assert_same_as_cocoeval(truth, simulation.proposals_by_image, LABELS)


@pytest.mark.parametrize(
    ("missed", "extra", "relabeled", "jitter", "seed"),
    [
        (0.0, 0.0, 0.0, 0.0, 1),
        (0.1, 0.2, 0.1, 0.0, 2),
        (0.3, 1.0, 0.2, 0.05, 3),
        (0.0, 0.5, 0.5, 0.05, 4),
        (0.5, 0.0, 0.5, 0.03, 5),
        (1.0, 0.3, 0.0, 0.05, 6),
        (0.0, 0.0, 1.0, 0.05, 7),
    ],
)
def test_simulate_settings(missed: float, extra: float, relabeled: float, jitter: float, seed: int) -> None:
    truth = grid_truth(seed, images=4, per_image=15)
    truth["no-truth"] = []
    count = sum(map(len, truth.values()))
    simulation = simulate(
        truth, missed=missed, extra=extra, relabeled=relabeled, jitter=jitter, labels=LABELS, seed=seed
    )
    assert (simulation.missed, simulation.relabeled, simulation.extra) == (
        round(missed * count),
        min(round(relabeled * count), simulation.kept),
        round(extra * count),
    )
    total = compare_all(simulation, truth)
    kept_same_label = simulation.kept - simulation.relabeled
    assert total == Comparison(
        accepted=kept_same_label if jitter == 0 else 0,
        moved=kept_same_label if jitter == 0.05 else total.moved,
        relabeled=simulation.relabeled,
        deleted=simulation.extra,
        added=simulation.missed,
        kept_ious=total.kept_ious,
    )
    assert total.accepted + total.moved == kept_same_label
    assert_same_as_cocoeval(truth, simulation.proposals_by_image, LABELS)


def test_simulate_perfect_detector_scores_perfectly() -> None:
    truth = grid_truth(11, images=3, per_image=10)
    simulation = simulate(truth, missed=0, extra=0, relabeled=0, jitter=0, labels=LABELS, seed=0)
    result = coco_map(truth, simulation.proposals_by_image, LABELS)
    assert (result.map_50_95, result.map_50, result.map_75) == (ONE, ONE, ONE)
    assert precision_recall(simulation.proposals_by_image, truth) == PrecisionRecall(
        simulation.kept, simulation.kept, simulation.kept
    )


@pytest.mark.parametrize("jitter", [0.0, 0.01, 0.05, 0.2])
def test_simulate_moves_each_edge_by_jitter(jitter: float) -> None:
    truth = grid_truth(7, images=3, per_image=10)
    simulation = simulate(truth, missed=0, extra=0, relabeled=0, jitter=jitter, labels=LABELS, seed=3)
    moves: set[tuple[bool, ...]] = set()
    for image, boxes in truth.items():
        proposals = simulation.proposals_by_image[image]
        assert len(proposals) == len(boxes)
        for box in boxes:
            [proposal] = [p for p in proposals if abs(p.left - box.left) < 10 and abs(p.top - box.top) < 10]
            assert proposal.label == box.label
            left_move, top_move = proposal.left - box.left, proposal.top - box.top
            right_move = proposal.left + proposal.width - (box.left + box.width)
            bottom_move = proposal.top + proposal.height - (box.top + box.height)
            for move, side in [(left_move, box.width), (right_move, box.width)]:
                assert abs(move) == pytest.approx(jitter * side, abs=1e-9)
            for move, side in [(top_move, box.height), (bottom_move, box.height)]:
                assert abs(move) == pytest.approx(jitter * side, abs=1e-9)
            moves.add((left_move > 0, right_move > 0, top_move > 0, bottom_move > 0))
            assert proposal.confidence is not None and 0.5 <= proposal.confidence < 1
    if jitter:
        assert len(moves) > 4  # outward and inward, at random


def test_simulate_same_seed_same_proposals() -> None:
    truth = grid_truth(5, images=4, per_image=12)
    arguments: dict[str, Any] = {"missed": 0.2, "extra": 0.5, "relabeled": 0.2, "jitter": 0.05, "labels": LABELS}
    first = simulate(truth, seed=42, **arguments)
    assert simulate(truth, seed=42, **arguments) == first
    assert simulate(truth, seed=43, **arguments).proposals_by_image != first.proposals_by_image


def test_simulate_false_box_beside_a_crowded_image() -> None:
    """One true box filling its image's span: no free spot inside, so the false box goes right beside it."""
    truth = {"only": [Box("cat", 10, 10, 30, 30)]}
    simulation = simulate(truth, missed=0, extra=3, relabeled=0, jitter=0, labels=LABELS, seed=0)
    assert simulation.extra == 3
    assert compare_all(simulation, truth) == Comparison(accepted=1, deleted=3, kept_ious=(1.0,))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"missed": -0.1}, "missed"),
        ({"missed": 1.1}, "missed"),
        ({"missed": math.nan}, "missed"),
        ({"relabeled": -0.1}, "relabeled"),
        ({"relabeled": 1.5}, "relabeled"),
        ({"missed": 0.6, "relabeled": 0.5}, "missed"),
        ({"extra": -1}, "extra"),
        ({"extra": math.nan}, "extra"),
        ({"jitter": -0.01}, "jitter"),
        ({"jitter": 0.5}, "jitter"),
        ({"jitter": math.nan}, "jitter"),
        ({"relabeled": 0.5, "labels": []}, "labels"),
        ({"extra": 0.5, "labels": []}, "labels"),
        ({"relabeled": 1.0, "labels": ["cat"]}, "another label"),
    ],
)
def test_simulate_invalid_arguments(arguments: dict[str, Any], message: str) -> None:
    truth = {"i": [Box("cat", 0, 0, 10, 10), Box("cat", 100, 0, 10, 10)]}
    with pytest.raises(ValueError, match=message):
        simulate(
            truth, **{"missed": 0, "extra": 0, "relabeled": 0, "jitter": 0, "labels": LABELS, "seed": 0, **arguments}
        )
