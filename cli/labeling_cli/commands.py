"""The subcommands' work, each taking explicit clients so that tests run them against moto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from tqdm import tqdm

from labeling_cli.review import ReviewItem, local_href, render_gallery
from labeling_cli.stack import CliError, StackInfo
from labeling_pipeline.backends import (
    BackendError,
    LabelingBackend,
    PermanentBackendError,
    ResultsNotFound,
    WorkerDirectory,
    WorkerError,
)
from labeling_pipeline.backends.registry import parts
from labeling_pipeline.consolidation import consolidate_image
from labeling_pipeline.exports.dataset import MAX_LISTED_PENDING, Selection, Version, plan_dataset
from labeling_pipeline.exports.formats import (
    FORMATS,
    IMAGE_FOLDERS,
    ExportStats,
    LabelSpace,
    export,
    image_name,
    make_writers,
    relative_path,
)
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.labels import Box, LabeledImage, ReadStats, ResultsError
from labeling_pipeline.launcher import candidates_key, job_images
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import ImageStatus
from labeling_pipeline.settings import DEFAULT_BACKEND, PipelineSettings


@dataclass(frozen=True)
class ResultsSource:
    """Where export and review read labeled images from: a local results file, or a job of the deployment."""

    name: str  # the file's path or the job's name, as the user gave it
    backend: LabelingBackend | None  # None: no deployment was found
    settings: PipelineSettings | None
    attribute: str | None = None  # the CLI's --attribute, for a results format that has several

    @property
    def backend_name(self) -> str:
        return self.settings.backend if self.settings is not None else DEFAULT_BACKEND


@contextmanager
def labeled_images(source: ResultsSource, stats: ReadStats) -> Iterator[Iterator[LabeledImage]]:
    """The neutral stream of a local results file or of a job's results, with a progress bar."""
    path = Path(source.name)
    if path.is_file():
        reader = parts(source.backend_name).read_results_file
        with path.open("rb") as handle, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, disable=None) as bar:

            def lines() -> Iterator[bytes]:
                for line in handle:
                    bar.update(len(line))
                    yield line

            yield reader(lines(), source.settings, source.attribute, stats)
        return
    if source.backend is None:
        raise CliError(f"{source.name} is not a file, and no deployed stack was found to look it up as a job")
    try:
        description = source.backend.describe_job(source.name)
    except PermanentBackendError as error:
        raise CliError(
            f"{source.name} is neither a local results file nor a job of this deployment: {error}"
        ) from error
    try:
        images = source.backend.read_results(description, stats)
    except ResultsNotFound as error:
        raise CliError(f"job {source.name} is {description.backend_status}; it has no results yet") from error
    with tqdm(total=description.labeled + description.failed_objects or None, unit="img", disable=None) as bar:

        def counted() -> Iterator[LabeledImage]:
            for image in images:
                bar.update(1)
                yield image

        yield counted()


def _fetch_image(s3: Any, source_ref: str, target: Path, version: str | None = None) -> str | None:
    """Download one image (the current object, or the given version) to target; None when it came, else why
    not (the error code)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = split_s3_uri(source_ref)
    # The ledger names an unversioned object's version by its ETag ("etag-..."), which S3 cannot look up.
    extra = {"VersionId": version} if version and not version.startswith("etag-") else None
    try:
        s3.download_file(bucket, key, str(target), ExtraArgs=extra)
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code", error))
    return None


def _download_images(
    s3: Any, source_refs: list[str], folder: Path, versions: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    if s3 is None:
        raise CliError("--with-images needs AWS credentials to read the images from S3")
    missing = []
    for source_ref in tqdm(source_refs, unit="img", disable=None):
        version = versions.get(source_ref) if versions else None
        problem = _fetch_image(s3, source_ref, folder / image_name(source_ref).file_name, version)
        if problem is not None:
            missing.append(f"{source_ref}: {problem}")
    return len(source_refs) - len(missing), missing


def _check_format(fmt: str, with_images: bool) -> None:
    if fmt not in FORMATS:
        raise CliError(f"--format must be one of {', '.join(FORMATS)}")
    if with_images and fmt not in IMAGE_FOLDERS:
        raise CliError(f"--with-images goes with --format {' or '.join(IMAGE_FOLDERS)} (COCO names the images only)")


def _write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def export_command(
    source: ResultsSource,
    fmt: str,
    out_dir: Path,
    labels: list[str],
    s3: Any,
    *,
    with_images: bool = False,
) -> dict[str, Any]:
    _check_format(fmt, with_images)
    label_space = LabelSpace(labels)
    stats = ExportStats()
    labeled: list[str] = []

    def remember(images: Iterator[LabeledImage]) -> Iterator[LabeledImage]:
        for image in images:
            if not image.failed:
                labeled.append(image.source_ref)
            yield image

    with labeled_images(source, stats.read) as images:
        writers = make_writers([fmt], out_dir, label_space, stats, archive=False, description=source.name)
        try:
            export(remember(images) if with_images else images, writers, stats, label_space)
        except ResultsError as error:
            raise CliError(f"{source.name}: {error}") from error
    summary = stats.summary(source.name)
    if with_images:
        summary["imagesDownloaded"], summary["imagesMissing"] = _download_images(
            s3, labeled, out_dir / fmt / IMAGE_FOLDERS[fmt]
        )
    _write_summary(out_dir, summary)
    return summary


def job_label_reader(backend: LabelingBackend) -> Callable[[str], Iterator[LabeledImage]]:
    """What a dataset export reads a job's labels with: the job's results in the neutral stream, as the
    deployment's backend reads them (the one call that knows the backend)."""

    def read(job_name: str) -> Iterator[LabeledImage]:
        try:
            yield from backend.read_results(backend.describe_job(job_name), ReadStats())
        except (BackendError, ResultsNotFound, ResultsError) as error:
            raise CliError(f"cannot read the results of job {job_name}: {error}") from error

    return read


