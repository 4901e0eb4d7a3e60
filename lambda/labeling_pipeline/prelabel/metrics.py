"""How a detector's proposals are judged against the boxes people keep (the final boxes).

- `coco_map`: the proposals' COCO mAP, the final boxes as ground truth, equal to pycocotools' COCOeval.
- `compare` (box_changes.py, re-exported): per image, what people did with the proposals and what they added.
- `precision_recall`: the detector's precision and recall at its own score threshold.
- `simulate`: a detector's proposals with exactly known errors, for the benchmark and the end-to-end test.

Boxes are `labeling_pipeline.labels.Box` in pixels, a proposal's score in `confidence`; images are keyed by a string
(the pipeline's source ref).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from labeling_pipeline.box_changes import MANUAL_ORIGIN, PREDICTION_ORIGINS, Comparison, compare, greedy_pairs
from labeling_pipeline.labels import Box

__all__ = ["MANUAL_ORIGIN", "PREDICTION_ORIGINS", "Comparison", "coco_map", "compare", "iou_matrix", "precision_recall"]

# Hand-written, not pycocotools: the Lambda zip must not carry its compiled extension and matplotlib; COCOeval's
# answer is the reference the tests hold this to.

# COCOeval's default bbox parameters (cocoeval.py, Params.setDetParams), built by the same expressions so that the
# thresholds are the same floats.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = 100  # maxDets[-1]: per image and label, not per image
AREA_RANGE_ALL = (0**2, 1e5**2)  # areaRng "all"; a box outside it is ignored, as COCOeval ignores it

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def iou_matrix(rows: Sequence[Box], columns: Sequence[Box]) -> FloatArray:
    """The IoU of every box in `rows` with every box in `columns`, as pycocotools' maskUtils.iou computes it for
    boxes (bbIou in maskApi.c): edges at left and left + width (no +1 pixel), areas width * height, 0 unless the
    overlap has a positive width and height. Its operations in its order, so that an IoU lying on a threshold falls
    on the same side of it."""
    if not rows or not columns:
        return np.zeros((len(rows), len(columns)))
    r = np.array([(box.left, box.top, box.width, box.height) for box in rows], dtype=np.float64)
    c = np.array([(box.left, box.top, box.width, box.height) for box in columns], dtype=np.float64)
    overlap_width = np.minimum((r[:, 2] + r[:, 0])[:, None], (c[:, 2] + c[:, 0])[None, :]) - np.maximum(
        r[:, 0][:, None], c[:, 0][None, :]
    )
    overlap_height = np.minimum((r[:, 3] + r[:, 1])[:, None], (c[:, 3] + c[:, 1])[None, :]) - np.maximum(
        r[:, 1][:, None], c[:, 1][None, :]
    )
    intersection = overlap_width * overlap_height
    union = (r[:, 2] * r[:, 3])[:, None] + (c[:, 2] * c[:, 3])[None, :] - intersection
    overlapping = (overlap_width > 0) & (overlap_height > 0)
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=overlapping)


# --- COCO mAP ---------------------------------------------------------------------------------------------------


class MapResult(NamedTuple):
    """COCO average precision of the proposals; None where COCOeval says -1 (no label has ground truth)."""

    map_50_95: float | None  # COCOeval stats[0]: mAP@[.50:.95], all areas, maxDets 100
    map_50: float | None  # stats[1]
    map_75: float | None  # stats[2]
    ap_by_label: dict[str, float | None]  # AP@[.50:.95] of each label; None for a label without ground truth


class _ImageResult(NamedTuple):
    """evaluateImg's answer for one image and label."""

    scores: FloatArray  # its detections', highest first, at most MAX_DETECTIONS
    matched: BoolArray  # [IoU threshold, detection]
    ignored: BoolArray  # [IoU threshold, detection]: neither a true nor a false positive
    counted_truth: int  # ground truth boxes not ignored


def _outside_area_range(box: Box) -> bool:
    area = box.width * box.height
    return area < AREA_RANGE_ALL[0] or area > AREA_RANGE_ALL[1]


def _score(box: Box, image: str) -> float:
    if box.confidence is None or math.isnan(box.confidence):
        raise ValueError(f"a detection in {image!r} has no score ({box}): COCO mAP ranks detections by it")
    return box.confidence


