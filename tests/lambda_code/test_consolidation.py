"""Consolidation of several annotators' boxes, and their agreement.

- A synthetic job whose consolidation is known exactly: three annotators draw jittered copies of the true boxes
  (offsets that average back to the truth), one misses a box, one adds a spurious box, one gets a label wrong; the
  consolidation must give back the truth, box for box, and the agreement and annotator scores the formulas say.
- Hand cases: ties with two annotators, empty answers, one annotator, the threshold itself, a chain of neighbours,
  a wrong label that must not win a box from the right one, agreement numbers worked out by hand.
- Properties (hypothesis): the order of annotators and boxes changes nothing; identical answers give the same boxes
  with confidence 1 and agreement 1; a consolidated box lies within its members; every box lands in one cluster.
- The IoU is pycocotools' (held to `prelabel.metrics.iou_matrix`), and the module imports without numpy.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling_pipeline.consolidation import (
    ANONYMOUS,
    AnnotatorScore,
    Consolidated,
    JobAgreement,
    annotator_scores,
    consolidate,
    consolidate_image,
    group_by_annotator,
    image_agreement,
    iou,
    pairwise_f1,
)
from labeling_pipeline.labels import Box, LabeledImage
from labeling_pipeline.prelabel.metrics import iou_matrix

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("Bird", "Cat", "Dog")

# --- the synthetic job -------------------------------------------------------------------------------------------

# Each object sits in its own cell of a grid, 60 to 80 px a side, 10 to 30 px from the cell's corner: jittered by at
# most 3 px (and resized by at most 2), two annotators' copies still overlap at IoU 0.6 or more, and no copy reaches
# the next cell. Integer coordinates and offsets that cancel keep every mean exact.
CELL = 120
GRID = 4
MISSES = "ann-1"  # misses one box per image
ADDS = "ann-2"  # adds one spurious box per image, where there is nothing
MISLABELS = "ann-3"  # gets one label wrong per image
ANNOTATORS = (MISSES, ADDS, MISLABELS)


class SyntheticImage:
    def __init__(self, truth: list[Box], answers: dict[str, list[Box]], missed: Box, mislabeled: Box) -> None:
        self.truth = truth
        self.answers = answers
        self.missed = missed
        self.mislabeled = mislabeled


def _shifted(box: Box, dx: int, dy: int, grow: int) -> Box:
    return box._replace(
        left=box.left + dx - grow, top=box.top + dy - grow, width=box.width + 2 * grow, height=box.height + 2 * grow
    )


def synthetic_image(rng: random.Random, objects: int) -> SyntheticImage:
    """`objects` true boxes (2 to GRID * GRID - 1) and the three annotators' answers, in a shuffled order."""
    cells = rng.sample([(x, y) for x in range(GRID) for y in range(GRID)], objects + 1)
    truth = [
        Box(
            rng.choice(LABELS),
            float(x * CELL + rng.randrange(10, 31)),
            float(y * CELL + rng.randrange(10, 31)),
            float(rng.randrange(60, 81)),
            float(rng.randrange(60, 81)),
        )
        for x, y in cells[:objects]
    ]
    missed, mislabeled = rng.sample(range(objects), 2)
    answers: dict[str, list[Box]] = {annotator: [] for annotator in ANNOTATORS}
    for n, box in enumerate(truth):
        dx, dy, grow = rng.randrange(1, 4), rng.randrange(1, 4), rng.randrange(0, 2)
        drawing = [annotator for annotator in ANNOTATORS if not (n == missed and annotator == MISSES)]
        # +offset, -offset (and 0 for a third): the mean of the copies is the true box.
        offsets = [(dx, dy, grow), (-dx, -dy, -grow), (0, 0, 0)][: len(drawing)]
        rng.shuffle(offsets)
        for annotator, offset in zip(drawing, offsets, strict=True):
            copy = _shifted(box, *offset)
            if n == mislabeled and annotator == MISLABELS:
                copy = copy._replace(label=rng.choice([label for label in LABELS if label != box.label]))
            answers[annotator].append(copy)
    x, y = cells[objects]
    answers[ADDS].append(
        Box(rng.choice(LABELS), float(x * CELL + 20), float(y * CELL + 20), float(rng.randrange(60, 81)), 70.0)
    )
    for boxes in answers.values():
        rng.shuffle(boxes)
    return SyntheticImage(truth, answers, truth[missed], truth[mislabeled])