def dataset_export_command(
    dataset: str,
    fmt: str,
    out_dir: Path,
    labels: list[str],
    ledger: Ledger,
    read_job: Callable[[str], Iterable[LabeledImage]],
    s3: Any,
    *,
    with_images: bool = False,
) -> dict[str, Any]:
    """Every image of images/<dataset>/, across all jobs, with the labels of its newest labeled version
    (labeling_pipeline/exports/dataset.py), in the same flat layout as a job's export."""
    _check_format(fmt, with_images)
    if not dataset or "/" in dataset:
        raise CliError(f"--dataset takes the name of one folder under images/, not {dataset!r}")
    plan = plan_dataset(
        Version(image, fields["job_name"], fields.get("status"), fields.get("claimed_at", ""))
        for image, fields in ledger.images_of_dataset(dataset)
    )
    if not plan.chosen and not plan.pending:
        raise CliError(
            f"the ledger holds no image of dataset {dataset!r} (keys images/{dataset}/...); names are "
            "case-sensitive, and images directly under images/ belong to no dataset (a deployment upgraded from "
            "before the ledger's index finds its older images once `bbox-labeling ledger upgrade` has run)"
        )
    label_space = LabelSpace(labels)
    stats = ExportStats()
    selection = Selection(plan.chosen)
    writers = make_writers([fmt], out_dir, label_space, stats, archive=False, description=f"dataset {dataset}")
    exported: list[str] = []

    def counted(images: Iterator[LabeledImage]) -> Iterator[LabeledImage]:
        for image in images:
            exported.append(image.source_ref)
            yield image

    export(counted(selection.images(read_job)), writers, stats, label_space)
    stats.read.images = len(exported)
    summary: dict[str, Any] = {"dataset": dataset, **stats.summary()}
    for key in (
        "job",
        "imagesLabeled",
        "failedObjects",
        "boxesClipped",
        "emptyBoxesDropped",
        "rotatedBoxesStraightened",
    ):
        # Every exported image is labeled; failed objects are pending below; clipping is counted per job.
        summary.pop(key)
    summary["jobs"] = selection.taken
    summary.update(plan.pending_summary())
    # Chosen from the ledger as labeled, yet not labeled in their job's results (the two disagree).
    summary["imagesMissingFromResults"] = len(selection.missing)
    summary["missingFromResults"] = selection.missing[:MAX_LISTED_PENDING]
    if with_images:
        versions = {ref: choice.version for ref, choice in plan.chosen.items()}
        summary["imagesDownloaded"], summary["imagesMissing"] = _download_images(
            s3, exported, out_dir / fmt / IMAGE_FOLDERS[fmt], versions
        )
    _write_summary(out_dir, summary)
    return summary