def _evaluate_image(truth: Sequence[Box], detections: Sequence[tuple[float, Box]]) -> _ImageResult:
    """COCOeval.evaluateImg for one image and label, area range "all", maxDet 100 (iscrowd is always 0)."""
    # Ground truth outside the area range goes last, detections highest score first (both stable sorts, as its
    # np.argsort(kind='mergesort')), and only the first MAX_DETECTIONS detections count.
    truth_ignored = [_outside_area_range(box) for box in truth]
    truth_order = sorted(range(len(truth)), key=truth_ignored.__getitem__)
    ordered_truth = [truth[g] for g in truth_order]
    ignored_truth = [truth_ignored[g] for g in truth_order]
    ranked = sorted(detections, key=lambda scored: -scored[0])[:MAX_DETECTIONS]
    ranked_boxes = [box for _, box in ranked]
    ious = iou_matrix(ranked_boxes, ordered_truth).tolist()
    # No pair below the lowest threshold can match at any threshold: the scan below sees only the others.
    lowest = float(IOU_THRESHOLDS[0])
    candidates = [[g for g, iou in enumerate(row) if iou >= lowest] for row in ious]
    matched = np.zeros((len(IOU_THRESHOLDS), len(ranked)), dtype=bool)
    ignored = np.zeros((len(IOU_THRESHOLDS), len(ranked)), dtype=bool)
    for t, threshold in enumerate(IOU_THRESHOLDS.tolist()):
        taken = [False] * len(ordered_truth)
        for d, row in enumerate(ious):
            # evaluateImg's scan, detections in score order: the untaken box with the best IoU at or above the
            # threshold, the later one on a tie (its `<` test), no ignored box once a counted one matched.
            best_iou, best = min(threshold, 1 - 1e-10), -1
            for g in candidates[d]:
                if taken[g]:
                    continue
                if best > -1 and not ignored_truth[best] and ignored_truth[g]:
                    break
                if row[g] < best_iou:
                    continue
                best_iou, best = row[g], g
            if best > -1:
                taken[best] = True
                matched[t, d] = True
                ignored[t, d] = ignored_truth[best]
    outside = np.array([_outside_area_range(box) for box in ranked_boxes], dtype=bool)
    ignored |= ~matched & outside[None, :]
    scores = np.array([score for score, _ in ranked], dtype=np.float64)
    return _ImageResult(scores, matched, ignored, ignored_truth.count(False))


def _precision(results: Sequence[_ImageResult]) -> FloatArray | None:
    """COCOeval.accumulate for one label: the interpolated precision [IoU threshold, recall point], None (its -1)
    without ground truth."""
    counted_truth = sum(result.counted_truth for result in results)
    if counted_truth == 0:
        return None
    # Every image's detections by score, a stable sort again, so that a tie across images keeps the image order.
    scores = np.concatenate([result.scores for result in results])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([result.matched for result in results], axis=1)[:, order]
    ignored = np.concatenate([result.ignored for result in results], axis=1)[:, order]
    true_positives = np.cumsum(matched & ~ignored, axis=1).astype(dtype=float)
    false_positives = np.cumsum(~matched & ~ignored, axis=1).astype(dtype=float)
    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    for t in range(len(IOU_THRESHOLDS)):
        tp, fp = true_positives[t], false_positives[t]
        recall = tp / counted_truth
        # Its epsilon as well: it moves the last bit (1 / (1 + eps) < 1) and makes 0/0 (ignored detections first) 0.
        precision_at = tp / (fp + tp + np.spacing(1))
        # Its backward loop: the best precision at this recall or beyond.
        envelope = np.maximum.accumulate(precision_at[::-1])[::-1]
        # Each recall point takes the precision where recall first reaches it; a point never reached stays 0 (its
        # try/except stops at the first index past the end, and the later ones are past it too).
        at = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        reached = at < len(envelope)
        precision[t, reached] = envelope[at[reached]]
    return precision


def _mean_of_counted(precision: FloatArray) -> float | None:
    # summarize(): the mean over every entry that is not -1, i.e. over the labels that have ground truth.
    counted = precision[precision > -1]
    return float(np.mean(counted)) if counted.size else None