def synthetic_job(images: int, objects: int, seed: int) -> dict[str, SyntheticImage]:
    rng = random.Random(seed)
    return {f"s3://bucket/image-{n:05d}.jpg": synthetic_image(rng, objects) for n in range(images)}


def geometry(box: Box) -> tuple[str, float, float, float, float]:
    return box.label, box.left, box.top, box.width, box.height


def reading_order(boxes: Sequence[Box]) -> list[tuple[str, float, float, float, float]]:
    return sorted((geometry(box) for box in boxes), key=lambda g: (g[2], g[1], g[4], g[3], g[0]))


def reference_mean_iou(boxes: Sequence[Box]) -> float:
    """The mean IoU of every pair, by numpy's iou_matrix (another implementation)."""
    matrix = iou_matrix(boxes, boxes)
    pairs = [min(float(matrix[p, q]), 1.0) for p, q in itertools.combinations(range(len(boxes)), 2)]
    return sum(pairs) / len(pairs) if pairs else 1.0


@pytest.mark.parametrize("objects", [2, 4, 8])
def test_the_synthetic_job_consolidates_to_its_truth(objects: int) -> None:
    job = synthetic_job(40, objects, seed=objects)
    agreement = JobAgreement()
    for name, image in job.items():
        consolidated = consolidate(image.answers)
        agreement.add(name, consolidated)
        assert reading_order(consolidated.boxes) == reading_order(image.truth)
        assert pairwise_f1(consolidated.boxes, image.truth) == 1.0
        kept = [cluster for cluster in consolidated.clusters if cluster.kept]
        dropped = [cluster for cluster in consolidated.clusters if not cluster.kept]
        # The spurious box is the one cluster dropped: one annotator of three drew it.
        assert [cluster.annotators for cluster in dropped] == [(ADDS,)]
        assert not any(cluster.label_tied for cluster in consolidated.clusters)
        for cluster in kept:
            truth = geometry(cluster.box)
            winning_votes = dict(cluster.votes)[cluster.box.label]
            if truth[1:] == geometry(image.missed)[1:]:
                assert cluster.annotators == (ADDS, MISLABELS) and winning_votes == 2
            elif truth[1:] == geometry(image.mislabeled)[1:]:
                assert cluster.annotators == ANNOTATORS and winning_votes == 2 and len(cluster.votes) == 2
                assert cluster.box.label == image.mislabeled.label
            else:
                assert cluster.annotators == ANNOTATORS and cluster.votes == ((cluster.box.label, 3),)
            assert cluster.box.confidence == pytest.approx(
                winning_votes / 3 * reference_mean_iou(cluster.members), rel=1e-12
            )
            assert cluster.box.annotator is None and cluster.box.origin is None
        # Per annotator, each kind of mistake where it was made.
        assert annotator_scores(consolidated) == {
            MISSES: AnnotatorScore(images=1, drawn=objects - 1, kept=objects - 1),
            ADDS: AnnotatorScore(images=1, drawn=objects + 1, kept=objects, dropped=1),
            MISLABELS: AnnotatorScore(images=1, drawn=objects, kept=objects - 1, relabeled=1),
        }
        # Pairwise F1: the misser and the adder share objects - 1 boxes; the misser and the mislabeler objects - 2
        # (the missed and the mislabeled box differ); the adder and the mislabeler objects - 1.
        k = objects
        expected = (Fraction(k - 1, k) + Fraction(2 * (k - 2), 2 * k - 1) + Fraction(2 * (k - 1), 2 * k + 1)) / 3
        assert consolidated.agreement == pytest.approx(float(expected), rel=1e-12)
        assert image_agreement(image.answers) == consolidated.agreement

    assert agreement.consolidated_images == agreement.images == 40
    assert agreement.annotators[ADDS] == AnnotatorScore(
        images=40, drawn=40 * (objects + 1), kept=40 * objects, dropped=40
    )
    assert agreement.annotators[MISSES].share == 1.0
    assert agreement.annotators[MISLABELS].share == pytest.approx((objects - 1) / objects)
    assert agreement.boxes_kept == 40 * objects
    assert agreement.clusters_dropped == 40
    assert agreement.boxes_drawn == 40 * 3 * objects


