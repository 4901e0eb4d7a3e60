"""What happens when a labeling job ends: export, ledger update, notification (once per job).

Completed: stream the job's results (the backend reads them into the neutral stream), write COCO
(``coco.json``), YOLO (``yolo.tar.gz``) and Pascal VOC (``voc.tar.gz``) plus ``summary.json`` under
``exports/<job>/``, record each image's box count in the ledger, publish the summary. The archives are
streamed tars (nothing kept per file), so memory does not grow with the number of images; the files are
spooled in /tmp and uploaded with S3's managed (multipart) transfer.
Failed or Stopped: mark the job's images ``NEEDS_RELABEL`` and publish the reason.
A lease in the ledger makes a repeated or concurrent event a no-op; a crashed run's lease lapses.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labeling_pipeline.backends import JobDescription, LabelingBackend, ResultsNotFound, StartOutcomeUnknown
from labeling_pipeline.exports.formats import (
    FORMATS,
    CocoWriter,
    ExportStats,
    LabelSpace,
    export,
    export_file_name,
    make_writers,
)
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import LabeledImage
from labeling_pipeline.launcher import job_images
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import (
    EXPORTS_PREFIX,
    FINISHED_LEDGER_STATUSES,
    PREDICTIONS_FILE,
    PRELABEL_REPORT_FILE,
    ImageStatus,
    JobState,
    LedgerJobStatus,
)
from labeling_pipeline.prelabel.proposals import read_proposals
from labeling_pipeline.prelabel.settings import PrelabelSettings

MAX_LISTED_FAILURES = 50
# Beside coco.json when several annotators answered an image: each annotator's own boxes ("annotator" on each
# annotation), for training code that wants them rather than the consolidated ones.
ANNOTATORS_COCO_FILE = "coco.annotators.json"
SNS_MESSAGE_LIMIT = 250_000
# coco.json, yolo.tar.gz, voc.tar.gz and their content types
EXPORT_FILES = {
    export_file_name(fmt, archive=True): "application/json" if fmt == "coco" else "application/gzip" for fmt in FORMATS
}


class JobBusy(RuntimeError):
    """Another invocation holds the job's lease; raising makes Lambda retry the event later."""


class JobAlreadyFinished(RuntimeError):
    """The lease was not taken because the job has been finished meanwhile (by another invocation)."""


@dataclass(frozen=True)
class Outcome:
    job_name: str
    # exported | re-exported | relabel-marked | step-taken | duplicate | not-ours | not-started | not-terminal | failed
    action: str
    summary: dict[str, Any] | None = None
    error: str | None = None  # why a job asked about in a sweep could not be handled this time (action "failed")


def write_exports(
    images: Iterable[LabeledImage],
    out: Path,
    labels: Sequence[str],
    description: str,
    stats: ExportStats,
    exported: Callable[[LabeledImage], None] | None = None,
) -> ExportStats:
    """Every format in one pass over a job's results, into EXPORT_FILES under out (what the Lambda uploads;
    benchmarks/export_throughput.py measures this function). When some image had several annotators, the
    formats hold the consolidated boxes and ANNOTATORS_COCO_FILE every annotator's own (else it is removed)."""
    label_space = LabelSpace(labels)
    writers = make_writers(FORMATS, out, label_space, stats, archive=True, description=description)
    annotators = CocoWriter(out / ANNOTATORS_COCO_FILE, label_space, f"{description}: every annotator's own boxes")
    export(images, writers, stats, label_space, annotator_writers=[annotators], exported=exported)
    if not stats.agreement.consolidated_images:
        (out / ANNOTATORS_COCO_FILE).unlink(missing_ok=True)
    return stats


