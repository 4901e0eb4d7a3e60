"""`bbox-labeling report JOB`: how a job's labels came about, as a person reads it: the pre-label report (did the
detector's proposals help), with several annotators an image their agreement and the consolidation, and with
Label Studio's review step what the reviewers changed."""

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


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    found: dict[str, Any] = json.loads(body)
    return found


def read_report(s3: Any, bucket: str, job: str) -> dict[str, Any] | None:
    """The job's pre-label report, None when it has none (not ended, or no labeling.prelabel)."""
    return _read_json(s3, bucket, f"{EXPORTS_PREFIX}{job}/{REPORT_FILE}")


def render_consolidation(consolidation: dict[str, Any]) -> list[str]:
    agreement = consolidation["agreement"]
    lines = [
        f"several annotators: {consolidation['consolidatedImages']} image(s) consolidated, "
        f"{consolidation['boxesDrawn']} boxes drawn, {consolidation['boxesKept']} kept, "
        f"{consolidation['clustersDropped']} drawn by too few to keep",
        f"agreement (mean pairwise F1 at IoU 0.5, with the label): mean {_number(agreement['mean'])}, median "
        f"{_number(agreement['median'])}; {agreement['lowCount']} image(s) below {agreement['lowThreshold']:g}",
    ]
    lines += [f"  low: {entry['image']} {entry['agreement']:g}" for entry in agreement["low"][:10]]
    ties = consolidation["labelTies"]
    if ties["count"]:
        lines.append(f"label ties (the label that sorts first was taken): {ties['count']} image(s)")
    for annotator, score in consolidation["annotators"].items():
        lines.append(
            f"  annotator {annotator}: {score['images']} image(s), drew {score['drawn']}, kept {score['kept']} "
            f"({_share(score['share'])}), relabeled {score['relabeled']}, dropped {score['dropped']}"
        )
    return lines


def render_review(review: dict[str, Any]) -> list[str]:
    boxes = review["boxes"]
    lines = [
        f"review: {review['images']} image(s) reviewed, {review['imagesChanged']} changed; of {boxes['shown']} "
        f"consolidated box(es) shown: accepted {boxes['accepted']}, moved or resized {boxes['moved']}, relabeled "
        f"{boxes['relabeled']}, deleted {boxes['deleted']}; boxes reviewers added: {boxes['added']}",
    ]
    for reviewer, done in review["reviewers"].items():
        mine = done["boxes"]
        lines.append(
            f"  reviewer {reviewer}: {done['images']} image(s); accepted {mine['accepted']}, moved {mine['moved']}, "
            f"relabeled {mine['relabeled']}, deleted {mine['deleted']}, added {mine['added']}"
        )
    lines += [f"  changed: {image}" for image in review["changed"][:10]]
    return lines


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
    summary = _read_json(s3, bucket, f"{EXPORTS_PREFIX}{job}/summary.json") or {}
    consolidation = summary.get("consolidation")
    review = summary.get("review")
    if report is None and consolidation is None and review is None:
        raise CliError(
            f"no report for {job}: the job has not ended yet (no s3://{bucket}/{EXPORTS_PREFIX}{job}/summary.json), "
            "or it ran without labeling.prelabel and with one annotator an image"
        )
    lines: list[str] = []
    if report is not None:
        lines += [*render(report), f"the whole report, image by image: s3://{bucket}/{key}"]
    if consolidation is not None:
        lines += render_consolidation(consolidation)
    if review is not None:
        lines += render_review(review)
    return lines
