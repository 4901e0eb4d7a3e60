"""Several annotators' boxes of one image made into one set of boxes, and how well the annotators agree.

Ground Truth consolidates its workers' boxes itself (ACS-BoundingBox); Label Studio keeps every annotator's boxes side
by side (`backends.label_studio.results`). This is the consolidation for the Label Studio backend, run at the job end.
It is plain Python: the job-events function has no numpy unless pre-labels are configured.

The rule
--------
For the N annotators who answered an image (an annotator who answered with no box counts: they said "nothing here"):

1. Matching. Boxes of two annotators may be the same object when their IoU is at or above `iou_threshold` (0.5), IoU
   as pycocotools computes it for boxes (edges at left and left + width, 0 unless the overlap has a positive width and
   height). A cluster (one object) holds at most one box of each annotator, and every two of its boxes overlap at IoU
   >= the threshold (complete linkage: a box joins only if it overlaps every member, so a chain of neighbours, A like
   B and B like C, does not put A and C into one object). Clusters grow greedily, the pair with the highest IoU
   first: first pairs of boxes with the same label, then pairs of any labels. The second pass lets a box one
   annotator labeled differently join the object the others drew; the first keeps it from taking the place of a box
   with the right label (a dog and a cat side by side overlap too). Ties in IoU go by annotator id, then by the boxes
   sorted by label and position, so the order in which annotators and boxes come changes nothing.
2. Label: the majority of the members' labels. A tie goes to the label that sorts first and the cluster is flagged
   (`label_tied`): arbitrary, but the same answers always give the same label, and the flag sends it to review.
3. Box: the mean of the members' left, top, width and height, those whose label lost included (they saw the object
   and misnamed it). Each mean is kept within its members' range, so identical boxes give that very box.
4. Kept when at least `min_share` (1/2) of the N annotators drew a box in the cluster: ceil(N / 2), i.e. 1 of 2, 2 of 3,
   2 of 4, 3 of 5. A tie keeps the box (see below); `min_share` above 1/2 asks for a strict majority.
5. Confidence = (members with the winning label / N) x (the mean IoU of the members' pairs; 1 for a lone box): how many
   annotators drew it, and how well they agree. 1 when all N drew the same box with the same label.
6. With one annotator nothing changes: their boxes come back as they were (no confidence set), in their order.

Why this rule
-------------
- Ground Truth documents ACS-BoundingBox only as "finds the most similar boxes from different workers based on the
  Jaccard index of the boxes" (API_AnnotationConsolidationConfig) "and averages them"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-annotation-consolidation.html). Its confidence and which boxes
  it keeps are not documented, so points 1 and 3 follow what is documented, and the rest is written out here. Its
  guide to writing one's own consolidation (https://docs.aws.amazon.com/sagemaker/latest/dg/consolidation-lambda.html)
  names the Jaccard index for box similarity and the majority vote for the most probable label, as points 1 and 2.
- Weighted boxes fusion (Solovyev, Wang, Gabruseva, "Weighted boxes fusion: Ensembling boxes from different object
  detection models", arXiv:1910.13302, Image and Vision Computing 107 (2021) 104117; `weighted_boxes_fusion` in the
  ensemble-boxes package) clusters boxes of one label at IoU > thr, fuses a cluster into the score-weighted mean of
  its coordinates, and gives it the mean score x min(T, N) / N (T boxes in the cluster, N models). People's boxes carry
  no score: with equal weights the weighted mean is the plain mean (point 3) and the confidence is T / N, the share of
  annotators, the first factor of point 5. It differs in two ways on purpose: WBF compares a box with the running
  fused box and lets one model put two boxes into one cluster, where here an annotator's two boxes are two objects
  to them, and a box must overlap every member; and WBF keeps every cluster (a score threshold filters later), where
  a label set needs a decision per box (point 4). The mean IoU factor adds "how well they agree", which the share
  alone cannot tell (three loose boxes and three tight ones are both 3 / 3).
- Majority vote: AWS's post on Ground Truth's classification consolidation ("Use the wisdom of crowds with Amazon
  SageMaker Ground Truth to annotate data more accurately", AWS Machine Learning Blog, 2019) takes the majority vote,
  with the winning share as its confidence (owl, owl, falcon: owl at 2/3), as the baseline its EM model improves on
  by estimating each worker's reliability across many items. Per-annotator scores (below) are the start of that; a
  vote weighted by them can come later. CVAT's consensus merge (an IoU threshold and a quorum, "minimum required
  share of sources having an annotation for it to be accepted") and Datumaro's merge (IoU matching, labels by vote)
  are of the same family.
- Why a tie keeps the box: with two annotators, a box one drew and the other did not is kept, at confidence 1/2 or
  less. Missing objects is the known failing of people drawing boxes, and it grows with the work an image asks for
  (annotators' recall drops as the boxes to draw grow in number: Hettiachchi, Schaekermann, McKinney, Lease, "The
  Challenge of Variable Effort Crowdsourcing and How Visible Gold Can Help", PACM HCI 5, CSCW2, 2021), and an object
  left out teaches a detector that it is background. A kept box with a low confidence can still be dropped by
  confidence at export or sent to review; a dropped one is gone.

Agreement
---------
- Per image (`image_agreement`): the mean, over every pair of annotators, of the F1 of their boxes matched one to one
  at IoU >= the threshold with the same label, greedily, highest IoU first: 2 x matched / (boxes of one + boxes of
  the other), 1 when neither drew a box. 1 when all agree; None with fewer than two annotators. It is computed from
  the answers, not from the consolidation, so it says how far apart the answers are before anything is merged.
- Per annotator (`annotator_scores`): boxes drawn, kept (in a kept cluster, with the label that won), relabeled (in a
  kept cluster, under a label that lost), dropped (in a cluster too few drew), and the share kept.
- Per job (`JobAgreement`): those added up over the images with two annotators or more, the mean and median image
  agreement, the images below `LOW_AGREEMENT` and those with a label tie.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from labeling_pipeline.labels import Box, LabeledImage

IOU_THRESHOLD = 0.5
MIN_SHARE = 0.5
# An image whose annotators agree less than this (mean pairwise F1) is listed in the job's summary for review.
LOW_AGREEMENT = 0.5
# The annotator of boxes that name none: one more annotator, so that an image with only such boxes is left as it is.
ANONYMOUS = ""


def iou(first: Box, second: Box) -> float:
    """The IoU of two boxes as pycocotools' bbIou computes it (its operations in its order, as
    `prelabel.metrics.iou_matrix`), except that two boxes with the same coordinates (and a positive area) are 1 exactly:
    (left + width) - left is not always width, and identical answers must agree fully."""
    if (
        first.left == second.left
        and first.top == second.top
        and first.width == second.width
        and first.height == second.height
        and first.width > 0
        and first.height > 0
    ):
        return 1.0
    overlap_width = min(first.width + first.left, second.width + second.left) - max(first.left, second.left)
    if not overlap_width > 0:
        return 0.0
    overlap_height = min(first.height + first.top, second.height + second.top) - max(first.top, second.top)
    if not overlap_height > 0:
        return 0.0
    intersection = overlap_width * overlap_height
    union = first.width * first.height + second.width * second.height - intersection
    if not union > 0:
        return 0.0
    # The quotient can round a hair above 1 when one box lies within the other.
    return min(intersection / union, 1.0)


class Cluster(NamedTuple):
    """The boxes annotators drew for one object, and what consolidation made of them."""

    members: tuple[Box, ...]  # one box per annotator, its `annotator` set, in annotator order
    box: Box  # the consolidated box: the winning label, the mean geometry, the confidence
    votes: tuple[tuple[str, int], ...]  # (label, members with it), most votes first, then by label
    agreement: float  # the mean IoU of the members' pairs; 1 for a lone box
    kept: bool  # enough annotators drew it
    label_tied: bool  # two labels or more had the most votes: the label is the first of them by sort order

    @property
    def annotators(self) -> tuple[str, ...]:
        return tuple(str(member.annotator) for member in self.members)


class Consolidated(NamedTuple):
    """One image's answers consolidated."""

    boxes: tuple[Box, ...]  # the kept clusters' boxes (the answer itself with one annotator)
    clusters: tuple[Cluster, ...]  # every cluster, kept or not
    annotators: tuple[str, ...]  # who answered, sorted
    agreement: float | None  # `image_agreement` of the answers; None with fewer than two annotators

    @property
    def label_ties(self) -> int:
        return sum(1 for cluster in self.clusters if cluster.kept and cluster.label_tied)


