"""A dataset across jobs: which labels each image under ``images/<NAME>/`` takes, and the stream of them.

An S3 key can be labeled more than once: a new upload of the key is a new version, and
``bbox-labeling relabel`` copies an image onto itself, which makes one; the ledger gives each version to one
job. A dataset export takes, for each key, the labels of its newest *labeled* version:

- versions are ordered by the time the ledger claimed them (``claimed_at``; a later upload or relabel is
  claimed later), then by job name and version id so that the choice never depends on reading order;
- a version is labeled when the ledger's status says ``LABELED`` (written when its job ended, from the
  job's results); a version whose job is still running has no status, a failed object is
  ``NEEDS_RELABEL``, and one already copied by relabel ``RELABEL_REQUESTED``;
- when the newest version is not labeled, the key is *pending*: it is reported (job and state) and, if an
  older version has labels, exported with those (``labelsFrom`` names their job); a key with no labeled
  version is left out.

Only the (key -> job, version) choice is kept in memory; each job's results are read once, in job-name
order, and only the lines of the chosen job pass. Pure: the ledger's rows come in as `Version`s and the
results of a job through a function that the caller gives (the backend's reading of its results into
the neutral stream), so nothing here knows a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from labeling_pipeline.images import ImageRef
from labeling_pipeline.names import ImageStatus

LABELED = ImageStatus.LABELED.value
RUNNING = "LABELING"  # the state reported for a version whose job has not ended (no status yet)
MAX_LISTED_PENDING = 100


class Version(NamedTuple):
    """One claimed version of an image of the dataset, as the ledger holds it."""

    image: ImageRef
    job_name: str
    status: str | None  # LABELED | NEEDS_RELABEL | RELABEL_REQUESTED; None while the job runs
    claimed_at: str


class Choice(NamedTuple):
    job_name: str
    version: str  # the S3 version whose labels are exported (what --with-images downloads)


class Pending(NamedTuple):
    source_ref: str
    job_name: str  # the job of the newest version
    state: str  # RUNNING, or the newest version's status
    labels_from: str | None  # the older job whose labels are exported instead, if any

    def as_json(self) -> dict[str, str | None]:
        return {"sourceRef": self.source_ref, "job": self.job_name, "state": self.state, "labelsFrom": self.labels_from}


def _order(version: Version) -> tuple[str, str, str]:
    return (version.claimed_at, version.job_name, version.image.version)


@dataclass
class DatasetPlan:
    chosen: dict[str, Choice] = field(default_factory=dict)  # source_ref -> whose labels are exported
    pending: list[Pending] = field(default_factory=list)  # keys whose newest version has no labels, by key

    @property
    def jobs(self) -> list[str]:
        return sorted({choice.job_name for choice in self.chosen.values()})

    def pending_summary(self, listed: int = MAX_LISTED_PENDING) -> dict[str, object]:
        return {
            "imagesPending": len(self.pending),
            "imagesPendingWithOlderLabels": sum(1 for entry in self.pending if entry.labels_from),
            "pendingImages": [entry.as_json() for entry in self.pending[:listed]],
            "pendingImagesNotListed": max(0, len(self.pending) - listed),
        }


def plan_dataset(versions: Iterable[Version]) -> DatasetPlan:
    """For each key, the labeled version to export and whether a newer version is pending (module doc)."""
    newest: dict[str, Version] = {}
    newest_labeled: dict[str, Version] = {}
    for version in versions:
        ref = version.image.source_ref
        current = newest.get(ref)
        if current is None or _order(version) > _order(current):
            newest[ref] = version
        if version.status == LABELED:
            labeled = newest_labeled.get(ref)
            if labeled is None or _order(version) > _order(labeled):
                newest_labeled[ref] = version
    plan = DatasetPlan()
    for ref in sorted(newest):
        latest, labeled = newest[ref], newest_labeled.get(ref)
        if labeled is not None:
            plan.chosen[ref] = Choice(labeled.job_name, labeled.image.version)
        if latest.status != LABELED:
            state = latest.status or RUNNING
            plan.pending.append(Pending(ref, latest.job_name, state, labeled.job_name if labeled else None))
    return plan


class HasSourceRef(Protocol):
    @property
    def source_ref(self) -> str: ...

    @property
    def failed(self) -> bool: ...


Labeled = TypeVar("Labeled", bound=HasSourceRef)


@dataclass
class Selection:
    """The chosen images' labels, streamed from their jobs' results (each job read once)."""

    chosen: dict[str, Choice]
    taken: dict[str, int] = field(default_factory=dict)  # job -> images whose labels came from it
    # Chosen keys that their job's results did not hold as labeled (the ledger and the results disagree).
    missing: list[str] = field(default_factory=list)

    def images(self, read_job: Callable[[str], Iterable[Labeled]]) -> Iterator[Labeled]:
        remaining = {ref: choice.job_name for ref, choice in self.chosen.items()}
        for job in sorted(set(remaining.values())):
            self.taken[job] = 0
            for image in read_job(job):
                if remaining.get(image.source_ref) == job and not image.failed:
                    del remaining[image.source_ref]  # a repeated line of the same image passes once
                    self.taken[job] += 1
                    yield image
        self.missing = sorted(remaining)