def test_the_hand_built_image() -> None:
    """Four objects; ann-1 missed the bird, ann-3 added a cat on nothing and called the cat a dog. Offsets of +2, -2
    and 0 px, so each mean is the true box, and the IoUs can be worked out on paper."""
    a = [Box("Dog", 12, 12, 100, 80), Box("Cat", 202, 12, 80, 120), Box("Dog", 12, 202, 120, 60)]
    b = [
        Box("Dog", 8, 8, 100, 80),
        Box("Cat", 198, 8, 80, 120),
        Box("Dog", 8, 198, 120, 60),
        Box("Bird", 302, 252, 60, 60),
    ]
    c = [
        Box("Dog", 10, 10, 100, 80),
        Box("Dog", 200, 10, 80, 120),
        Box("Dog", 10, 200, 120, 60),
        Box("Bird", 298, 248, 60, 60),
        Box("Cat", 400, 400, 50, 50),
    ]
    consolidated = consolidate({"ann-3": c, "ann-1": a, "ann-2": b})
    assert consolidated.annotators == ("ann-1", "ann-2", "ann-3")
    assert [geometry(box) for box in consolidated.boxes] == [
        ("Dog", 10, 10, 100, 80),
        ("Cat", 200, 10, 80, 120),
        ("Dog", 10, 200, 120, 60),
        ("Bird", 300, 250, 60, 60),
    ]

    def pair(overlap_width: int, overlap_height: int, first: int, second: int) -> Fraction:
        intersection = overlap_width * overlap_height
        return Fraction(intersection, first + second - intersection)

    # The first dog: the +2 and -2 copies overlap 96 x 76, each with the middle one 98 x 78.
    first_dog = (pair(96, 76, 8000, 8000) + 2 * pair(98, 78, 8000, 8000)) / 3
    cat = (pair(76, 116, 9600, 9600) + 2 * pair(78, 118, 9600, 9600)) / 3
    second_dog = (pair(116, 56, 7200, 7200) + 2 * pair(118, 58, 7200, 7200)) / 3
    bird = pair(56, 56, 3600, 3600)
    expected = [first_dog, Fraction(2, 3) * cat, second_dog, Fraction(2, 3) * bird]
    assert [box.confidence for box in consolidated.boxes] == pytest.approx([float(value) for value in expected])
    cat_cluster = consolidated.clusters[1]
    assert cat_cluster.votes == (("Cat", 2), ("Dog", 1)) and not cat_cluster.label_tied
    assert cat_cluster.agreement == pytest.approx(float(cat))
    spurious = consolidated.clusters[-1]
    assert not spurious.kept and spurious.annotators == ("ann-3",)
    assert spurious.box.confidence == pytest.approx(1 / 3)
    # F1 per pair: (1, 2) 2*3/7, (1, 3) 2*2/8 (the cat's label differs), (2, 3) 2*3/9 (the cat again).
    assert consolidated.agreement == pytest.approx(float((Fraction(6, 7) + Fraction(4, 8) + Fraction(6, 9)) / 3))


# --- two annotators, empty answers, one annotator -------------------------------------------------------------------


def test_two_annotators_and_two_labels_tie() -> None:
    """Each label has one vote: the label that sorts first, whichever annotator drew it, and the flag."""
    dog, cat = Box("Dog", 0, 0, 100, 100), Box("Cat", 10, 0, 100, 100)
    for answers in ({"a": [dog], "b": [cat]}, {"a": [cat._replace(left=0)], "b": [dog._replace(left=10)]}):
        consolidated = consolidate(answers)
        [cluster] = consolidated.clusters
        assert cluster.kept and cluster.label_tied and consolidated.label_ties == 1
        assert cluster.votes == (("Cat", 1), ("Dog", 1))
        assert geometry(cluster.box) == ("Cat", 5, 0, 100, 100)
        assert cluster.box.confidence == pytest.approx(0.5 * 90 / 110)
        assert consolidated.agreement == 0.0  # no box matched with its label
    scores = annotator_scores(consolidate({"a": [dog], "b": [cat]}))
    assert scores == {"a": AnnotatorScore(1, 1, 0, 1, 0), "b": AnnotatorScore(1, 1, 1, 0, 0)}