def review_command(
    source: ResultsSource,
    images: str,
    out_dir: Path,
    labels: list[str],
    s3: Any,
    note: str | None = None,
    proposals: Mapping[str, tuple[Box, ...]] | None = None,
) -> Path:
    """`proposals`: a detector's proposals by source ref (the job's pre-label report), drawn beside the boxes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    label_space = LabelSpace(labels)
    items = []
    with labeled_images(source, ReadStats()) as stream:
        try:
            for image in stream:
                relative = relative_path(image.source_ref)
                if images == "s3":
                    target = out_dir / "images" / relative
                    if not image.failed:
                        # A picture that cannot be fetched shows as "image not found" in the gallery.
                        _fetch_image(s3, image.source_ref, target)
                else:
                    target = Path(images) / relative
                shown = None if proposals is None else proposals.get(image.source_ref)
                agreement = None
                if not image.failed and len(image.annotators) > 1:
                    # The boxes as the exports hold them, and how far apart the answers were.
                    image, consolidated = consolidate_image(image, image.annotators)
                    agreement = consolidated.agreement
                items.append(ReviewItem(image, local_href(target, out_dir), shown, agreement))
        except ResultsError as error:
            raise CliError(f"{source.name}: {error}") from error
    index = out_dir / "index.html"
    index.write_text(render_gallery(items, label_space, f"Review of {source.name}", note), encoding="utf-8")
    return index


def status_command(stack: StackInfo, ledger: Ledger, backend: LabelingBackend, sqs: Any, limit: int) -> list[str]:
    # annotated: labeled by the service; skipped: failed, or skipped by every annotator (relabeled later)
    lines = [f"{'job':40s} {'state':12s} {'images':>6s} {'annotated':>9s} {'skipped':>7s} {'left':>6s}"]
    notes: list[str] = []
    steps: list[str] = []
    for job in ledger.jobs(limit):  # one Query of the index's jobs group, newest first
        try:
            described = backend.describe_job(job["name"])
            state, labeled, failed, left = (
                described.backend_status,
                described.labeled,
                described.failed_objects,
                described.unlabeled,
            )
            if described.step_progress:
                # Label Studio's review step: the labeling is done, the reviewers' part is what is left.
                steps.append(f"{job['name']}: {described.step_progress}")
        except BackendError as error:
            # One job the service will not describe (throttled, deleted) does not hide the others.
            state, labeled, failed, left = "unknown", 0, 0, 0
            notes.append(f"{job['name']}: {error}")
        lines.append(
            f"{job['name']:40s} {state:12s} {job.get('image_count', '?'):>6s} {labeled:9d} {failed:7d} {left:6d}"
        )
    waiting = queue_depth(sqs, stack.upload_queue_url)
    dead = queue_depth(sqs, stack.dead_letter_queue_url)
    lines += [f"in review: {step}" for step in steps]
    lines += [f"could not describe {note}" for note in notes]
    lines.append(f"uploads waiting in the queue: {waiting}")
    lines.append(f"messages in the dead-letter queue: {dead}" + ("  <- needs attention" if dead else ""))
    return lines


def queue_depth(sqs: Any, url: str) -> int:
    """Messages in the queue, visible or being handled."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def workers_command(directory: WorkerDirectory, action: str, email: str | None, *, reviewer: bool = False) -> list[str]:
    """reviewer: `add --reviewer` adds a reviewer (or makes an existing worker one); `remove --reviewer` takes the
    reviewer role away and keeps the worker."""
    if reviewer and action not in ("add", "remove"):
        raise CliError(f"--reviewer goes with workers add or workers remove, not workers {action}")
    if action == "list":
        return directory.list()
    if not email or "@" not in email:
        raise CliError(f"workers {action} needs an email address")
    try:
        if action == "add":
            return [directory.add(email, reviewer=reviewer)]
        if action == "remove":
            return [directory.remove(email, reviewer=reviewer)]
        if action == "reset":
            return [directory.reset(email)]
    except WorkerError as error:
        raise CliError(str(error)) from error
    raise CliError(f"unknown workers action {action!r}")


def relabel_command(s3: Any, ledger: Ledger, bucket: str, job_name: str) -> list[str]:
    """Copy each image to be relabelled onto itself: a new version, so a new upload event and a new job.

    The job's images are its candidate list (`jobs/<job>/candidates.json`) read against the ledger by key
    (`job_images`, as the job end finds them): consistent, so an image that a relabel a moment ago already
    requeued reads RELABEL_REQUESTED and a second run never copies an image twice; one GetObject and one
    BatchGetItem per 100 of the job's images, however large the ledger."""
    try:
        images = job_images(s3, bucket, ledger, job_name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchKey":
            raise
        raise CliError(
            f"job {job_name} is not one of this stack's jobs (s3://{bucket}/{candidates_key(job_name)} does not exist)"
        ) from error
    waiting = [image for image, status in images.items() if status == ImageStatus.NEEDS_RELABEL.value]
    if not waiting:
        return [f"job {job_name} has no image waiting to be relabelled"]
    requeued = 0
    for image in tqdm(waiting, unit="img", disable=None):
        source: dict[str, str] = {"Bucket": image.bucket, "Key": image.key}
        if not image.version.startswith("etag-"):
            source["VersionId"] = image.version
        s3.copy_object(
            Bucket=image.bucket,
            Key=image.key,
            CopySource=source,
            MetadataDirective="REPLACE",
            Metadata={"relabel-of": job_name},
        )
        ledger.set_image_status(image, ImageStatus.RELABEL_REQUESTED.value)
        requeued += 1
    return [f"requeued {requeued} image(s) of {job_name}; new labeling jobs follow within the batching window"]


def ledger_upgrade_command(ledger: Ledger) -> list[str]:
    """`bbox-labeling ledger upgrade`: give the items written before the ledger's index their index group, so
    that `status` lists older jobs and `export --dataset` finds older images (Ledger.upgrade_items). Run
    once after the deploy that added the index; a second run finds nothing to do. The one command that
    scans the table: it reads every item once."""
    with tqdm(unit="item", desc="ledger items examined", disable=None) as bar:
        report = ledger.upgrade_items(bar.update)
    lines = [
        f"updated {report.updated} ledger item(s) written before the index: older jobs now show in `status`, "
        "older images in `export --dataset`",
        f"examined {report.examined} item(s); {report.in_no_group} need no group (images directly under images/)",
    ]
    if report.already_grouped:
        lines.append(f"{report.already_grouped} item(s) got their group meanwhile from the pipeline or another run")
    return lines
