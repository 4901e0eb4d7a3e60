"""The bbox-labeling CLI end to end against moto and the Ground Truth fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labeling_cli import main as cli
from labeling_pipeline.exports.formats import image_name
from labeling_pipeline.images import ImageRef
from tests.cli.conftest import Deployed
from tests.lambda_code.test_job_events import output_line
from tests.support import BUCKET


def run(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "_session", lambda args: deployed.session)
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def launched_job(deployed: Deployed, count: int = 3) -> tuple[str, list[ImageRef]]:
    world = deployed.world
    images = []
    for index in range(count):
        version = world.upload(f"images/cli/{index}.jpg")["VersionId"]
        images.append(ImageRef(BUCKET, f"images/cli/{index}.jpg", version))
    [name] = {outcome.job_name for outcome in world.launcher().launch(images).values()}
    assert name is not None
    return name, images


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("upload", "status", "export", "review", "workers", "relabel", "ledger", "report"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: bbox-labeling " + command in capsys.readouterr().out


def test_upload_sends_images_and_reports_skips(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "B.PNG", "sub/c d.jpeg"):
        (tmp_path / name).write_bytes(b"\xff\xd8 image")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    code, out, _ = run(deployed, monkeypatch, capsys, "upload", str(tmp_path), "--dataset", "walk-1")
    assert code == 0
    keys = sorted(o["Key"] for o in deployed.world.s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["images/walk-1/B.PNG", "images/walk-1/a.jpg", "images/walk-1/sub/c d.jpeg"]
    assert "uploaded 3 image(s)" in out
    assert "skipped 2 file(s): 1 EmptyObject, 1 NotAnImage" in out


def test_upload_rejects_a_bad_dataset_name(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(deployed, monkeypatch, capsys, "upload", str(tmp_path), "--dataset", "../up")
    assert code == 2 and "dataset name '../up'" in err


def test_status_shows_jobs_counters_and_queues(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name, _ = launched_job(deployed)
    deployed.world.sqs.send_message(QueueUrl=deployed.dlq_url, MessageBody="{}")
    code, out, _ = run(deployed, monkeypatch, capsys, "status")
    assert code == 0
    [row] = [line for line in out.splitlines() if line.startswith(name)]
    assert row.split() == [name, "InProgress", "3", "0", "0", "3"]
    assert "uploads waiting in the queue: 0" in out
    assert "messages in the dead-letter queue: 1  <- needs attention" in out


def test_export_a_completed_job_from_s3(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name, images = launched_job(deployed)
    deployed.world.ground_truth.finish(
        name, "Completed", [output_line(image, [(1, 40, 30, 100, 60)], name) for image in images]
    )
    code, out, _ = run(deployed, monkeypatch, capsys, "export", name, "--format", "voc", "--out", str(tmp_path))
    assert code == 0, out
    # Flat, one file per image, named by its id ("cli__0-<hash>" for images/cli/0.jpg).
    assert sorted(p.name for p in (tmp_path / "voc/Annotations").iterdir()) == sorted(
        f"{image_name(image.source_ref).id}.xml" for image in images
    )
    assert all(p.name.startswith("cli__") for p in (tmp_path / "voc/Annotations").iterdir())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["boxesPerLabel"] == {"Dog": 3}


def test_export_errors_are_clear(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        deployed, monkeypatch, capsys, "export", "no-such-job", "--format", "coco", "--out", str(tmp_path)
    )
    assert code == 2 and "neither a local results file nor a job of this deployment" in err
    name, _ = launched_job(deployed)
    code, _, err = run(deployed, monkeypatch, capsys, "export", name, "--format", "coco", "--out", str(tmp_path))
    assert code == 2 and "is InProgress; it has no results yet" in err
    broken = tmp_path / "broken.manifest"
    broken.write_text('{"source-ref": "s3://b/images/a.jpg"}\n')
    code, _, err = run(deployed, monkeypatch, capsys, "export", str(broken), "--format", "coco", "--out", str(tmp_path))
    assert code == 2 and "line 1: no bounding-box label attribute" in err


def test_workers_add_list_remove(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(deployed, monkeypatch, capsys, "workers", "add", "ana@example.com")[0] == 0
    code, _, err = run(deployed, monkeypatch, capsys, "workers", "add", "ana@example.com")
    assert code == 2 and "already a worker" in err
    code, out, _ = run(deployed, monkeypatch, capsys, "workers", "list")
    assert out.split()[0] == "ana@example.com"
    assert run(deployed, monkeypatch, capsys, "workers", "remove", "ana@example.com")[0] == 0
    assert run(deployed, monkeypatch, capsys, "workers", "list")[1] == ""
    code, _, err = run(deployed, monkeypatch, capsys, "workers", "remove", "bo@example.com")
    assert code == 2 and "not a worker" in err
    # Reviewers are a Label Studio feature: Ground Truth says so and makes no account.
    for argv in (("add", "--reviewer", "cy@example.com"), ("add", "cy@example.com", "--reviewer")):
        code, _, err = run(deployed, monkeypatch, capsys, "workers", *argv)
        assert code == 2 and "reviewers (--reviewer) are a Label Studio feature" in err, argv
    assert run(deployed, monkeypatch, capsys, "workers", "list")[1] == ""
    code, _, err = run(deployed, monkeypatch, capsys, "workers", "add", "cy@x.example", "--reviewer", "dy@x.example")
    assert code == 2 and "one email address" in err
    code, _, err = run(deployed, monkeypatch, capsys, "workers", "list", "--reviewer")
    assert code == 2 and "--reviewer goes with workers add or workers remove" in err


def test_relabel_requeues_the_failed_jobs_images(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = deployed.world
    name, images = launched_job(deployed)
    world.ledger.record_results(
        name, [(image, {"status": "NEEDS_RELABEL", "failure_reason": "Stopped"}) for image in images]
    )
    code, out, _ = run(deployed, monkeypatch, capsys, "relabel", name)
    assert code == 0 and "requeued 3 image(s)" in out
    for image in images:
        versions = world.s3.list_object_versions(Bucket=BUCKET, Prefix=image.key)["Versions"]
        assert len(versions) == 2  # a new version: a new upload event, a new job
        latest = next(v for v in versions if v["IsLatest"])
        head = world.s3.head_object(Bucket=BUCKET, Key=image.key, VersionId=latest["VersionId"])
        assert head["Metadata"] == {"relabel-of": name}
    code, out, _ = run(deployed, monkeypatch, capsys, "relabel", name)
    assert "no image waiting to be relabelled" in out  # not twice
    code, _, err = run(deployed, monkeypatch, capsys, "relabel", "bbox-20990101-000000000000")
    assert code == 2 and "not one of this stack's jobs" in err


def test_missing_stack_is_a_clear_error(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(deployed, monkeypatch, capsys, "--project", "other", "status")
    assert code == 2 and "Stack other-pipeline was not found" in err


def test_local_manifest_export_needs_no_deployment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fixture = Path(__file__).parents[1] / "lambda_code/fixtures/output.manifest"
    monkeypatch.setattr(cli, "_session", lambda args: _NoAws())
    code = cli.main(["export", str(fixture), "--format", "coco", "--out", str(tmp_path), "--labels", '["Dog","Cat"]'])
    assert code == 0
    assert json.loads((tmp_path / "coco.json").read_text())["categories"][0]["name"] == "Dog"


class _NoAws:
    region_name = None

    def get_credentials(self) -> Any:
        return None

    def client(self, service: str, **kwargs: Any) -> Any:
        raise AssertionError(f"no AWS call expected, got {service}")


def test_missing_region_and_credentials_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_session", lambda args: _NoAws())
    assert cli.main(["status"]) == 2
    assert "No AWS region set" in capsys.readouterr().err
    no_credentials = _NoAws()
    no_credentials.region_name = "us-east-1"  # type: ignore[assignment]
    monkeypatch.setattr(cli, "_session", lambda args: no_credentials)
    assert cli.main(["relabel", "some-job"]) == 2
    assert "No AWS credentials found" in capsys.readouterr().err


def test_status_survives_a_job_the_service_will_not_describe(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name, _ = launched_job(deployed)
    deployed.world.ground_truth.fault = lambda operation, _request: (
        "ThrottlingException" if operation == "DescribeLabelingJob" else None
    )
    code, out, _ = run(deployed, monkeypatch, capsys, "status")
    assert code == 0
    [row] = [line for line in out.splitlines() if line.startswith(name)]
    assert row.split()[:3] == [name, "unknown", "3"]
    assert f"could not describe {name}: " in out and "ThrottlingException" in out


def test_an_aws_refusal_is_one_clear_line(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.world.dynamodb.delete_table(TableName=deployed.world.ledger._table)
    code, out, err = run(deployed, monkeypatch, capsys, "status")
    assert code == 2 and out == ""
    assert err.startswith("bbox-labeling: AWS refused Query: ResourceNotFoundException: ")
    assert "Traceback" not in err


def test_review_a_job_with_images_from_s3(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name, images = launched_job(deployed, count=2)
    deployed.world.ground_truth.finish(
        name, "Completed", [output_line(image, [(0, 4, 3, 10, 6)], name) for image in images]
    )
    code, out, err = run(deployed, monkeypatch, capsys, "review", name, "--images", "s3", "--out", str(tmp_path))
    assert code == 0, err
    assert out.strip() == f"open {tmp_path / 'index.html'}"
    page = (tmp_path / "index.html").read_text()
    for image in images:
        # the image itself came down from the bucket, and the page shows it with its box and label
        assert (tmp_path / "images" / image.key.removeprefix("images/")).read_bytes() == deployed.world.s3.get_object(
            Bucket=BUCKET, Key=image.key
        )["Body"].read()
    # class 0 is "Cat" in this job's class-map (the legend lists Dog and Cat once each)
    assert page.count("<svg") == 2 and page.count(">Cat</text>") == 2 and ">Dog</text>" not in page


def test_yolo_export_with_images_is_a_dataset_ready_to_train(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import yaml

    name, images = launched_job(deployed, count=2)
    deployed.world.ground_truth.finish(
        name, "Completed", [output_line(image, [(1, 40, 30, 100, 60)], name) for image in images]
    )
    code, out, err = run(
        deployed, monkeypatch, capsys, "export", name, "--format", "yolo", "--with-images", "--out", str(tmp_path)
    )
    assert code == 0, err
    summary = json.loads(out.split("\n", 1)[1])
    assert summary["imagesDownloaded"] == 2 and summary["imagesMissing"] == []
    data = yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())
    # No path: line: the root is data.yaml's folder (as Ultralytics takes it).
    assert "path" not in data
    root = tmp_path / "yolo"
    listed = [root / entry.removeprefix("./") for entry in (root / data["train"]).read_text().split()]
    listed += [root / entry.removeprefix("./") for entry in (root / "val.txt").read_text().split()]
    # Ultralytics finds each image's labels by swapping /images/ for /labels/ and the suffix for .txt.
    for image in images:
        picture = root / "images" / image_name(image.source_ref).file_name
        assert picture in listed
        assert picture.read_bytes() == deployed.world.s3.get_object(Bucket=BUCKET, Key=image.key)["Body"].read()
        labels = Path(str(picture).replace("/images/", "/labels/")).with_suffix(".txt")
        # the job's class-map says class_id 1 is "Dog"; the export uses the stack's order, where Dog is 0
        assert labels.read_text().split()[0] == "0"


def test_with_images_needs_a_format_that_has_an_image_folder(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        deployed, monkeypatch, capsys, "export", "x", "--format", "coco", "--with-images", "--out", str(tmp_path)
    )
    assert code == 2 and "--with-images goes with --format yolo or voc" in err


def test_report_shows_whether_the_proposals_helped(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labeling_pipeline.labels import Box
    from labeling_pipeline.prelabel.proposals import Proposal
    from labeling_pipeline.prelabel.report import ImageOutcome, build_report

    image = ImageRef(BUCKET, "images/cli/0.jpg", "v1")
    proposal = Proposal("det-v1", image, 400, 300, (Box("Dog", 10, 10, 50, 50, 0.8), Box("Dog", 200, 10, 50, 50, 0.4)))
    report = build_report(
        "bbox-job", "det-v1", 0.3, ["Dog", "Cat"], [ImageOutcome(image, proposal, (Box("Dog", 10, 10, 50, 50),), 8.0)]
    )
    deployed.world.s3.put_object(
        Bucket=BUCKET, Key="exports/bbox-job/prelabel-report.json", Body=json.dumps(report).encode()
    )
    code, out, _ = run(deployed, monkeypatch, capsys, "report", "bbox-job")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "job bbox-job, model det-v1"
    assert (
        "proposals: 2: accepted 1 (50 %), moved or resized 0 (0 %), relabeled 0 (0 %), deleted 1 (50 %); "
        "boxes people added: 0" in lines
    )
    assert "model against the final boxes: precision 0.5, recall 1 (at minScore 0.3), mAP 1, mAP50 1" in lines
    assert lines[-1] == f"the whole report, image by image: s3://{BUCKET}/exports/bbox-job/prelabel-report.json"

    code, _, err = run(deployed, monkeypatch, capsys, "report", "bbox-other")
    assert code == 2 and "no report for bbox-other" in err and "without labeling.prelabel" in err


def test_report_shows_the_annotators_agreement(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from labeling_pipeline.exports.formats import ExportStats
    from labeling_pipeline.job_results import write_exports
    from labeling_pipeline.labels import Box, LabeledImage

    two = LabeledImage(
        1, "s3://b/images/a.png", 200, 100, 3,
        (Box("Dog", 10, 10, 50, 50, annotator="7"), Box("Cat", 100, 10, 50, 50, annotator="8")),
        annotators=("7", "8"),
    )  # fmt: skip
    summary = write_exports([two], tmp_path, ["Dog", "Cat"], "bbox-pair", ExportStats()).summary("bbox-pair")
    deployed.world.s3.put_object(Bucket=BUCKET, Key="exports/bbox-pair/summary.json", Body=json.dumps(summary).encode())
    code, out, _ = run(deployed, monkeypatch, capsys, "report", "bbox-pair")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "several annotators: 1 image(s) consolidated, 2 boxes drawn, 2 kept, 0 drawn by too few to keep"
    assert "mean 0, median 0; 1 image(s) below 0.5" in lines[1]
    assert "  low: s3://b/images/a.png 0" in lines
    assert "  annotator 7: 1 image(s), drew 1, kept 1 (100 %), relabeled 0, dropped 0" in lines