def test_a_box_one_of_two_drew_is_kept_at_half_confidence() -> None:
    box = Box("Dog", 5, 5, 50, 50)
    consolidated = consolidate({"a": [box], "b": []})
    assert [geometry(kept) for kept in consolidated.boxes] == [geometry(box)]
    assert consolidated.boxes[0].confidence == 0.5
    assert consolidated.agreement == 0.0
    assert annotator_scores(consolidated)["b"] == AnnotatorScore(images=1)
    assert annotator_scores(consolidated)["b"].share is None
    # A strict majority drops it; so does half of four under min_share 0.75, while half of four keeps it by default.
    assert consolidate({"a": [box], "b": []}, min_share=0.51).boxes == ()
    four = {"a": [box], "b": [box], "c": [], "d": []}
    assert len(consolidate(four).boxes) == 1
    assert consolidate(four, min_share=0.75).boxes == ()
    assert consolidate({**four, "e": []}).boxes == ()  # two of five


@pytest.mark.parametrize(
    ("answers", "boxes", "agreement"),
    [
        ({}, (), None),
        ({"a": []}, (), None),
        ({"a": [], "b": []}, (), 1.0),
        ({"a": [], "b": [], "c": []}, (), 1.0),
    ],
)
def test_empty_answers(answers: Mapping[str, Sequence[Box]], boxes: tuple[Box, ...], agreement: float | None) -> None:
    consolidated = consolidate(answers)
    assert consolidated.boxes == boxes and consolidated.clusters == ()
    assert consolidated.agreement == agreement == image_agreement(answers)


def test_one_annotator_changes_nothing() -> None:
    boxes = [
        Box("Dog", 0, 0, 10, 10, annotator="7", origin="manual"),
        Box("Cat", 0, 0, 10, 10, annotator="7"),
        Box("Dog", 1, 0, 10, 10, annotator="7", origin="prediction"),
    ]
    consolidated = consolidate({"7": boxes})
    assert consolidated.boxes == tuple(boxes)
    assert all(kept is given for kept, given in zip(consolidated.boxes, boxes, strict=True))
    assert consolidated.agreement is None
    assert all(cluster.kept and cluster.annotators == ("7",) for cluster in consolidated.clusters)
    assert annotator_scores(consolidated) == {"7": AnnotatorScore(images=1, drawn=3, kept=3)}


# --- matching ---------------------------------------------------------------------------------------------------


def test_iou_at_the_threshold_matches() -> None:
    """IoU 0.5 exactly (100 / 200) is "at or above"; 1/3 is not."""
    at = {"a": [Box("Dog", 0, 0, 10, 10)], "b": [Box("Dog", 0, 0, 10, 20)]}
    assert len(consolidate(at).clusters) == 1 and image_agreement(at) == 1.0
    below = {"a": [Box("Dog", 0, 0, 10, 10)], "b": [Box("Dog", 5, 0, 10, 10)]}
    assert len(consolidate(below).clusters) == 2 and image_agreement(below) == 0.0
    assert len(consolidate(below, iou_threshold=0.3).clusters) == 1


def test_a_chain_of_neighbours_is_not_one_object() -> None:
    """A and B overlap at 0.54, B and C too, A and C at 0.25: B joins A (the earlier pair of the tie), C stays out."""
    a, b, c = Box("Dog", 0, 0, 100, 100), Box("Dog", 30, 0, 100, 100), Box("Dog", 60, 0, 100, 100)
    consolidated = consolidate({"a": [a], "b": [b], "c": [c]})
    assert [(cluster.annotators, cluster.kept) for cluster in consolidated.clusters] == [
        (("a", "b"), True),
        (("c",), False),
    ]
    assert geometry(consolidated.boxes[0]) == ("Dog", 15, 0, 100, 100)
    assert consolidated.boxes[0].confidence == pytest.approx(2 / 3 * 7000 / 13000)