@dataclass(frozen=True)
class AnnotatorScore:
    """What became of one annotator's boxes; scores of several images add up: `sum(scores, AnnotatorScore())`."""

    images: int = 0  # images they answered
    drawn: int = 0
    kept: int = 0  # in a kept cluster, with the label that won
    relabeled: int = 0  # in a kept cluster, under a label that lost the vote (or the tie)
    dropped: int = 0  # in a cluster too few annotators drew

    @property
    def share(self) -> float | None:
        """The share of their boxes kept as they drew them; None when they drew none."""
        return self.kept / self.drawn if self.drawn else None

    def __add__(self, other: AnnotatorScore) -> AnnotatorScore:
        return AnnotatorScore(
            images=self.images + other.images,
            drawn=self.drawn + other.drawn,
            kept=self.kept + other.kept,
            relabeled=self.relabeled + other.relabeled,
            dropped=self.dropped + other.dropped,
        )


def _check(iou_threshold: float, min_share: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold ({iou_threshold}) must be above 0 and at most 1")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share ({min_share}) is a share of the annotators: above 0 and at most 1")


def _box_order(box: Box) -> tuple[str, float, float, float, float, str, float]:
    # Boxes equal in all of these are interchangeable, so sorting by them makes the input order irrelevant.
    return (
        box.label,
        box.left,
        box.top,
        box.width,
        box.height,
        box.origin or "",
        -1.0 if box.confidence is None else box.confidence,
    )