def coco_map(
    ground_truth: Mapping[str, Sequence[Box]], detections: Mapping[str, Sequence[Box]], labels: Iterable[str]
) -> MapResult:
    """The detections' COCO mAP against the ground truth, exactly as `COCOeval(gt, dt, "bbox")` with its default
    parameters computes `stats[0:3]` and, per label, the mean of `eval["precision"][:, :, k, 0, 2]` over its entries
    that are not -1.

    ground_truth: the final (human) boxes of each image; detections: the proposals of each image, scored by
    `confidence`. Each label of `labels` is a COCO category, evaluated on its own; boxes of other labels are left
    out, as COCOeval leaves out categories it is not given. Images are those of `ground_truth`, in its order, then
    those only in `detections` (their detections are all false positives); that order is COCO's image id order,
    which breaks ties in score across images. Within an image, ties keep the order of its boxes. A label without
    ground truth in any image counts in no mean; with none at all, the means are None (COCOeval's -1).
    """
    label_order = list(dict.fromkeys(labels))
    images = [*ground_truth, *(image for image in detections if image not in ground_truth)]
    results: dict[str, list[_ImageResult]] = {label: [] for label in label_order}
    for image in images:
        truth_by_label: dict[str, list[Box]] = {label: [] for label in label_order}
        for box in ground_truth.get(image, ()):
            if box.label in truth_by_label:
                truth_by_label[box.label].append(box)
        detections_by_label: dict[str, list[tuple[float, Box]]] = {label: [] for label in label_order}
        for box in detections.get(image, ()):
            if box.label in detections_by_label:
                detections_by_label[box.label].append((_score(box, image), box))
        for label in label_order:
            # COCOeval skips an image with neither (evaluateImg's None).
            if truth_by_label[label] or detections_by_label[label]:
                results[label].append(_evaluate_image(truth_by_label[label], detections_by_label[label]))

    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(label_order)))
    for k, label in enumerate(label_order):
        label_precision = _precision(results[label])
        if label_precision is not None:
            precision[:, :, k] = label_precision
    # Its summarize() picks the thresholds by equality with .5 and .75; so does this.
    at_50 = np.where(IOU_THRESHOLDS == 0.5)[0]
    at_75 = np.where(IOU_THRESHOLDS == 0.75)[0]
    return MapResult(
        map_50_95=_mean_of_counted(precision),
        map_50=_mean_of_counted(precision[at_50]),
        map_75=_mean_of_counted(precision[at_75]),
        ap_by_label={label: _mean_of_counted(precision[:, :, k]) for k, label in enumerate(label_order)},
    )


class PrecisionRecall(NamedTuple):
    true_positives: int  # proposals paired with a final box of their label
    proposals: int
    finals: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.proposals if self.proposals else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.finals if self.finals else None


def precision_recall(
    proposals_by_image: Mapping[str, Sequence[Box]], finals_by_image: Mapping[str, Sequence[Box]], iou: float = 0.5
) -> PrecisionRecall:
    """The detector's precision and recall at its own score threshold (the proposals as they were made, no ranking):
    a proposal is right when it pairs with a final box of its label at IoU >= iou, one-to-one, highest IoU first
    (ties as in `compare`). An image missing from one mapping has no boxes there."""
    true_positives = proposal_count = final_count = 0
    for image in [*proposals_by_image, *(image for image in finals_by_image if image not in proposals_by_image)]:
        proposals, finals = proposals_by_image.get(image, ()), finals_by_image.get(image, ())
        ious = np.minimum(iou_matrix(proposals, finals), 1.0).tolist()
        same_label = [[proposal.label == final.label for final in finals] for proposal in proposals]
        pairs = greedy_pairs(
            (
                (p, f)
                for p in range(len(proposals))
                for f in range(len(finals))
                if same_label[p][f] and ious[p][f] >= iou
            ),
            ious,
            same_label,
            set(),
            set(),
        )
        true_positives += len(pairs)
        proposal_count += len(proposals)
        final_count += len(finals)
    return PrecisionRecall(true_positives, proposal_count, final_count)


# --- A detector with known errors -------------------------------------------------------------------------------


class Simulation(NamedTuple):
    proposals_by_image: dict[str, tuple[Box, ...]]
    kept: int  # true boxes proposed, relabeled ones included
    missed: int  # true boxes left out
    relabeled: int  # kept boxes proposed under another label
    extra: int  # false boxes, each overlapping no true box


FREE_SPOT_TRIES = 100


def _jittered(box: Box, jitter: float, rng: random.Random) -> tuple[float, float, float, float]:
    dx, dy = jitter * box.width, jitter * box.height
    left = box.left + (dx if rng.random() < 0.5 else -dx)
    right = box.left + box.width + (dx if rng.random() < 0.5 else -dx)
    top = box.top + (dy if rng.random() < 0.5 else -dy)
    bottom = box.top + box.height + (dy if rng.random() < 0.5 else -dy)
    return left, top, right - left, bottom - top