def test_a_box_with_another_label_does_not_take_the_place_of_one_with_the_right_label() -> None:
    """b's cat overlaps a's dog more (0.9) than b's dog does (0.7): the dogs still go together, the cat stays alone."""
    a = [Box("Dog", 0, 0, 100, 100)]
    b = [Box("Cat", 0, 0, 100, 90), Box("Dog", 0, 0, 100, 70)]
    consolidated = consolidate({"a": a, "b": b})
    clusters = {cluster.box.label: cluster for cluster in consolidated.clusters}
    assert clusters["Dog"].annotators == ("a", "b") and not clusters["Dog"].label_tied
    assert clusters["Cat"].annotators == ("b",) and clusters["Cat"].kept
    assert clusters["Dog"].box.confidence == pytest.approx(0.7)
    # Without b's dog, b's cat does join a's dog (a tie: Cat sorts first).
    [cluster] = consolidate({"a": a, "b": b[:1]}).clusters
    assert cluster.votes == (("Cat", 1), ("Dog", 1)) and cluster.label_tied


def test_an_annotators_two_boxes_are_two_objects() -> None:
    """One annotator's duplicate is a box of its own, which the others did not draw."""
    box = Box("Dog", 0, 0, 40, 40)
    consolidated = consolidate({"a": [box, box], "b": [box], "c": [box]})
    assert [cluster.annotators for cluster in consolidated.clusters] == [("a", "b", "c"), ("a",)]
    assert consolidated.boxes == (box._replace(confidence=1.0),)
    assert annotator_scores(consolidated)["a"] == AnnotatorScore(images=1, drawn=2, kept=1, dropped=1)
    # F1 of a with b (and with c): 2 * 1 / 3; of b with c: 1.
    assert consolidated.agreement == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_a_tie_in_iou_goes_by_position_whatever_the_order() -> None:
    """b drew two dogs 10 px to either side of a's, at the same IoU: the one further left joins a's, in any order."""
    a = [Box("Dog", 50, 0, 100, 100)]
    b = [Box("Dog", 60, 0, 100, 100), Box("Dog", 40, 0, 100, 100)]
    for answer in (b, b[::-1]):
        consolidated = consolidate({"a": a, "b": answer})
        assert [(cluster.annotators, cluster.box.left) for cluster in consolidated.clusters] == [
            (("a", "b"), 45),
            (("b",), 60),
        ]


def test_three_labels_on_one_object() -> None:
    boxes = {"a": [Box("Dog", 0, 0, 50, 50)], "b": [Box("Cat", 1, 0, 50, 50)], "c": [Box("Bird", 2, 0, 50, 50)]}
    [cluster] = consolidate(boxes).clusters
    assert cluster.kept and cluster.label_tied and cluster.box.label == "Bird"
    assert cluster.box.left == 1 and cluster.box.confidence == pytest.approx(1 / 3 * cluster.agreement)


@pytest.mark.parametrize(
    ("answers", "agreement"),
    [
        ({"a": [Box("Dog", 0, 0, 10, 10)], "b": [Box("Dog", 1, 0, 10, 10)]}, 1.0),
        ({"a": [Box("Dog", 0, 0, 10, 10), Box("Cat", 50, 50, 10, 10)], "b": [Box("Dog", 1, 0, 10, 10)]}, 2 / 3),
        ({"a": [Box("Dog", 0, 0, 10, 10)], "b": [Box("Cat", 0, 0, 10, 10)]}, 0.0),
        ({"a": [], "b": [Box("Dog", 0, 0, 10, 10)]}, 0.0),
        ({"a": [Box("Dog", 0, 0, 10, 10)], "b": [Box("Dog", 0, 0, 10, 10)], "c": []}, 1 / 3),
        # Two dogs each, side by side: matched one to one, each with its nearest.
        (
            {
                "a": [Box("Dog", 0, 0, 10, 10), Box("Dog", 8, 0, 10, 10)],
                "b": [Box("Dog", 1, 0, 10, 10), Box("Dog", 6, 0, 10, 10)],
            },
            1.0,
        ),
    ],
)
def test_agreement_by_hand(answers: Mapping[str, Sequence[Box]], agreement: float) -> None:
    assert image_agreement(answers) == pytest.approx(agreement)
    assert consolidate(answers).agreement == pytest.approx(agreement)


