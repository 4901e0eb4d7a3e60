"""`gt-labeling report JOB`: the pre-label report of a job, as a person reads it."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from labeling_cli.stack import CliError
from labeling_pipeline.labels import Box
from labeling_pipeline.names import EXPORTS_PREFIX
from labeling_pipeline.names import PRELABEL_REPORT_FILE as REPORT_FILE


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def render(report: dict[str, Any]) -> list[str]:
    images, boxes, shares = report["images"], report["boxes"], report["shares"]
    model, seconds, kept = report["model"], report["secondsPerImage"], report["keptIou"]
    return [
        f"job {report['job']}, model {report['modelVersion']}",
        f"images: {images['images']} ({images['proposed']} with proposals, {images['heldOut']} held out, "
        f"{images['withoutProposals']} without (the detector failed on them), {images['unanswered']} unanswered)",
        f"proposals: {boxes['proposed']}: accepted {boxes['accepted']} ({_share(shares['accepted'])}), moved or "
        f"resized {boxes['moved']} ({_share(shares['moved'])}), relabeled {boxes['relabeled']} "
        f"({_share(shares['relabeled'])}), deleted {boxes['deleted']} ({_share(shares['deleted'])}); "
        f"boxes people added: {boxes['added']}",
        f"IoU of kept proposals with the final box: mean {_number(kept['mean'])}, median {_number(kept['median'])}",
        f"model against the final boxes: precision {_number(model['precision'])}, recall {_number(model['recall'])} "
        f"(at minScore {model['minScore']:g}), mAP {_number(model['mAP'])}, mAP50 {_number(model['mAP50'])}",
        f"seconds an image: {_number(seconds['withProposals'], ' s')} with proposals ({seconds['timedWith']} timed), "
        f"{_number(seconds['withoutProposals'], ' s')} without ({seconds['timedWithout']} timed)",
        *report["advice"],
    ]


def read_report(s3: Any, bucket: str, job: str) -> dict[str, Any] | None:
    """The job's pre-label report, None when it has none (not ended, or no labeling.prelabel)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{EXPORTS_PREFIX}{job}/{REPORT_FILE}")["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    report: dict[str, Any] = json.loads(body)
    return report


def proposals_by_image(report: dict[str, Any]) -> dict[str, tuple[Box, ...]]:
    """Each proposed image's proposals (source ref -> boxes), for the review gallery."""
    return {
        entry["image"]: tuple(
            Box(box["label"], float(left), float(top), float(width), float(height), box.get("score"))
            for box in entry["proposals"]
            for left, top, width, height in [box["bbox"]]
        )
        for entry in report["perImage"]
        if entry.get("proposals") is not None
    }


def report_command(s3: Any, bucket: str, job: str) -> list[str]:
    key = f"{EXPORTS_PREFIX}{job}/{REPORT_FILE}"
    report = read_report(s3, bucket, job)
    if report is None:
        raise CliError(
            f"no pre-label report for {job} (s3://{bucket}/{key}): the job has not ended yet, or it ran "
            "without labeling.prelabel"
        )
    return [*render(report), f"the whole report, image by image: s3://{bucket}/{key}"]