class _Answers(NamedTuple):
    """Every box of every annotator, annotator by annotator (sorted), each annotator's boxes in `_box_order`."""

    annotators: tuple[str, ...]
    boxes: list[Box]  # with `annotator` set to its key
    owner: list[int]  # the annotator's index, per box
    counts: list[int]  # boxes per annotator
    # (i, j) -> IoU for boxes i < j of two annotators at IoU >= the threshold, highest IoU first, then by (i, j).
    pairs: dict[tuple[int, int], float]


def _answers(boxes_by_annotator: Mapping[str, Sequence[Box]], iou_threshold: float) -> _Answers:
    annotators = tuple(sorted(boxes_by_annotator))
    boxes: list[Box] = []
    owner: list[int] = []
    counts: list[int] = []
    starts: list[int] = []
    for rank, annotator in enumerate(annotators):
        starts.append(len(boxes))
        given = sorted(boxes_by_annotator[annotator], key=_box_order)
        boxes.extend(box if box.annotator == annotator else box._replace(annotator=annotator) for box in given)
        owner.extend([rank] * len(given))
        counts.append(len(given))
    # Most pairs do not overlap at all: their edges (right and bottom as `iou` computes them, so the same pairs are
    # ruled out) say so at a fraction of the IoU's cost.
    rights = [box.width + box.left for box in boxes]
    bottoms = [box.height + box.top for box in boxes]
    found: list[tuple[float, int, int]] = []
    for i, first in enumerate(boxes):
        next_annotator = owner[i] + 1
        if next_annotator == len(annotators):
            break
        left, top, right, bottom = first.left, first.top, rights[i], bottoms[i]
        for j in range(starts[next_annotator], len(boxes)):
            second = boxes[j]
            if rights[j] <= left or second.left >= right or bottoms[j] <= top or second.top >= bottom:
                continue
            overlap = iou(first, second)
            if overlap >= iou_threshold:
                found.append((-overlap, i, j))
    found.sort()
    return _Answers(annotators, boxes, owner, counts, {(i, j): -negative for negative, i, j in found})


def _mean_within(values: Sequence[float]) -> float:
    # fsum / n can land a hair outside [min, max] (0.1 three times gives 0.09999999999999999); clamping keeps a
    # consolidated box within its members and gives identical boxes back unchanged.
    return min(max(math.fsum(values) / len(values), min(values)), max(values))


