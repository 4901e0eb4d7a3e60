"""`bbox-labeling ledger upgrade` on a ledger written before its index: a deployment upgraded from then has a job
and its images without index groups; `status` and `export --dataset` see them once the upgrade has run, and
`relabel` needs no upgrade (it reads a job's images by key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labeling_pipeline.ledger_schema import GROUP_KEY, GROUP_SORT
from tests.cli.conftest import Deployed
from tests.cli.test_cli import run
from tests.cli.test_dataset_export import boxes_by_image, failed_line, finish, launch, ref, upload
from tests.lambda_code.test_job_events import output_line
from tests.support import TABLE, World


def _as_before_the_index(world: World) -> int:
    """Rewrite every item as the code before the index wrote it: no index group anywhere, and an image whose
    job had ended without ``claimed_at`` and ``dataset`` (that code wrote the outcome over the claim)."""
    items = world.dynamodb.scan(TableName=TABLE)["Items"]
    for item in items:
        old = {name: value for name, value in item.items() if name not in (GROUP_KEY, GROUP_SORT, "dataset")}
        if "status" in old and old["pk"]["S"].startswith("image#"):
            old.pop("claimed_at")
        world.dynamodb.put_item(TableName=TABLE, Item=old)
    return len(items)


def test_the_upgrade_brings_older_jobs_into_status_and_older_images_into_dataset_exports(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    world = deployed.world
    a, b = upload(world, "images/walk/a.jpg", b"a"), upload(world, "images/walk/b.jpg", b"b")
    loose = upload(world, "images/loose.jpg", b"loose")
    job = launch(world, [a, b, loose])
    finish(
        world,
        job,
        [output_line(a, [(1, 10, 10, 50, 50)], job), failed_line(b, job), output_line(loose, [(0, 1, 1, 5, 5)], job)],
    )
    assert _as_before_the_index(world) == 4  # the job and its three images

    # Before the upgrade: status and the dataset export do not see them; relabel does (by key, no index).
    code, out, _ = run(deployed, monkeypatch, capsys, "status")
    assert code == 0 and job not in out
    code, _, err = run(deployed, monkeypatch, capsys, *_export_walk(tmp_path))
    assert code == 2 and "holds no image of dataset 'walk'" in err and "bbox-labeling ledger upgrade" in err
    code, out, _ = run(deployed, monkeypatch, capsys, "relabel", job)
    assert code == 0 and "requeued 1 image(s)" in out  # walk/b, whose task failed

    code, out, err = run(deployed, monkeypatch, capsys, "ledger", "upgrade")
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "updated 3 ledger item(s) written before the index: older jobs now show in `status`, older images in "
        "`export --dataset`",
        "examined 4 item(s); 1 need no group (images directly under images/)",
    ]

    code, out, _ = run(deployed, monkeypatch, capsys, "status")
    [row] = [line for line in out.splitlines() if line.startswith(job)]
    assert row.split()[:3] == [job, "Completed", "3"]  # the fake's counters follow; the image count is the ledger's
    code, out, err = run(deployed, monkeypatch, capsys, *_export_walk(tmp_path))
    assert code == 0, err
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert boxes_by_image(coco) == {ref("walk/a.jpg"): [[10, 10, 50, 50]]}
    summary: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    assert summary["jobs"] == {job: 1}
    assert summary["pendingImages"] == [
        {"sourceRef": ref("walk/b.jpg"), "job": job, "state": "RELABEL_REQUESTED", "labelsFrom": None}
    ]

    code, out, _ = run(deployed, monkeypatch, capsys, "ledger", "upgrade")
    assert code == 0 and out.startswith("updated 0 ledger item(s)")  # once is enough; again changes nothing


def _export_walk(out: Path) -> tuple[str, ...]:
    return ("export", "--dataset", "walk", "--format", "coco", "--out", str(out))
