"""`bbox-labeling export --dataset NAME` against moto and the Ground Truth fake: two jobs over overlapping
datasets, a relabeled image, a re-uploaded image whose newer version's job still runs, and failed objects.
Each job ends through the job-events code (JobFinisher), which records each image's status in the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from labeling_cli import main as cli
from labeling_pipeline.exports.formats import image_name
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_results import JobFinisher
from tests.cli.conftest import Deployed
from tests.cli.test_cli import run
from tests.lambda_code.test_job_events import output_line
from tests.support import BUCKET, REGION, World


def upload(world: World, key: str, body: bytes) -> ImageRef:
    return ImageRef(BUCKET, key, world.upload(key, body)["VersionId"])


def launch(world: World, images: list[ImageRef]) -> str:
    [name] = {outcome.job_name for outcome in world.launcher().launch(images).values()}
    assert name is not None
    return name


def finish(world: World, name: str, lines: list[str]) -> None:
    """The job completes with these output lines, and the job-events code ends it (exports, ledger)."""
    world.ground_truth.finish(name, "Completed", lines)
    sns = boto3.client("sns", region_name=REGION)
    finisher = JobFinisher(
        s3_client=world.s3,
        sns_client=sns,
        ledger=world.ledger,
        backend=world.backend(),
        bucket=BUCKET,
        topic_arn=sns.create_topic(Name="results")["TopicArn"],
        labels=["Dog", "Cat"],
    )
    assert finisher.handle(name).action == "exported"


def failed_line(image: ImageRef, job: str) -> str:
    return json.dumps(
        {"source-ref": image.source_ref, "labels-metadata": {"failure-reason": "worker task expired", "job-name": job}}
    )


def latest(world: World, key: str) -> ImageRef:
    versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    return ImageRef(BUCKET, key, next(v["VersionId"] for v in versions if v["IsLatest"] and v["Key"] == key))


def boxes_by_image(coco: dict[str, Any]) -> dict[str, list[list[float]]]:
    refs = {image["id"]: image["source_ref"] for image in coco["images"]}
    found: dict[str, list[list[float]]] = {ref: [] for ref in refs.values()}
    for annotation in coco["annotations"]:
        found[refs[annotation["image_id"]]].append(annotation["bbox"])
    return found


def ref(key: str) -> str:
    return f"s3://{BUCKET}/images/{key}"


@pytest.fixture
def three_jobs(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    world = deployed.world
    # Job 1: walk/a, walk/b, walk/c (its task fails), park/a (another dataset, same file name) and a loose
    # image directly under images/ (no dataset).
    a1, b1, c1 = (upload(world, f"images/walk/{n}.jpg", f"{n} v1".encode()) for n in "abc")
    park_a, loose = upload(world, "images/park/a.jpg", b"park a"), upload(world, "images/loose.jpg", b"loose")
    job1 = launch(world, [a1, b1, c1, park_a, loose])
    finish(
        world,
        job1,
        [
            output_line(a1, [(1, 10, 10, 50, 50)], job1),
            output_line(b1, [(1, 20, 20, 60, 60)], job1),
            failed_line(c1, job1),
            output_line(park_a, [(0, 1, 1, 5, 5)], job1),
            output_line(loose, [(0, 2, 2, 5, 5)], job1),
        ],
    )
    # walk/c failed: `relabel` copies it onto itself, a new version for the next job.
    code, out, err = run(deployed, monkeypatch, capsys, "relabel", job1)
    assert code == 0 and "requeued 1 image(s)" in out, err
    c2 = latest(world, "images/walk/c.jpg")
    assert c2.version != c1.version
    # Job 2: walk/a uploaded again (new content), the relabeled walk/c, new walk/d and walk/e (its task
    # fails), and park/b.
    a2 = upload(world, "images/walk/a.jpg", b"a v2")
    d1, e1 = upload(world, "images/walk/d.jpg", b"d v1"), upload(world, "images/walk/e.jpg", b"e v1")
    park_b = upload(world, "images/park/b.jpg", b"park b")
    job2 = launch(world, [a2, c2, d1, e1, park_b])
    finish(
        world,
        job2,
        [
            output_line(a2, [(1, 100, 100, 70, 70)], job2),
            output_line(c2, [(0, 30, 30, 40, 40), (1, 5, 5, 10, 10)], job2),
            output_line(d1, [], job2),
            failed_line(e1, job2),
            output_line(park_b, [(0, 3, 3, 5, 5)], job2),
        ],
    )
    # Job 3: walk/b uploaded again; its job is still in progress.
    b2 = upload(world, "images/walk/b.jpg", b"b v2")
    job3 = launch(world, [b2])
    return {"jobs": (job1, job2, job3), "b1": b1}


def test_a_dataset_export_takes_each_images_newest_labels_across_jobs(
    deployed: Deployed,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    three_jobs: dict[str, Any],
) -> None:
    job1, job2, job3 = three_jobs["jobs"]
    code, out, err = run(
        deployed, monkeypatch, capsys, "export", "--dataset", "walk", "--format", "coco", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert out.startswith(f"wrote coco of dataset walk to {tmp_path}\n")
    coco = json.loads((tmp_path / "coco.json").read_text())
    # Dog is category 1 and Cat 2 (the stack's label order); the job's class-map said 1 = Dog, 0 = Cat.
    assert boxes_by_image(coco) == {
        ref("walk/a.jpg"): [[100, 100, 70, 70]],  # uploaded again: job 2's labels
        ref("walk/b.jpg"): [[20, 20, 60, 60]],  # newer version still being labeled: job 1's labels
        ref("walk/c.jpg"): [[30, 30, 40, 40], [5, 5, 10, 10]],  # failed in job 1, relabeled in job 2
        ref("walk/d.jpg"): [],  # labeled, no boxes
    }
    # walk/e failed and has no older labels; park/* and images/loose.jpg are not in the dataset.
    assert sorted(image["file_name"] for image in coco["images"]) == sorted(
        image_name(ref(f"walk/{n}.jpg")).file_name for n in "abcd"
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(out.split("\n", 1)[1])
    assert summary["dataset"] == "walk"
    assert summary["images"] == 4 and summary["boxes"] == 4 and summary["imagesWithoutBoxes"] == 1
    assert summary["boxesPerLabel"] == {"Dog": 3, "Cat": 1}
    assert summary["jobs"] == {job1: 1, job2: 3}
    assert summary["imagesPending"] == 2 and summary["imagesPendingWithOlderLabels"] == 1
    assert summary["pendingImages"] == [
        {"sourceRef": ref("walk/b.jpg"), "job": job3, "state": "LABELING", "labelsFrom": job1},
        {"sourceRef": ref("walk/e.jpg"), "job": job2, "state": "NEEDS_RELABEL", "labelsFrom": None},
    ]
    assert summary["pendingImagesNotListed"] == 0
    assert summary["imagesMissingFromResults"] == 0


def test_a_dataset_export_with_images_downloads_the_labeled_versions(
    deployed: Deployed,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    three_jobs: dict[str, Any],
) -> None:
    code, _, err = run(
        deployed,
        monkeypatch,
        capsys,
        *("export", "--dataset", "walk", "--format", "yolo", "--with-images", "--out", str(tmp_path)),
    )
    assert code == 0, err
    pictures = tmp_path / "yolo" / "images"
    # walk/b's labels are those of its first version, so that is the picture, not the newer upload.
    assert (pictures / image_name(ref("walk/b.jpg")).file_name).read_bytes() == b"b v1"
    assert (pictures / image_name(ref("walk/a.jpg")).file_name).read_bytes() == b"a v2"
    assert sorted(p.name for p in pictures.iterdir()) == sorted(
        image_name(ref(f"walk/{n}.jpg")).file_name for n in "abcd"
    )
    assert sorted(p.name for p in (tmp_path / "yolo" / "labels").iterdir()) == sorted(
        f"{image_name(ref(f'walk/{n}.jpg')).id}.txt" for n in "abcd"
    )


def test_dataset_export_arguments(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for argv in (["export", "job-1", "--dataset", "walk"], ["export"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--format", "coco", "--out", str(tmp_path)])
        assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    code, _, err = run(
        deployed, monkeypatch, capsys, "export", "--dataset", "nope", "--format", "coco", "--out", str(tmp_path)
    )
    assert code == 2 and "the ledger holds no image of dataset 'nope'" in err
    code, _, err = run(
        deployed, monkeypatch, capsys, "export", "--dataset", "a/b", "--format", "coco", "--out", str(tmp_path)
    )
    assert code == 2 and "one folder under images/" in err