def test_pairwise_f1() -> None:
    truth = [Box("Dog", 0, 0, 10, 10), Box("Cat", 20, 0, 10, 10)]
    assert pairwise_f1([], []) == 1.0
    assert pairwise_f1(truth, truth) == 1.0
    assert pairwise_f1(truth[:1], truth) == pytest.approx(2 / 3)
    assert pairwise_f1([Box("Dog", 0, 0, 10, 10)], [Box("Dog", 2, 0, 10, 10)], iou_threshold=0.7) == 0.0


def test_thresholds_are_checked() -> None:
    for options in ({"iou_threshold": 0.0}, {"iou_threshold": 1.5}, {"min_share": 0.0}, {"min_share": 1.01}):
        with pytest.raises(ValueError, match=r"must be|share"):
            consolidate({"a": [], "b": []}, **options)
    with pytest.raises(ValueError, match="iou_threshold"):
        image_agreement({"a": []}, iou_threshold=-1)


# --- the IoU ----------------------------------------------------------------------------------------------------

coordinates = st.one_of(st.integers(0, 60).map(float), st.floats(0, 60, allow_nan=False, allow_infinity=False))
sides = st.one_of(st.integers(1, 40).map(float), st.floats(0.5, 40, allow_nan=False, allow_infinity=False))


@st.composite
def boxes(draw: st.DrawFn, labels: Sequence[str] = ("a", "b", "c")) -> Box:
    return Box(draw(st.sampled_from(labels)), draw(coordinates), draw(coordinates), draw(sides), draw(sides))


@settings(max_examples=300, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=6), st.lists(boxes(), min_size=1, max_size=6))
def test_iou_is_pycocotools(rows: list[Box], columns: list[Box]) -> None:
    reference = iou_matrix(rows, columns)
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            if geometry(row)[1:] == geometry(column)[1:]:
                assert iou(row, column) == 1.0
            else:
                assert iou(row, column) == min(float(reference[r, c]), 1.0)


def test_iou_edges() -> None:
    assert iou(Box("a", 0, 0, 10, 10), Box("a", 10, 0, 10, 10)) == 0.0  # touching edges: no overlap
    assert iou(Box("a", 0, 0, 0, 10), Box("a", 0, 0, 0, 10)) == 0.0  # no area, as pycocotools
    assert iou(Box("a", 0.1, 0.2, 0.7, 0.3), Box("b", 0.1, 0.2, 0.7, 0.3)) == 1.0


# --- properties ---------------------------------------------------------------------------------------------------


@st.composite
def answer_sets(draw: st.DrawFn, min_annotators: int = 2) -> dict[str, list[Box]]:
    annotators = draw(st.lists(st.sampled_from("abcdef"), min_size=min_annotators, max_size=4, unique=True))
    return {annotator: draw(st.lists(boxes(), max_size=6)) for annotator in annotators}


def shuffled(answers: Mapping[str, Sequence[Box]], rng: random.Random) -> dict[str, list[Box]]:
    order = list(answers)
    rng.shuffle(order)
    return {annotator: rng.sample(list(answers[annotator]), len(answers[annotator])) for annotator in order}


