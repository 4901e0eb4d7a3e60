"""The Label Studio job index (job_index.py): each task's answers counted by kind, the results version, the read
window with its margin for late commits, and the index as it is kept in S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labeling_pipeline.backends.label_studio.job_index import (
    JobIndex,
    parse_time,
    read_from,
    seen_until,
    task_row,
)


def annotation(number: int, *, updated: str = "2026-12-06T10:00:00.000001Z", **fields: Any) -> dict[str, Any]:
    return {"id": number, "updated_at": updated, "result": [], "lead_time": 3.5, **fields}


def task(number: int, *answers: dict[str, Any], overlap: int = 1) -> dict[str, Any]:
    return {"id": number, "overlap": overlap, "annotations": list(answers)}


def test_answers_are_counted_by_kind() -> None:
    from_prediction = annotation(2, parent_prediction=7, lead_time=None)
    row = task_row(task(1, annotation(1), from_prediction, annotation(3, was_cancelled=True), overlap=3), 1)
    assert (row.overlap, row.people, row.unreviewed, row.skipped, row.answers) == (3, 1, 1, 1, 3)
    # A task listed without its annotations: its counters, none of them unreviewed.
    counted = task_row({"id": 1, "total_annotations": 2, "cancelled_annotations": 1}, 2)
    assert (counted.overlap, counted.people, counted.unreviewed, counted.skipped) == (2, 2, 0, 1)


def test_the_state_follows_the_rows() -> None:
    index = JobIndex.build(
        9,
        None,
        [
            task(1, annotation(1)),
            task(2, annotation(2, parent_prediction=4, lead_time=None)),
            task(3, annotation(3, was_cancelled=True)),
            task(4, annotation(5), overlap=2),
            task(5),
        ],
        1,
    )
    assert (index.annotated, index.unreviewed, index.skipped, index.left, index.ended) == (2, 1, 1, 2, False)
    assert index.apply([task(4, annotation(5), annotation(6), overlap=2), task(5, annotation(7))], 1)
    assert (index.left, index.ended) == (0, True)
    assert not index.apply([task(5, annotation(7))], 1)
    assert not JobIndex(9, None).ended


def test_the_version_changes_with_any_answer_and_only_then() -> None:
    tasks = [task(1, annotation(1)), task(2, annotation(2))]
    index = JobIndex.build(9, None, tasks, 1)
    version = index.version()
    assert JobIndex.build(9, "2026-12-06T11:00:00.000000Z", tasks, 1).version() == version
    changed = JobIndex.build(9, None, [task(1, annotation(1, updated="2026-12-06T10:00:01.000000Z")), tasks[1]], 1)
    assert changed.version() != version
    assert JobIndex.build(9, None, tasks[:1], 1).version() != version  # a task gone
    assert index.version([task(50, annotation(51))]) != version  # a review answered


def test_a_read_goes_back_the_margin_before_what_the_one_before_saw() -> None:
    assert read_from(None) is None
    assert read_from("2026-12-06T10:05:00.250000Z") == "2026-12-06T10:03:00.250000Z"
    assert read_from("2026-12-06T10:05:00.250000Z", timedelta(0)) == "2026-12-06T10:05:00.250000Z"
    # Label Studio writes its times with an offset or a Z; both read as UTC.
    assert parse_time("2026-12-06T10:05:00.250000+00:00") == parse_time("2026-12-06T10:05:00.250000Z")
    read_at = datetime(2026, 12, 6, 10, 6, tzinfo=UTC)
    assert seen_until("2026-12-06T10:05:00.250000Z", read_at) == "2026-12-06T10:05:00.250000Z"
    assert seen_until("2026-12-06T10:07:00.000000Z", read_at) == "2026-12-06T10:06:00.000000Z"
    assert seen_until(None, read_at) is None


def test_the_index_is_kept_as_json_and_refused_when_it_is_not_one() -> None:
    index = JobIndex.build(9, "2026-12-06T10:05:00.250000Z", [task(1, annotation(1)), task(2)], 1)
    again = JobIndex.from_json(index.to_json())
    assert again == index and again.version() == index.version()
    for broken in (b'{"project": ', b"{}", b'{"project": 1, "tasks": [[1]]}', b'{"project": "x", "tasks": []}'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            JobIndex.from_json(broken)