def _clusters(answers: _Answers) -> list[list[int]]:
    """Greedy complete-linkage clusters of box indices, each sorted (so in annotator order)."""
    boxes, owner, pairs = answers.boxes, answers.owner, answers.pairs
    cluster_of = list(range(len(boxes)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(boxes))}
    owners: dict[int, int] = {i: 1 << owner[i] for i in range(len(boxes))}  # a bit per annotator

    def merge(i: int, j: int) -> None:
        first, second = cluster_of[i], cluster_of[j]
        if first == second or owners[first] & owners[second]:
            return
        for p in members[first]:
            for q in members[second]:
                if (p, q) not in pairs and (q, p) not in pairs:
                    return
        if len(members[first]) < len(members[second]):
            first, second = second, first
        for q in members[second]:
            cluster_of[q] = first
        members[first].extend(members.pop(second))
        owners[first] |= owners.pop(second)

    for i, j in pairs:
        if boxes[i].label == boxes[j].label:
            merge(i, j)
    for i, j in pairs:
        if boxes[i].label != boxes[j].label:
            merge(i, j)
    return [sorted(indices) for indices in members.values()]


def _cluster(answers: _Answers, indices: Sequence[int], min_share: float) -> Cluster:
    members = tuple(answers.boxes[i] for i in indices)
    votes = sorted(Counter(box.label for box in members).items(), key=lambda vote: (-vote[1], vote[0]))
    label, winning_votes = votes[0]
    ious = [answers.pairs[(p, q)] for n, p in enumerate(indices) for q in indices[n + 1 :]]
    agreement = math.fsum(ious) / len(ious) if ious else 1.0
    annotator_count = len(answers.annotators)
    box = Box(
        label,
        _mean_within([member.left for member in members]),
        _mean_within([member.top for member in members]),
        _mean_within([member.width for member in members]),
        _mean_within([member.height for member in members]),
        confidence=winning_votes / annotator_count * agreement,
    )
    return Cluster(
        members=members,
        box=box,
        votes=tuple(votes),
        agreement=agreement,
        kept=len(members) >= min_share * annotator_count,
        label_tied=len(votes) > 1 and votes[1][1] == winning_votes,
    )


def _agreement(answers: _Answers) -> float | None:
    """`image_agreement` of prepared answers: the pairs at IoU >= the threshold are all the matching needs."""
    annotator_count = len(answers.annotators)
    if annotator_count < 2:
        return None
    boxes, owner = answers.boxes, answers.owner
    taken: set[int] = set()
    matched: Counter[tuple[int, int]] = Counter()
    # Each pair of annotators is matched on its own (A's box may match B's and C's), highest IoU first.
    by_annotators: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in answers.pairs:
        if boxes[i].label == boxes[j].label:
            by_annotators.setdefault((owner[i], owner[j]), []).append((i, j))
    for key, candidates in by_annotators.items():
        taken.clear()
        for i, j in candidates:
            if i not in taken and j not in taken:
                taken.add(i)
                taken.add(j)
                matched[key] += 1
    scores = []
    for a in range(annotator_count):
        for b in range(a + 1, annotator_count):
            drawn = answers.counts[a] + answers.counts[b]
            scores.append(2 * matched[(a, b)] / drawn if drawn else 1.0)
    return math.fsum(scores) / len(scores)


def _unchanged(annotator: str, boxes: Sequence[Box]) -> Consolidated:
    clusters = tuple(
        Cluster(
            members=(box if box.annotator == annotator else box._replace(annotator=annotator),),
            box=box,
            votes=((box.label, 1),),
            agreement=1.0,
            kept=True,
            label_tied=False,
        )
        for box in boxes
    )
    return Consolidated(tuple(boxes), clusters, (annotator,), None)