def _span(boxes: Iterable[Box]) -> tuple[float, float, float, float]:
    boxes = list(boxes)
    return (
        min(box.left for box in boxes),
        min(box.top for box in boxes),
        max(box.left + box.width for box in boxes),
        max(box.top + box.height for box in boxes),
    )


def simulate(
    truth_by_image: Mapping[str, Sequence[Box]],
    *,
    missed: float,
    extra: float,
    relabeled: float,
    jitter: float,
    labels: Sequence[str],
    seed: int,
) -> Simulation:
    """A detector's proposals for the true boxes, with exactly known errors; the same seed gives the same proposals.

    Of the n true boxes, round(missed * n) are left out; of the others, round(relabeled * n) (at most all of them)
    are proposed under another of `labels`. round(extra * n) false boxes are added, each the size of a random true
    box with a random label, in a random image, where it overlaps none of that image's true boxes: within the span of
    its true boxes (of all images' when it has none), or right beside them when no free spot turns up in
    FREE_SPOT_TRIES tries. Every kept box, relabeled or not, has each of its four edges moved by exactly `jitter`
    times its width (left, right) or height (top, bottom), outward or inward at random, which puts its IoU with its
    true box between ((1 - 2 jitter) / (1 + 2 jitter)) ** 2 and 1 / (1 + 2 jitter): 1 at jitter 0, 0.669 to 0.909 at
    0.05, above 0.5 up to jitter 0.085. Kept boxes score in [0.5, 1), false ones in [0.05, 0.75).

    So when each jittered box overlaps no true box but its own (the true boxes lie further apart than `jitter`
    times their sides), `compare` of every image, summed, finds relabeled == relabeled, deleted == extra,
    added == missed and accepted + moved == kept - relabeled: all accepted when the lower bound reaches
    unchanged_iou, all moved when the upper bound is below it.
    """
    if not (0 <= missed <= 1 and 0 <= relabeled <= 1 and missed + relabeled <= 1):
        raise ValueError(f"missed ({missed}) and relabeled ({relabeled}) are shares of the true boxes: 0 to 1 in all")
    if not extra >= 0:
        raise ValueError(f"extra ({extra}) is a share of the true boxes: 0 or more")
    if not 0 <= jitter < 0.5:
        raise ValueError(f"jitter ({jitter}) moves each edge by that share of the box's side: 0 up to 0.5")
    rng = random.Random(seed)
    truth = [(image, box) for image, boxes in truth_by_image.items() for box in boxes]
    count = len(truth)
    missing = set(rng.sample(range(count), round(missed * count)))
    kept = [index for index in range(count) if index not in missing]
    renamed = set(rng.sample(kept, min(round(relabeled * count), len(kept))))
    extra_count = round(extra * count)
    if (renamed or extra_count) and not labels:
        raise ValueError("relabeled and extra boxes need labels to take")

    proposals: dict[str, list[Box]] = {image: [] for image in truth_by_image}
    for index in kept:
        image, box = truth[index]
        label = box.label
        if index in renamed:
            others = [other for other in labels if other != box.label]
            if not others:
                raise ValueError(f"relabeling a {box.label!r} box needs another label than {box.label!r} in labels")
            label = rng.choice(others)
        proposals[image].append(Box(label, *_jittered(box, jitter, rng), confidence=0.5 + 0.5 * rng.random()))

    images = list(truth_by_image)
    for _ in range(extra_count):
        image = rng.choice(images)
        size = truth[rng.randrange(count)][1]
        image_truth = truth_by_image[image]
        left, top, right, bottom = _span(image_truth if image_truth else (box for _, box in truth))
        spot = None
        for _ in range(FREE_SPOT_TRIES):
            candidate = Box(
                rng.choice(labels),
                left + rng.random() * max(0.0, right - left - size.width),
                top + rng.random() * max(0.0, bottom - top - size.height),
                size.width,
                size.height,
            )
            if not image_truth or not iou_matrix([candidate], image_truth).any():
                spot = candidate
                break
        if spot is None:
            spot = Box(rng.choice(labels), right, top, size.width, size.height)
        proposals[image].append(spot._replace(confidence=0.05 + 0.7 * rng.random()))

    return Simulation(
        proposals_by_image={image: tuple(boxes) for image, boxes in proposals.items()},
        kept=len(kept),
        missed=len(missing),
        relabeled=len(renamed),
        extra=extra_count,
    )
