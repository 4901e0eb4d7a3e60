"""The subcommands' work, each taking explicit clients so that tests run them against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from tqdm import tqdm

from labeling_cli.review import ReviewItem, local_href, render_gallery
from labeling_cli.stack import CliError, StackInfo
from labeling_pipeline.backends import BackendError, LabelingBackend, PermanentBackendError
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
from labeling_pipeline.exports.output_manifest import LabeledImage, ManifestError, read_output_manifest
from labeling_pipeline.job_results import split_s3_uri
from labeling_pipeline.ledger import Ledger


@contextmanager
def manifest_lines(
    source: str, s3: Any, backend: LabelingBackend | None
) -> Iterator[tuple[Iterator[bytes], int | None]]:
    """Lines of a local output manifest or of a job's, with the byte size for the progress bar."""
    path = Path(source)
    if path.is_file():
        with path.open("rb") as handle:
            yield iter(handle), path.stat().st_size
        return
    if backend is None:
        raise CliError(f"{source} is not a file, and no deployed stack was found to look it up as a job")
    try:
        description = backend.describe_job(source)
    except PermanentBackendError as error:
        raise CliError(f"{source} is neither a local manifest nor a labeling job of this account: {error}") from error
    if not description.output_manifest_uri:
        raise CliError(f"job {source} is {description.status}; it has no output manifest yet")
    bucket, key = split_s3_uri(description.output_manifest_uri)
    response = s3.get_object(Bucket=bucket, Key=key)
    yield response["Body"].iter_lines(keepends=True), int(response.get("ContentLength") or 0) or None