def consolidate(
    boxes_by_annotator: Mapping[str, Sequence[Box]],
    *,
    iou_threshold: float = IOU_THRESHOLD,
    min_share: float = MIN_SHARE,
) -> Consolidated:
    """One image's answers consolidated by the rule of this module's docstring.

    boxes_by_annotator: every annotator who answered the image, with the boxes they drew, none for an empty answer (it
    counts: leaving such an annotator out makes a box one person drew look like everyone's). The key is who drew the
    boxes; members of the clusters carry it as their `annotator`. Consolidated boxes have the winning label, the
    mean geometry and the confidence, no annotator and no origin; clusters come in reading order (top, then left).
    """
    _check(iou_threshold, min_share)
    if len(boxes_by_annotator) == 1:
        [(annotator, boxes)] = boxes_by_annotator.items()
        return _unchanged(annotator, boxes)
    answers = _answers(boxes_by_annotator, iou_threshold)
    clusters = sorted(
        ((indices, _cluster(answers, indices, min_share)) for indices in _clusters(answers)),
        key=lambda made: (made[1].box.top, made[1].box.left, made[1].box.height, made[1].box.width, made[0]),
    )
    return Consolidated(
        boxes=tuple(cluster.box for _, cluster in clusters if cluster.kept),
        clusters=tuple(cluster for _, cluster in clusters),
        annotators=answers.annotators,
        agreement=_agreement(answers),
    )


def settle(consolidated: Consolidated, settled: Sequence[Box], *, iou_threshold: float = IOU_THRESHOLD) -> Consolidated:
    """The consolidation measured against final boxes decided elsewhere (a reviewer's answer, or the backend's own
    consolidation), so that the annotators' scores say how often their boxes survived those. Each cluster, kept or
    not, pairs with at most one settled box at IoU >= iou_threshold between its box and the settled box, whatever
    their labels, highest IoU first (ties by the cluster's reading order, then the settled box's). A paired cluster is
    kept, with the settled box (its label decides which members were right); an unpaired one is dropped. The
    agreement stays that of the answers."""
    _check(iou_threshold, MIN_SHARE)
    pairs = sorted(
        (
            (-overlap, c, s)
            for c, cluster in enumerate(consolidated.clusters)
            for s, box in enumerate(settled)
            if (overlap := iou(cluster.box, box)) >= iou_threshold
        ),
    )
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for _overlap, c, s in pairs:
        if c not in matched and s not in taken:
            matched[c] = s
            taken.add(s)
    clusters = tuple(
        cluster._replace(box=settled[matched[c]], kept=True) if c in matched else cluster._replace(kept=False)
        for c, cluster in enumerate(consolidated.clusters)
    )
    return consolidated._replace(boxes=tuple(settled), clusters=clusters)


def image_agreement(
    boxes_by_annotator: Mapping[str, Sequence[Box]], *, iou_threshold: float = IOU_THRESHOLD
) -> float | None:
    """The mean over every pair of annotators of the F1 of their boxes: matched one to one at IoU >= iou_threshold
    with the same label, highest IoU first (ties by annotator, then by label and position); 2 x matched / (boxes of
    the one + boxes of the other), 1 when neither drew a box. None with fewer than two annotators."""
    _check(iou_threshold, MIN_SHARE)
    return _agreement(_answers(boxes_by_annotator, iou_threshold))


def pairwise_f1(first: Sequence[Box], second: Sequence[Box], *, iou_threshold: float = IOU_THRESHOLD) -> float:
    """The F1 of two sets of boxes as `image_agreement` scores a pair of annotators (e.g. consolidated boxes against
    known truth): 1 when both are empty."""
    agreement = image_agreement({"first": first, "second": second}, iou_threshold=iou_threshold)
    assert agreement is not None  # two annotators always have one
    return agreement


def annotator_scores(consolidated: Consolidated) -> dict[str, AnnotatorScore]:
    """What became of each annotator's boxes in one image (every annotator who answered, in id order)."""
    counts = {annotator: [0, 0, 0, 0] for annotator in consolidated.annotators}  # drawn, kept, relabeled, dropped
    for cluster in consolidated.clusters:
        for member in cluster.members:
            count = counts.setdefault(str(member.annotator), [0, 0, 0, 0])
            count[0] += 1
            if not cluster.kept:
                count[3] += 1
            elif member.label == cluster.box.label:
                count[1] += 1
            else:
                count[2] += 1
    return {
        annotator: AnnotatorScore(images=1, drawn=drawn, kept=kept, relabeled=relabeled, dropped=dropped)
        for annotator, (drawn, kept, relabeled, dropped) in counts.items()
    }