class JobFinisher:
    def __init__(
        self,
        *,
        s3_client: Any,
        sns_client: Any,
        ledger: Ledger,
        backend: LabelingBackend,
        bucket: str,
        topic_arn: str,
        labels: Sequence[str],
        prelabel: PrelabelSettings | None = None,
        lease_seconds: int = 900,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._s3 = s3_client
        self._sns = sns_client
        self._ledger = ledger
        self._backend = backend
        self._bucket = bucket
        self._topic_arn = topic_arn
        self._labels = list(labels)
        self._prelabel = prelabel
        self._lease_seconds = lease_seconds
        self._clock = clock

    def handle(self, job_name: str, results_changed: bool = False) -> Outcome:
        """Finish the job if it has ended; `results_changed` (an answer was added, changed or removed after
        the end, for a backend whose answers can change) exports an ended job again when its results
        version differs from the one exported."""
        status = self._ledger.job_status(job_name)
        if status is None:
            return Outcome(job_name, "not-ours")
        if status == LedgerJobStatus.STARTING:
            return Outcome(job_name, "not-started")
        if status in FINISHED_LEDGER_STATUSES:
            if not results_changed:
                return Outcome(job_name, "duplicate")
            return self._export_again(job_name)
        # The service, not the event, says whether the job has ended: late or reordered events are harmless.
        description = self._backend.describe_job(job_name)
        try:
            if description.pending_step is not None:
                return self._take_step(description)
            if not description.ended:
                return Outcome(job_name, "not-terminal")
            self._lease(job_name)
        except JobAlreadyFinished:
            return Outcome(job_name, "duplicate")
        return self._finish(description, "exported")

    def _lease(self, job_name: str) -> None:
        if not self._ledger.try_lease_job(job_name, self._clock(), self._lease_seconds):
            if self._ledger.job_status(job_name) in FINISHED_LEDGER_STATUSES:
                raise JobAlreadyFinished(job_name)
            raise JobBusy(f"job {job_name} is being finished by another invocation")

    def _take_step(self, description: JobDescription) -> Outcome:
        """The backend's step before the job can end (Label Studio's review tasks), under the job's lease: one
        invocation at a time, and a crashed one's lease lapses. The backend's step is idempotent."""
        self._lease(description.name)
        try:
            done = self._backend.take_step(description)
        except StartOutcomeUnknown:
            # What the step sent may still land (an import the service is finishing): the lease stays until it
            # lapses, as the launcher's start lease does, so that no attempt lists before it has landed.
            raise
        except BaseException:
            self._ledger.release_lease(description.name)
            raise
        self._ledger.release_lease(description.name)
        return Outcome(description.name, "step-taken", {"step": description.pending_step, "done": done})

    def reconcile(self, since: datetime) -> list[Outcome]:
        """Every job created since `since` that has not ended, asked about once: what a lost job-end signal
        left behind (Label Studio sends each webhook once, with no retry)."""
        return [self._handle_in_sweep(name, False) for name in self._ledger.open_jobs(since)]

    def recheck_recent(self, limit: int) -> list[Outcome]:
        """The `limit` newest jobs, for a signal that some answer changed without saying in which job."""
        return [self._handle_in_sweep(job["name"], True) for job in self._ledger.jobs(limit)]

    def _handle_in_sweep(self, job_name: str, results_changed: bool) -> Outcome:
        """One job of a sweep: a failure (the service down for a moment, a held lease) is that job's outcome,
        so that it does not keep the jobs after it from being asked about; the next sweep asks again."""
        try:
            return self.handle(job_name, results_changed=results_changed)
        except Exception as error:
            return Outcome(job_name, "failed", error=f"{type(error).__name__}: {error}")

    def _export_again(self, job_name: str) -> Outcome:
        description = self._backend.describe_job(job_name)
        version = description.results_version
        if version is None or not description.ended or version == self._ledger.job_results_version(job_name):
            return Outcome(job_name, "duplicate")
        if not self._ledger.try_lease_job_again(job_name, version, self._clock(), self._lease_seconds):
            return Outcome(job_name, "duplicate")
        return self._finish(description, "re-exported")

    def _finish(self, description: JobDescription, exported_action: str) -> Outcome:
        job_name = description.name
        try:
            if description.state == JobState.COMPLETED:
                stats = ExportStats()
                try:
                    images = self._backend.read_results(description, stats.read)
                except ResultsNotFound as error:
                    # A completed job always has results: not yet readable, so Lambda's retry tries again.
                    raise RuntimeError(str(error)) from error
                summary = self._export(description, images, stats)
                action = exported_action
            else:
                summary = self._finish_unfinished(description)
                action = "relabel-marked"
            self._publish(summary)
            self._ledger.mark_job_finished(job_name, description.state.upper(), summary, description.results_version)
        except BaseException:
            self._ledger.release_lease(job_name)
            raise
        return Outcome(job_name, action, summary)

    # --- completed -------------------------------------------------------------------------
    def _export(
        self,
        description: JobDescription,
        images: Iterable[LabeledImage],
        stats: ExportStats,
        unlabeled_reason: str = "missing from the job's results",
    ) -> dict[str, Any]:
        members = self._members(description.name)
        seen: list[tuple[str, int, str | None]] = []
        # What the pre-label report needs of each image: its final boxes and the seconds spent on it.
        answered: dict[str, LabeledImage] = {}

        def record(image: LabeledImage) -> None:
            """Each image as exported: its final boxes (consolidated, or settled by a reviewer)."""
            seen.append((image.source_ref, len(image.boxes), image.failure_reason))
            if self._prelabel is not None and not image.failed:
                answered[image.source_ref] = image._replace(line_number=0)

        prefix = f"{EXPORTS_PREFIX}{description.name}/"
        with tempfile.TemporaryDirectory(prefix="export-") as work:
            out = Path(work)
            write_exports(images, out, self._labels, description.name, stats, exported=record)
            written = dict(EXPORT_FILES)
            if (out / ANNOTATORS_COCO_FILE).exists():
                written[ANNOTATORS_COCO_FILE] = "application/json"
            for name, content_type in written.items():
                self._s3.upload_file(
                    str(out / name), self._bucket, prefix + name, ExtraArgs={"ContentType": content_type}
                )
            prelabel_summary = (
                self._prelabel_report(description.name, members, answered, out / "coco.json", prefix)
                if self._prelabel is not None
                else None
            )
        summary = {"status": description.state.value, **stats.summary(description.name)}
        summary["exports"] = {name: f"s3://{self._bucket}/{prefix}{name}" for name in written}
        if prelabel_summary is not None:
            summary["prelabel"] = prelabel_summary
        now = self._clock().isoformat()

        to_relabel = 0

        def results() -> Iterator[tuple[ImageRef, dict[str, Any]]]:
            nonlocal to_relabel
            labeled = set()
            for source_ref, box_count, failure in seen:
                image = members.get(source_ref)
                if image is None:
                    continue
                labeled.add(source_ref)
                if failure is None:
                    yield image, {"status": ImageStatus.LABELED.value, "box_count": box_count, "finished_at": now}
                else:
                    to_relabel += 1
                    yield (
                        image,
                        {"status": ImageStatus.NEEDS_RELABEL.value, "failure_reason": failure, "finished_at": now},
                    )
            for source_ref, image in members.items():
                if source_ref not in labeled:
                    to_relabel += 1
                    yield (
                        image,
                        {
                            "status": ImageStatus.NEEDS_RELABEL.value,
                            "failure_reason": unlabeled_reason,
                            "finished_at": now,
                        },
                    )

        self._ledger.record_results(description.name, results())
        summary["imagesMissingFromOutput"] = len(set(members) - {ref for ref, _, _ in seen})
        if description.state != JobState.COMPLETED:
            summary["failureReason"] = unlabeled_reason
            summary["imagesToRelabel"] = to_relabel
            summary["relabelCommand"] = f"bbox-labeling relabel {description.name}"
        self._put_json(prefix + "summary.json", summary)
        return summary

    def _prelabel_report(
        self,
        job_name: str,
        members: dict[str, ImageRef],
        answered: dict[str, LabeledImage],
        coco_file: Path,
        prefix: str,
    ) -> dict[str, Any]:
        """prelabel-report.json and the proposals as a COCO results file beside coco.json; returns the report's
        headline for summary.json."""
        # Here, not at the top: the report needs numpy, which only a deployment with labeling.prelabel gives the
        # job-events function (the detector runtime layer).
        from labeling_pipeline.prelabel.report import ImageOutcome, build_report, coco_results

        assert self._prelabel is not None
        model_version = self._prelabel.model_version
        proposals, _unreadable = read_proposals(self._s3, self._bucket, model_version, members.values())
        outcomes = []
        for source_ref, image in sorted(members.items()):
            labeled = answered.get(source_ref)
            proposal = proposals.get(image)
            unseen = labeled is not None and labeled.proposals_shown is False
            if proposal is not None and proposal.boxes and unseen:
                # Written after the job began (a duplicate event's late prediction): nobody saw it. A proposal
                # without a box had nothing to show (Ground Truth puts its image in the plain part).
                del proposals[image]
                proposal = None
            outcomes.append(
                ImageOutcome(
                    image,
                    proposal,
                    None if labeled is None else labeled.boxes,
                    None if labeled is None else labeled.seconds,
                )
            )
        report = build_report(job_name, model_version, self._prelabel.min_score, self._labels, outcomes)
        self._put_json(prefix + PRELABEL_REPORT_FILE, report)
        coco_images = json.loads(coco_file.read_text())["images"]
        image_ids = {entry["source_ref"]: entry["id"] for entry in coco_images}
        by_source = {image.source_ref: proposal for image, proposal in proposals.items()}
        self._put_json(prefix + PREDICTIONS_FILE, coco_results(by_source, image_ids, self._labels))
        return {
            "report": f"s3://{self._bucket}/{prefix}{PRELABEL_REPORT_FILE}",
            "predictions": f"s3://{self._bucket}/{prefix}{PREDICTIONS_FILE}",
            "modelVersion": model_version,
            "boxes": report["boxes"],
            "mAP": report["model"]["mAP"],
            "secondsPerImage": report["secondsPerImage"],
            "advice": report["advice"],
        }

    # --- failed or stopped -----------------------------------------------------------------
    def _finish_unfinished(self, description: JobDescription) -> dict[str, Any]:
        """A stopped (or failed) job may have labeled part of its images before the end: those are exported
        and recorded as for a completed job, and only the rest is marked for relabeling."""
        reason = description.failure_reason or f"job {description.state.lower()}"
        stats = ExportStats()
        try:
            images = self._backend.read_results(description, stats.read)
        except ResultsNotFound:
            # No results written before the end. Only this read falls back: a failure while exporting is
            # retried like any other.
            return self._mark_for_relabel(description)
        return self._export(description, images, stats, unlabeled_reason=reason)

    def _mark_for_relabel(self, description: JobDescription) -> dict[str, Any]:
        members = self._members(description.name)
        reason = description.failure_reason or f"job {description.state.lower()}"
        now = self._clock().isoformat()
        self._ledger.record_results(
            description.name,
            (
                (image, {"status": ImageStatus.NEEDS_RELABEL.value, "failure_reason": reason, "finished_at": now})
                for image in members.values()
            ),
        )
        return {
            "status": description.state.value,
            "job": description.name,
            "failureReason": reason,
            "imagesToRelabel": len(members),
            "labeledBeforeTheEnd": description.labeled,
            "relabelCommand": f"bbox-labeling relabel {description.name}",
        }

    # --- shared ------------------------------------------------------------------------------
    def _members(self, job_name: str) -> dict[str, ImageRef]:
        """The images this job owns (its candidates that the ledger assigned to it), by source-ref."""
        return {image.source_ref: image for image in job_images(self._s3, self._bucket, self._ledger, job_name)}

    def _publish(self, summary: dict[str, Any]) -> None:
        shown = dict(summary)
        failures = shown.get("failedObjects") or []
        if len(failures) > MAX_LISTED_FAILURES:
            shown["failedObjects"] = failures[:MAX_LISTED_FAILURES]
            shown["failedObjectsNotListed"] = len(failures) - MAX_LISTED_FAILURES
        message = json.dumps(shown, indent=1, ensure_ascii=False)[:SNS_MESSAGE_LIMIT]
        subject = f"Labeling job {summary.get('job')} {summary['status'].lower()}"[:100]
        self._sns.publish(TopicArn=self._topic_arn, Subject=subject, Message=message)

    def _put_json(self, key: str, value: Any) -> None:
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=json.dumps(value, indent=1, ensure_ascii=False).encode(),
            ContentType="application/json",
        )