@settings(max_examples=200, deadline=None)
@given(answer_sets(), st.integers(0, 2**32 - 1), st.sampled_from([0.3, 0.5, 0.7]), st.sampled_from([0.5, 0.7, 1.0]))
def test_order_changes_nothing(
    answers: dict[str, list[Box]], seed: int, iou_threshold: float, min_share: float
) -> None:
    expected = consolidate(answers, iou_threshold=iou_threshold, min_share=min_share)
    again = consolidate(shuffled(answers, random.Random(seed)), iou_threshold=iou_threshold, min_share=min_share)
    assert again == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            Box,
            st.sampled_from(["a", "b"]),
            st.integers(0, 60).map(float),
            st.integers(0, 60).map(float),
            st.integers(1, 40).map(float),
            st.integers(1, 40).map(float),
        ),
        max_size=8,
    ),
    st.integers(2, 5),
)
def test_identical_answers_are_the_boxes_with_full_confidence(answer: list[Box], annotators: int) -> None:
    answers = {f"annotator-{n}": list(answer) for n in range(annotators)}
    consolidated = consolidate(answers)
    assert sorted(geometry(box) for box in consolidated.boxes) == sorted(geometry(box) for box in answer)
    assert all(box.confidence == 1.0 for box in consolidated.boxes)
    assert all(len(cluster.members) == annotators and not cluster.label_tied for cluster in consolidated.clusters)
    assert consolidated.agreement == 1.0


def check_clusters(answers: Mapping[str, Sequence[Box]], consolidated: Consolidated, iou_threshold: float) -> None:
    annotator_count = len(answers)
    members = sorted(
        (*geometry(member), str(member.annotator)) for cluster in consolidated.clusters for member in cluster.members
    )
    assert members == sorted((*geometry(box), annotator) for annotator, given in answers.items() for box in given)
    for cluster in consolidated.clusters:
        annotators = cluster.annotators
        assert len(set(annotators)) == len(annotators) and list(annotators) == sorted(annotators)
        for first, second in itertools.combinations(cluster.members, 2):
            assert iou(first, second) >= iou_threshold
        assert cluster.kept == (len(cluster.members) >= 0.5 * annotator_count)
        confidence = cluster.box.confidence
        assert confidence is not None and 0 <= confidence <= 1
        # Within the members: each mean between its extremes, right and bottom to within rounding.
        for name in ("left", "top", "width", "height"):
            values = [getattr(member, name) for member in cluster.members]
            assert min(values) <= getattr(cluster.box, name) <= max(values)
        right = max(member.left + member.width for member in cluster.members)
        bottom = max(member.top + member.height for member in cluster.members)
        assert cluster.box.left + cluster.box.width <= right * (1 + 1e-12)
        assert cluster.box.top + cluster.box.height <= bottom * (1 + 1e-12)
    assert consolidated.boxes == tuple(cluster.box for cluster in consolidated.clusters if cluster.kept)
    assert consolidated.agreement is not None and 0 <= consolidated.agreement <= 1


@settings(max_examples=300, deadline=None)
@given(answer_sets(), st.sampled_from([0.3, 0.5, 0.7]))
def test_every_box_lands_in_one_cluster_within_its_members(answers: dict[str, list[Box]], iou_threshold: float) -> None:
    check_clusters(answers, consolidate(answers, iou_threshold=iou_threshold), iou_threshold)


@settings(max_examples=300, deadline=None)
@given(boxes(), boxes(), st.sampled_from([0.3, 0.5, 0.7]))
def test_two_boxes_are_one_object_exactly_when_their_iou_reaches_the_threshold(
    first: Box, second: Box, iou_threshold: float
) -> None:
    """Whatever rules pairs out before their IoU is computed must not rule out one that reaches the threshold."""
    consolidated = consolidate({"a": [first], "b": [second]}, iou_threshold=iou_threshold)
    assert (len(consolidated.clusters) == 1) == (iou(first, second) >= iou_threshold)


@settings(max_examples=100, deadline=None)
@given(answer_sets(), st.integers(0, 2**32 - 1))
def test_agreement_does_not_depend_on_order(answers: dict[str, list[Box]], seed: int) -> None:
    assert image_agreement(shuffled(answers, random.Random(seed))) == image_agreement(answers)


# --- images and the job --------------------------------------------------------------------------------------------


