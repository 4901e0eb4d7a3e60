"""Whether the proposals helped: one report per job and model version (`exports/<job>/prelabel-report.json`).

From each image of the job: the proposals the stage wrote (or that it held the image out, or that it has no file),
the final boxes people kept, with Label Studio's region origins when there are any, and the seconds people spent.
It says what people did with the proposals (`metrics.compare`), how good the model was against the final boxes
(precision and recall at its own threshold, COCO mAP as COCOeval computes it), the median seconds an image with
and without proposals (the held-out images are the "without"), and one plain sentence when the proposals did not
pay: slower than without, most of them deleted, many relabeled or moved far.

With several annotators an image, each annotator's boxes are compared with the proposals on their own, as if
each were a copy of the image: a proposal kept by two people counts as accepted twice.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box
from labeling_pipeline.prelabel.metrics import Comparison, coco_map, compare, precision_recall
from labeling_pipeline.prelabel.proposals import Proposal

# When the report speaks up. Shares are of the proposals shown; "slower" needs this many timed images on each
# side, so that two or three odd images do not make the sentence.
MOSTLY_DELETED = 0.5
OFTEN_RELABELED = 0.2
OFTEN_MOVED = 0.5
IMPRECISE_IOU = 0.8
MIN_TIMED_IMAGES = 5


@dataclass(frozen=True)
class ImageOutcome:
    """One image of the job, as the job end sees it."""

    image: ImageRef
    proposal: Proposal | None  # None: the stage wrote no file (the detector failed, or pre-labels were off)
    finals: tuple[Box, ...] | None  # None: the image got no answer (skipped, failed)
    seconds: float | None = None


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _by_annotator(boxes: Iterable[Box]) -> dict[str | None, list[Box]]:
    grouped: dict[str | None, list[Box]] = {}
    for box in boxes:
        grouped.setdefault(box.annotator, []).append(box)
    return grouped


def _box(box: Box) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "label": box.label,
        "bbox": [round(box.left, 2), round(box.top, 2), round(box.width, 2), round(box.height, 2)],
    }
    if box.confidence is not None:
        shown["score"] = round(box.confidence, 4)
    if box.origin is not None:
        shown["origin"] = box.origin
    if box.annotator is not None:
        shown["annotator"] = box.annotator
    return shown


def advice(total: Comparison, with_proposals: Sequence[float], without: Sequence[float], min_score: float) -> list[str]:
    """Plain sentences, one for each way the proposals did not pay; one sentence that they helped otherwise."""
    sentences: list[str] = []
    shown = total.proposals
    timed = len(with_proposals) >= MIN_TIMED_IMAGES and len(without) >= MIN_TIMED_IMAGES
    median_with, median_without = _median(with_proposals), _median(without)
    if timed and median_with is not None and median_without is not None and median_with > median_without:
        sentences.append(
            f"Pre-labels slowed people down: {median_with:.1f} s an image with them against {median_without:.1f} s "
            f"without ({len(with_proposals)} and {len(without)} images). Correcting poor boxes costs more than "
            "drawing: fix what the lines below name, or turn pre-labels off for this kind of image."
        )
    if shown and total.deleted / shown > MOSTLY_DELETED:
        sentences.append(
            f"Most proposals were deleted ({total.deleted} of {shown}): raise minScore (now {min_score:g}) so that "
            "fewer false boxes are shown, or check that the model was trained on images like these."
        )
    if shown and total.relabeled / shown > OFTEN_RELABELED:
        sentences.append(
            f"People changed the label of {total.relabeled} of {shown} proposals: check classMap (which of the "
            "model's classes becomes which label)."
        )
    kept = total.kept_ious
    if (
        shown
        and (total.moved + total.relabeled) / shown > OFTEN_MOVED
        and kept
        and statistics.mean(kept) < IMPRECISE_IOU
    ):
        sentences.append(
            f"Most kept proposals had to be moved or resized (mean IoU {statistics.mean(kept):.2f} with the final "
            "box): the model's boxes are imprecise here; a larger model or one fine-tuned on these images would help."
        )
    if not sentences:
        if not shown:
            sentences.append("No proposal was shown in this job, so there is nothing to judge yet.")
        elif timed and median_with is not None and median_without is not None:
            sentences.append(
                f"Pre-labels helped: {median_with:.1f} s an image with them against {median_without:.1f} s without, "
                f"and {total.accepted + total.moved} of {shown} proposals were kept."
            )
        else:
            sentences.append(
                f"{total.accepted + total.moved} of {shown} proposals were kept; too few timed images "
                f"(at least {MIN_TIMED_IMAGES} with and {MIN_TIMED_IMAGES} without proposals) to compare speed."
            )
    return sentences


def build_report(
    job: str, model_version: str, min_score: float, labels: Sequence[str], images: Iterable[ImageOutcome]
) -> dict[str, Any]:
    outcomes = list(images)
    total = Comparison()
    seconds_with: list[float] = []
    seconds_without: list[float] = []
    truth: dict[str, list[Box]] = {}
    detections: dict[str, list[Box]] = {}
    proposals_by_copy: dict[str, Sequence[Box]] = {}
    per_image: list[dict[str, Any]] = []
    counts = {"images": len(outcomes), "proposed": 0, "heldOut": 0, "withoutProposals": 0, "unanswered": 0}
    for outcome in outcomes:
        proposal = outcome.proposal
        entry: dict[str, Any] = {"image": outcome.image.source_ref, "version": outcome.image.version}
        if proposal is None:
            counts["withoutProposals"] += 1
            entry["proposals"] = None
        elif proposal.held_out:
            counts["heldOut"] += 1
            entry["heldOut"] = True
        else:
            counts["proposed"] += 1
            entry["proposals"] = [_box(box) for box in proposal.boxes]
        if outcome.finals is None:
            counts["unanswered"] += 1
            per_image.append(entry)
            continue
        entry["finals"] = [_box(box) for box in outcome.finals]
        if outcome.seconds is not None:
            entry["seconds"] = round(outcome.seconds, 1)
            if proposal is not None and proposal.held_out:
                seconds_without.append(outcome.seconds)
            elif proposal is not None:
                seconds_with.append(outcome.seconds)
        if proposal is not None and not proposal.held_out:
            image_total = Comparison()
            # An image answered with no box at all is one annotator's empty answer: every proposal deleted.
            for annotator, finals in (_by_annotator(outcome.finals) or {None: []}).items():
                origins = [box.origin for box in finals]
                image_total += compare(
                    proposal.boxes, finals, origins=origins if any(o is not None for o in origins) else None
                )
                copy = f"{outcome.image.image_id}\n{annotator}"
                truth[copy] = finals
                detections[copy] = list(proposal.boxes)
                proposals_by_copy[copy] = proposal.boxes
            total += image_total
            entry["compared"] = image_total.counts("proposed")
        per_image.append(entry)

    quality = precision_recall(proposals_by_copy, truth)
    average_precision = coco_map(truth, detections, labels)
    kept = total.kept_ious
    median_with, median_without = _median(seconds_with), _median(seconds_without)
    return {
        "job": job,
        "modelVersion": model_version,
        "images": counts,
        "boxes": {**total.counts("proposed"), "final": total.finals},
        "shares": {
            name: _round(count / total.proposals if total.proposals else None)
            for name, count in (
                ("accepted", total.accepted),
                ("moved", total.moved),
                ("relabeled", total.relabeled),
                ("deleted", total.deleted),
            )
        },
        "keptIou": {
            "mean": _round(statistics.mean(kept) if kept else None),
            "median": _round(_median(kept)),
            "min": _round(min(kept) if kept else None),
        },
        "model": {
            "minScore": min_score,
            "precision": _round(quality.precision),
            "recall": _round(quality.recall),
            "mAP": _round(average_precision.map_50_95),
            "mAP50": _round(average_precision.map_50),
            "mAP75": _round(average_precision.map_75),
            "apByLabel": {label: _round(ap) for label, ap in average_precision.ap_by_label.items()},
        },
        "secondsPerImage": {
            "withProposals": _round(median_with, 1),
            "withoutProposals": _round(median_without, 1),
            "timedWith": len(seconds_with),
            "timedWithout": len(seconds_without),
            "ratio": _round(median_with / median_without if median_with and median_without else None, 3),
        },
        "advice": advice(total, seconds_with, seconds_without, min_score),
        "perImage": per_image,
    }


def coco_results(
    proposals: Mapping[str, Proposal], coco_image_ids: Mapping[str, int], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """The proposals as a COCO results file (what `COCO.loadRes` reads) beside the people's `coco.json`: the
    same image ids (by source ref) and category ids (label order, from 1). Held-out images have none."""
    category = {label: index + 1 for index, label in enumerate(labels)}
    results: list[dict[str, Any]] = []
    for source_ref, proposal in proposals.items():
        image_id = coco_image_ids.get(source_ref)
        if image_id is None or proposal.held_out:
            continue
        for box in proposal.boxes:
            if box.label in category:
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": category[box.label],
                        "bbox": [round(box.left, 3), round(box.top, 3), round(box.width, 3), round(box.height, 3)],
                        "score": round(box.confidence if box.confidence is not None else 1.0, 6),
                    }
                )
    return results