def group_by_annotator(boxes: Iterable[Box], answered: Iterable[str] = ()) -> dict[str, list[Box]]:
    """The boxes of one image by annotator, for `consolidate`. `answered`: everyone who submitted an answer, so that
    those who drew nothing count too (their answers hold no box to find them by). A box with no annotator belongs to
    ANONYMOUS."""
    grouped: dict[str, list[Box]] = {annotator: [] for annotator in answered}
    for box in boxes:
        grouped.setdefault(ANONYMOUS if box.annotator is None else box.annotator, []).append(box)
    return grouped


def consolidate_image(
    image: LabeledImage,
    answered: Iterable[str] = (),
    *,
    iou_threshold: float = IOU_THRESHOLD,
    min_share: float = MIN_SHARE,
) -> tuple[LabeledImage, Consolidated]:
    """The image with its boxes consolidated (unchanged with one annotator), and the consolidation's details.
    `answered` as in `group_by_annotator`."""
    consolidated = consolidate(
        group_by_annotator(image.boxes, answered), iou_threshold=iou_threshold, min_share=min_share
    )
    if len(consolidated.annotators) < 2:
        return image, consolidated
    return image._replace(boxes=consolidated.boxes), consolidated


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


@dataclass
class JobAgreement:
    """The agreement of a job's annotators, image by image (`add` each image once), for the job's summary.

    Only images with two annotators or more count in the agreement and the annotators' scores: an image one person
    answered says nothing about agreement, and all its boxes are kept by definition."""

    low_agreement: float = LOW_AGREEMENT
    images: int = 0  # images added
    consolidated_images: int = 0  # of them, with two annotators or more
    boxes_drawn: int = 0  # by all annotators, in the consolidated images
    boxes_kept: int = 0  # consolidated boxes
    clusters_dropped: int = 0
    agreements: dict[str, float] = field(default_factory=dict)  # image -> `image_agreement`
    tied_images: list[str] = field(default_factory=list)  # images with a kept cluster whose label was a tie
    annotators: dict[str, AnnotatorScore] = field(default_factory=dict)

    def add(self, image: str, consolidated: Consolidated) -> None:
        self.images += 1
        if consolidated.agreement is None:
            return
        self.consolidated_images += 1
        self.agreements[image] = consolidated.agreement
        self.boxes_drawn += sum(len(cluster.members) for cluster in consolidated.clusters)
        self.boxes_kept += len(consolidated.boxes)
        self.clusters_dropped += sum(1 for cluster in consolidated.clusters if not cluster.kept)
        if consolidated.label_ties:
            self.tied_images.append(image)
        for annotator, score in annotator_scores(consolidated).items():
            self.annotators[annotator] = self.annotators.get(annotator, AnnotatorScore()) + score

    @property
    def mean_agreement(self) -> float | None:
        return math.fsum(self.agreements.values()) / len(self.agreements) if self.agreements else None

    @property
    def median_agreement(self) -> float | None:
        return statistics.median(self.agreements.values()) if self.agreements else None

    def low_agreement_images(self) -> list[tuple[str, float]]:
        """The images below `low_agreement`, the lowest first (then by image)."""
        low = [(image, value) for image, value in self.agreements.items() if value < self.low_agreement]
        return sorted(low, key=lambda entry: (entry[1], entry[0]))

    def summary(self, *, limit: int = 100) -> dict[str, Any]:
        """For the job's summary (JSON); lists of images are cut at `limit`, their counts are whole."""
        low = self.low_agreement_images()
        return {
            "images": self.images,
            "consolidatedImages": self.consolidated_images,
            "boxesDrawn": self.boxes_drawn,
            "boxesKept": self.boxes_kept,
            "clustersDropped": self.clusters_dropped,
            "agreement": {
                "mean": _round(self.mean_agreement),
                "median": _round(self.median_agreement),
                "lowThreshold": self.low_agreement,
                "lowCount": len(low),
                "low": [{"image": image, "agreement": _round(value)} for image, value in low[:limit]],
            },
            "labelTies": {"count": len(self.tied_images), "images": self.tied_images[:limit]},
            "annotators": {
                annotator: {
                    "images": score.images,
                    "drawn": score.drawn,
                    "kept": score.kept,
                    "relabeled": score.relabeled,
                    "dropped": score.dropped,
                    "share": _round(score.share),
                }
                for annotator, score in sorted(self.annotators.items())
            },
        }
