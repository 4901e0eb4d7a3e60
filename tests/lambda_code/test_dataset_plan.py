"""Which labels a dataset export takes for each image (labeling_pipeline/exports/dataset.py), without AWS."""

from __future__ import annotations

import random
from typing import NamedTuple

from labeling_pipeline.exports.dataset import RUNNING, Choice, Pending, Selection, Version, plan_dataset
from labeling_pipeline.images import ImageRef

BUCKET = "bucket"


def version(key: str, version_id: str, job: str, status: str | None, claimed_at: str) -> Version:
    return Version(ImageRef(BUCKET, f"images/walk/{key}", version_id), job, status, claimed_at)


def ref(key: str) -> str:
    return f"s3://{BUCKET}/images/walk/{key}"


VERSIONS = [
    # a: labeled in job-1, uploaded again and labeled in job-2: job-2's labels
    version("a.jpg", "a1", "job-1", "LABELED", "2026-11-01T10:00:00"),
    version("a.jpg", "a2", "job-2", "LABELED", "2026-11-02T10:00:00"),
    # b: labeled in job-1, a newer version in job-3, which still runs: job-1's labels, and pending
    version("b.jpg", "b1", "job-1", "LABELED", "2026-11-01T10:00:00"),
    version("b.jpg", "b2", "job-3", None, "2026-11-03T10:00:00"),
    # c: failed in job-1, relabeled (copied) into job-2 and labeled there
    version("c.jpg", "c1", "job-1", "RELABEL_REQUESTED", "2026-11-01T10:00:00"),
    version("c.jpg", "c2", "job-2", "LABELED", "2026-11-02T10:00:00"),
    # e: failed in job-2 and nothing older: pending, not exported
    version("e.jpg", "e1", "job-2", "NEEDS_RELABEL", "2026-11-02T10:00:00"),
    # f: the newer version labeled while an older one's job still runs: the newer labels, nothing pending
    version("f.jpg", "f1", "job-3", None, "2026-11-01T09:00:00"),
    version("f.jpg", "f2", "job-2", "LABELED", "2026-11-02T10:00:00"),
]


def test_each_key_takes_its_newest_labeled_version_and_newer_unlabeled_ones_are_pending() -> None:
    plan = plan_dataset(VERSIONS)
    assert plan.chosen == {
        ref("a.jpg"): Choice("job-2", "a2"),
        ref("b.jpg"): Choice("job-1", "b1"),
        ref("c.jpg"): Choice("job-2", "c2"),
        ref("f.jpg"): Choice("job-2", "f2"),
    }
    assert plan.pending == [
        Pending(ref("b.jpg"), "job-3", RUNNING, "job-1"),
        Pending(ref("e.jpg"), "job-2", "NEEDS_RELABEL", None),
    ]
    assert plan.jobs == ["job-1", "job-2"]
    assert plan.pending_summary(listed=1) == {
        "imagesPending": 2,
        "imagesPendingWithOlderLabels": 1,
        "pendingImages": [{"sourceRef": ref("b.jpg"), "job": "job-3", "state": RUNNING, "labelsFrom": "job-1"}],
        "pendingImagesNotListed": 1,
    }


def test_the_choice_does_not_depend_on_the_order_the_ledger_returns_versions_in() -> None:
    expected = plan_dataset(VERSIONS)
    shuffled = list(VERSIONS)
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert plan_dataset(shuffled) == expected


def test_a_claim_time_tie_is_broken_by_job_then_version() -> None:
    same_time = "2026-11-01T10:00:00"
    plan = plan_dataset(
        [version("a.jpg", "v1", "job-1", "LABELED", same_time), version("a.jpg", "v2", "job-2", "LABELED", same_time)]
    )
    assert plan.chosen == {ref("a.jpg"): Choice("job-2", "v2")}


class Line(NamedTuple):
    source_ref: str
    boxes: int
    failure_reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure_reason is not None


def test_selection_reads_each_job_once_and_passes_only_the_chosen_jobs_lines() -> None:
    results = {
        "job-1": [Line(ref("a.jpg"), 1), Line(ref("b.jpg"), 1), Line(ref("c.jpg"), 0, "failed"), Line(ref("z.jpg"), 3)],
        "job-2": [Line(ref("a.jpg"), 2), Line(ref("a.jpg"), 9), Line(ref("c.jpg"), 2), Line(ref("f.jpg"), 2)],
    }
    read: list[str] = []

    def read_job(job: str) -> list[Line]:
        read.append(job)
        return results[job]

    plan = plan_dataset(VERSIONS)
    selection = Selection(plan.chosen)
    taken = list(selection.images(read_job))
    assert read == ["job-1", "job-2"]
    # b from job-1; a (its first line only), c and f from job-2; z is not in the dataset's plan
    assert taken == [Line(ref("b.jpg"), 1), Line(ref("a.jpg"), 2), Line(ref("c.jpg"), 2), Line(ref("f.jpg"), 2)]
    assert selection.taken == {"job-1": 1, "job-2": 3}
    assert selection.missing == []


def test_a_chosen_image_its_job_does_not_hold_as_labeled_is_reported_missing() -> None:
    plan = plan_dataset(
        [version("a.jpg", "a1", "job-1", "LABELED", "t1"), version("b.jpg", "b1", "job-1", "LABELED", "t1")]
    )
    selection = Selection(plan.chosen)
    taken = list(selection.images(lambda job: [Line(ref("a.jpg"), 0, "worker task failed")]))
    assert taken == []
    assert selection.missing == [ref("a.jpg"), ref("b.jpg")]