def _fetch_image(s3: Any, source_ref: str, target: Path) -> str | None:
    """Download one image to target; None when it came, else why not (the error code)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    bucket, key = split_s3_uri(source_ref)
    try:
        s3.download_file(bucket, key, str(target))
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code", error))
    return None


def _download_images(s3: Any, source_refs: list[str], folder: Path) -> tuple[int, list[str]]:
    if s3 is None:
        raise CliError("--with-images needs AWS credentials to read the images from S3")
    missing = []
    for source_ref in tqdm(source_refs, unit="img", disable=None):
        problem = _fetch_image(s3, source_ref, folder / image_name(source_ref).file_name)
        if problem is not None:
            missing.append(f"{source_ref}: {problem}")
    return len(source_refs) - len(missing), missing


def _progress(lines: Iterator[bytes], total: int | None) -> Iterator[bytes]:
    with tqdm(total=total, unit="B", unit_scale=True, disable=None) as bar:
        for line in lines:
            bar.update(len(line))
            yield line


def export_command(
    source: str,
    fmt: str,
    out_dir: Path,
    labels: list[str],
    attribute: str | None,
    s3: Any,
    backend: LabelingBackend | None,
    *,
    with_images: bool = False,
) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise CliError(f"--format must be one of {', '.join(FORMATS)}")
    if with_images and fmt not in IMAGE_FOLDERS:
        raise CliError(f"--with-images goes with --format {' or '.join(IMAGE_FOLDERS)} (COCO names the images only)")
    label_space = LabelSpace(labels)
    stats = ExportStats()
    labeled: list[str] = []

    def remember(images: Iterator[LabeledImage]) -> Iterator[LabeledImage]:
        for image in images:
            if not image.failed:
                labeled.append(image.source_ref)
            yield image

    with manifest_lines(source, s3, backend) as (lines, total):
        writers = make_writers([fmt], out_dir, label_space, stats, archive=False, description=source)
        try:
            images = read_output_manifest(_progress(lines, total), attribute, stats.read)
            export(remember(images) if with_images else images, writers, stats, label_space)
        except ManifestError as error:
            raise CliError(f"{source}: {error}") from error
    summary = stats.summary(source)
    if with_images:
        summary["imagesDownloaded"], summary["imagesMissing"] = _download_images(
            s3, labeled, out_dir / fmt / IMAGE_FOLDERS[fmt]
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


def review_command(
    source: str,
    images: str,
    out_dir: Path,
    labels: list[str],
    attribute: str | None,
    s3: Any,
    backend: LabelingBackend | None,
    note: str | None = None,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    label_space = LabelSpace(labels)
    items = []
    with manifest_lines(source, s3, backend) as (lines, total):
        try:
            for image in read_output_manifest(_progress(lines, total), attribute):
                relative = relative_path(image.source_ref)
                if images == "s3":
                    target = out_dir / "images" / relative
                    if not image.failed:
                        # A picture that cannot be fetched shows as "image not found" in the gallery.
                        _fetch_image(s3, image.source_ref, target)
                else:
                    target = Path(images) / relative
                items.append(ReviewItem(image, local_href(target, out_dir)))
        except ManifestError as error:
            raise CliError(f"{source}: {error}") from error
    index = out_dir / "index.html"
    index.write_text(render_gallery(items, label_space, f"Review of {source}", note), encoding="utf-8")
    return index


def status_command(stack: StackInfo, ledger: Ledger, backend: LabelingBackend, sqs: Any, limit: int) -> list[str]:
    lines = [f"{'job':40s} {'state':12s} {'images':>6s} {'labeled':>7s} {'failed':>6s} {'left':>6s}"]
    notes: list[str] = []
    for job in ledger.jobs()[:limit]:
        try:
            described = backend.describe_job(job["name"])
            state, labeled, failed, left = (
                described.status,
                described.labeled,
                described.failed_objects,
                described.unlabeled,
            )
        except BackendError as error:
            # One job the service will not describe (throttled, deleted) does not hide the others.
            state, labeled, failed, left = "unknown", 0, 0, 0
            notes.append(f"{job['name']}: {error}")
        lines.append(
            f"{job['name']:40s} {state:12s} {job.get('image_count', '?'):>6s} {labeled:7d} {failed:6d} {left:6d}"
        )
    waiting = queue_depth(sqs, stack.upload_queue_url)
    dead = queue_depth(sqs, stack.dead_letter_queue_url)
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


def workers_command(cognito: Any, stack: StackInfo, action: str, email: str | None) -> list[str]:
    if not stack.user_pool_id or not stack.worker_group:
        raise CliError(f"stack {stack.project}-workforce was not found: workers live in its user pool")
    pool, group = stack.user_pool_id, stack.worker_group
    if action == "list":
        users: list[str] = []
        request: dict[str, Any] = {"UserPoolId": pool, "GroupName": group}
        while True:
            response = cognito.list_users_in_group(**request)
            for user in response.get("Users", []):
                attributes = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
                users.append(f"{attributes.get('email', user['Username'])}  {user.get('UserStatus', '')}")
            if not response.get("NextToken"):
                return sorted(users)
            request["NextToken"] = response["NextToken"]
    if not email or "@" not in email:
        raise CliError(f"workers {action} needs an email address")
    try:
        if action == "add":
            cognito.admin_create_user(
                UserPoolId=pool,
                Username=email,
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
                DesiredDeliveryMediums=["EMAIL"],
            )
            cognito.admin_add_user_to_group(UserPoolId=pool, Username=email, GroupName=group)
            return [f"invited {email}; Cognito emails a temporary password"]
        cognito.admin_remove_user_from_group(UserPoolId=pool, Username=email, GroupName=group)
        cognito.admin_delete_user(UserPoolId=pool, Username=email)
        return [f"removed {email}"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "UsernameExistsException":
            raise CliError(f"{email} is already a worker") from error
        if code == "UserNotFoundException":
            raise CliError(f"{email} is not a worker") from error
        raise CliError(f"Cognito refused: {error}") from error


def relabel_command(s3: Any, ledger: Ledger, job_name: str) -> list[str]:
    """Copy each image to be relabelled onto itself: a new version, so a new upload event and a new job."""
    waiting = ledger.images_of_job(job_name, status="NEEDS_RELABEL")
    if not waiting:
        if not any(job["name"] == job_name for job in ledger.jobs()):
            raise CliError(f"job {job_name} is not one of this stack's jobs")
        return [f"job {job_name} has no image waiting to be relabelled"]
    requeued = 0
    for image, _fields in tqdm(waiting, unit="img", disable=None):
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
        ledger.set_image_status(image, "RELABEL_REQUESTED")
        requeued += 1
    return [f"requeued {requeued} image(s) of {job_name}; new labeling jobs follow within the batching window"]