def test_consolidate_image_counts_those_who_drew_nothing() -> None:
    dog = Box("Dog", 0, 0, 40, 40)
    image = LabeledImage(1, "s3://b/x.jpg", 100, 100, 3, (dog._replace(annotator="1"), dog._replace(annotator="2")))
    consolidated_image, consolidated = consolidate_image(image, answered=["1", "2", "3"])
    assert consolidated.annotators == ("1", "2", "3")
    assert consolidated_image.boxes == (dog._replace(confidence=2 / 3),)
    assert consolidated_image._replace(boxes=image.boxes) == image
    # Without the third annotator's empty answer, the two look like everyone.
    assert consolidate_image(image)[0].boxes == (dog._replace(confidence=1.0),)


def test_an_image_with_one_annotator_comes_back_as_it_was() -> None:
    image = LabeledImage(
        1,
        "s3://b/x.jpg",
        100,
        100,
        3,
        (Box("Dog", 0, 0, 40, 40, annotator="1"), Box("Dog", 1, 0, 40, 40, annotator="1")),
    )
    assert consolidate_image(image)[0] is image
    failed = LabeledImage(2, "s3://b/y.jpg", 0, 0, 3, (), failure_reason="skipped by every annotator")
    same, consolidated = consolidate_image(failed)
    assert same is failed and consolidated == Consolidated((), (), (), None)


def test_group_by_annotator() -> None:
    boxes = [Box("Dog", 0, 0, 1, 1, annotator="2"), Box("Cat", 0, 0, 1, 1), Box("Dog", 5, 0, 1, 1, annotator="2")]
    assert group_by_annotator(boxes, answered=["9"]) == {"9": [], "2": [boxes[0], boxes[2]], ANONYMOUS: [boxes[1]]}


def test_job_agreement() -> None:
    job = synthetic_job(3, 4, seed=11)
    agreement = JobAgreement()
    for name, image in job.items():
        agreement.add(name, consolidate(image.answers))
    dog, cat = Box("Dog", 0, 0, 50, 50), Box("Cat", 0, 0, 50, 50)
    agreement.add("s3://bucket/alone.jpg", consolidate({"ann-1": [dog]}))  # one annotator: counted, not scored
    agreement.add("s3://bucket/tied.jpg", consolidate({"ann-1": [dog], "ann-2": [cat]}))
    synthetic = float((Fraction(3, 4) + Fraction(4, 7) + Fraction(6, 9)) / 3)
    assert agreement.images == 5 and agreement.consolidated_images == 4
    assert agreement.mean_agreement == pytest.approx(3 * synthetic / 4)
    assert agreement.median_agreement == pytest.approx(synthetic)
    assert agreement.low_agreement_images() == [("s3://bucket/tied.jpg", 0.0)]
    assert agreement.tied_images == ["s3://bucket/tied.jpg"]
    assert agreement.annotators["ann-1"] == AnnotatorScore(images=4, drawn=3 * 3 + 1, kept=9, relabeled=1)
    summary = agreement.summary(limit=0)
    assert summary == {
        "images": 5,
        "consolidatedImages": 4,
        "boxesDrawn": 3 * 12 + 2,
        "boxesKept": 3 * 4 + 1,
        "clustersDropped": 3,
        "agreement": {
            "mean": round(3 * synthetic / 4, 4),
            "median": round(synthetic, 4),
            "lowThreshold": 0.5,
            "lowCount": 1,
            "low": [],
        },
        "labelTies": {"count": 1, "images": []},
        "annotators": {
            "ann-1": {"images": 4, "drawn": 10, "kept": 9, "relabeled": 1, "dropped": 0, "share": 0.9},
            "ann-2": {"images": 4, "drawn": 16, "kept": 13, "relabeled": 0, "dropped": 3, "share": 0.8125},
            "ann-3": {"images": 3, "drawn": 12, "kept": 9, "relabeled": 3, "dropped": 0, "share": 0.75},
        },
    }
    assert agreement.summary()["agreement"]["low"] == [{"image": "s3://bucket/tied.jpg", "agreement": 0.0}]
    assert JobAgreement().summary()["agreement"]["mean"] is None


def test_the_module_imports_without_numpy() -> None:
    """The job-events function has no numpy unless pre-labels are configured."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['numpy'] = None; import labeling_pipeline.consolidation"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "lambda"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
