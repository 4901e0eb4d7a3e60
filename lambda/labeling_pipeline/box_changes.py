"""What people did with boxes they were shown: a detector's proposals (the pre-label report) or the consolidated
boxes of several annotators (the review step). Each shown box was accepted, moved, relabeled or deleted, and boxes
no shown box became were added. Plain Python, as the job-events function has no numpy unless pre-labels are on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labeling_pipeline.consolidation import iou
from labeling_pipeline.labels import Box

MANUAL_ORIGIN = "manual"
PREDICTION_ORIGINS = frozenset({"prediction", "prediction-changed"})


@dataclass(frozen=True)
class Comparison:
    """What people did with the proposals of one image, or of many added up: `sum(comparisons, Comparison())`."""

    accepted: int = 0  # kept as proposed: same label, IoU >= unchanged_iou
    moved: int = 0  # kept with its label, moved or resized
    relabeled: int = 0  # kept under another label
    deleted: int = 0  # proposals people removed
    added: int = 0  # final boxes that no proposal became
    kept_ious: tuple[float, ...] = ()  # the IoU of each kept proposal with the final box it became

    @property
    def proposals(self) -> int:
        return self.accepted + self.moved + self.relabeled + self.deleted

    @property
    def finals(self) -> int:
        return self.accepted + self.moved + self.relabeled + self.added

    def counts(self, shown: str = "shown") -> dict[str, int]:
        """For a report (JSON): the boxes shown (under `shown`), then what became of them, and the boxes added."""
        return {
            shown: self.proposals,
            "accepted": self.accepted,
            "moved": self.moved,
            "relabeled": self.relabeled,
            "deleted": self.deleted,
            "added": self.added,
        }

    def __add__(self, other: Comparison) -> Comparison:
        return Comparison(
            accepted=self.accepted + other.accepted,
            moved=self.moved + other.moved,
            relabeled=self.relabeled + other.relabeled,
            deleted=self.deleted + other.deleted,
            added=self.added + other.added,
            kept_ious=self.kept_ious + other.kept_ious,
        )


def greedy_pairs(
    candidates: Iterable[tuple[int, int]],
    ious: Sequence[Sequence[float]],
    same_label: Sequence[Sequence[bool]],
    taken_proposals: set[int],
    taken_finals: set[int],
) -> list[tuple[int, int]]:
    """One-to-one (proposal, final box) pairs from the candidates, highest IoU first; on a tie the pair with the same
    label, then the earlier proposal, then the earlier final box. Adds the pairs' ends to the taken sets."""
    ordered = sorted(candidates, key=lambda pair: (-ious[pair[0]][pair[1]], not same_label[pair[0]][pair[1]], pair))
    pairs = []
    for proposal, final in ordered:
        if proposal not in taken_proposals and final not in taken_finals:
            taken_proposals.add(proposal)
            taken_finals.add(final)
            pairs.append((proposal, final))
    return pairs


def compare(
    proposals: Sequence[Box],
    finals: Sequence[Box],
    *,
    unchanged_iou: float = 0.95,
    match_iou: float = 0.5,
    origins: Sequence[str | None] | None = None,
) -> Comparison:
    """What people did with one image's proposals, from the proposals and the final boxes.

    Each proposal became at most one final box: the pairs at IoU >= match_iou, whatever their labels (so that a
    relabel is found), are taken greedily, highest IoU first (on a tie the pair with the same label, then the earlier
    proposal, then the earlier final box). A pair with the same label is accepted at IoU >= unchanged_iou, moved
    below it; a pair with two labels is relabeled. An unpaired proposal was deleted, an unpaired final box added.

    `origins`, when given, is Label Studio's `origin` of each final box, which knows what geometry can only guess:
    - "manual": drawn by hand, so no proposal became it. It is added and pairs with no proposal, not even one on the
      same spot: that proposal was deleted and redrawn, which saved no work (had it been kept, its region would be
      a final box of origin "prediction" or "prediction-changed").
    - "prediction", "prediction-changed": a kept proposal. One left unpaired (moved below match_iou) is paired with
      one of the unpaired proposals, highest IoU first (IoU 0 included, ties as above), counted by the same rule
      and its IoU kept; when no proposal is left (the proposals given are not those Label Studio showed) it is added.
    - anything else (None, a value Label Studio may add): no word; geometry alone decides.
    """
    if origins is not None and len(origins) != len(finals):
        raise ValueError(f"{len(origins)} origins for {len(finals)} final boxes: one origin per final box")
    ious = [[iou(proposal, final) for final in finals] for proposal in proposals]
    same_label = [[proposal.label == final.label for final in finals] for proposal in proposals]
    drawn_by_hand = [origin == MANUAL_ORIGIN for origin in origins] if origins is not None else [False] * len(finals)
    taken_proposals: set[int] = set()
    taken_finals: set[int] = set()
    pairs = greedy_pairs(
        (
            (p, f)
            for p in range(len(proposals))
            for f in range(len(finals))
            if not drawn_by_hand[f] and ious[p][f] >= match_iou
        ),
        ious,
        same_label,
        taken_proposals,
        taken_finals,
    )
    if origins is not None:
        pairs += greedy_pairs(
            (
                (p, f)
                for p in range(len(proposals))
                if p not in taken_proposals
                for f in range(len(finals))
                if f not in taken_finals and origins[f] in PREDICTION_ORIGINS
            ),
            ious,
            same_label,
            taken_proposals,
            taken_finals,
        )
    accepted = moved = relabeled = 0
    for p, f in pairs:
        if not same_label[p][f]:
            relabeled += 1
        elif ious[p][f] >= unchanged_iou:
            accepted += 1
        else:
            moved += 1
    return Comparison(
        accepted=accepted,
        moved=moved,
        relabeled=relabeled,
        deleted=len(proposals) - len(pairs),
        added=len(finals) - len(pairs),
        kept_ious=tuple(ious[p][f] for p, f in pairs),
    )


@dataclass
class ReviewTally:
    """What reviewers changed in a job: each reviewed image's `compare` of the boxes shown to the reviewer (the
    consolidated ones) with the reviewer's answer, added up, overall and per reviewer."""

    images: int = 0
    images_changed: list[str] = field(default_factory=list)  # reviewed images whose boxes the reviewer changed
    total: Comparison = field(default_factory=Comparison)
    by_reviewer: dict[str, tuple[int, Comparison]] = field(default_factory=dict)  # reviewer -> (images, changes)

    def add(self, image: str, reviewer: str, shown: Sequence[Box], final: Sequence[Box]) -> Comparison:
        origins = [box.origin for box in final]
        comparison = compare(shown, final, origins=origins if any(origins) else None)
        self.images += 1
        self.total += comparison
        if comparison.accepted != len(shown) or comparison.added:
            self.images_changed.append(image)
        images, changes = self.by_reviewer.get(reviewer, (0, Comparison()))
        self.by_reviewer[reviewer] = (images + 1, changes + comparison)
        return comparison

    def summary(self, *, limit: int = 100) -> dict[str, Any]:
        return {
            "images": self.images,
            "imagesChanged": len(self.images_changed),
            "changed": self.images_changed[:limit],
            "boxes": self.total.counts(),
            "reviewers": {
                reviewer: {"images": images, "boxes": changes.counts()}
                for reviewer, (images, changes) in sorted(self.by_reviewer.items())
            },
        }
