"""`make demo` (the default backend): Amazon SageMaker Ground Truth stood in for by the project's fake, behind a
local endpoint, its workers simulated in Ground Truth's output format; the job's state-change event goes on
EventBridge as the service would put it. The steps around it are sandbox.demo_steps'.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from labeling_cli.commands import queue_depth
from labeling_pipeline.backends.ground_truth.job_parts import UNASSISTED_FOLDER, UNASSISTED_PART_TAG, pipeline_job_name
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.names import StackOutput
from sandbox.demo_steps import DATASET, DEMO_CONTEXT, PREFIX, LabelingRun, Prelabel, point_aws_at, run_cli, say
from sandbox.emulator import MotoServer
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import LocalHooks
from sandbox.simulated_workers import SIMULATED_NOTE, adjustment_answers, answer_job, state_change_event


class GroundTruthStandIn:
    """Amazon SageMaker Ground Truth stood in for by the project's fake, its workers simulated."""

    prefix = PREFIX
    note = SIMULATED_NOTE
    results_heading = "every box below is simulated"
    stopped = "Emulator stopped"
    interrupted = "the emulator is stopped"
    context = DEMO_CONTEXT

    def __init__(self, region: str, refuses: bool = False, prelabel: Prelabel | None = None) -> None:
        self.region = region
        self.refuses = refuses
        self.prelabel = prelabel
        if prelabel is not None:
            self.prefix = prelabel.line_prefix(PREFIX)
        self.fake: FakeGroundTruth  # made by start(): it loads botocore's session, after isolate_from_aws
        self.summary: dict[str, Any] = {"refusals": []}

    def introduce(self) -> None:
        say("No AWS account is used: AWS is emulated on this machine (moto), and Amazon SageMaker Ground Truth")
        say("is stood in for by the project's fake. " + SIMULATED_NOTE[0].upper() + SIMULATED_NOTE[1:] + ".")

    def start(self, services: contextlib.ExitStack, emulator: MotoServer) -> Any:
        self.fake = FakeGroundTruth(region=self.region, refuse_account=self.refuses)
        ground_truth = services.enter_context(GroundTruthEndpoint(self.fake))
        point_aws_at(emulator.url, ground_truth.url)
        session = boto3.Session()
        self.fake.s3_client = session.client("s3")
        say(f"   Ground Truth fake on {ground_truth.url} (validates requests against botocore's SageMaker model)")
        return session

    def hooks(self, runtime: LocalLambda) -> LocalHooks:
        return LocalHooks()

    def before_upload(self, run: LabelingRun) -> None:
        pass

    def all_handled(self, run: LabelingRun, expected_keys: list[str]) -> bool:
        if self.fake.refuse_account:
            # Each upload is its own notification; a refusal sends each to the dead-letter queue.
            dead_letters = run.pipeline.outputs[StackOutput.DEAD_LETTER_QUEUE_URL]
            return queue_depth(run.sqs, dead_letters) >= len(expected_keys)
        labeled = {split_s3_uri(source_ref)[1] for source_ref in self.fake.input_source_refs()}
        return set(expected_keys) <= labeled

    def label(self, run: LabelingRun, expected_keys: list[str]) -> list[str]:
        if self.refuses:
            self.summary["refusals"] = self._refusal_then_redrive(run, expected_keys)
        jobs = sorted(self.fake.jobs.values(), key=lambda job: job["CreationTime"])
        for job in jobs:
            say(f"   labeling job {job['LabelingJobName']} created: the fake accepted the request as the service would")
            if self._is_adjustment(job):
                images = len(self.fake.read(_manifest_uri(job)).splitlines())
                say(
                    f"     a bounding-box ADJUSTMENT job (PRE-AdjustmentBoundingBox): {images} image(s) with the "
                    f"stand-in detector's boxes under '{self.fake.prior_attributes[job['LabelingJobName'].lower()]}'"
                )
            elif run.prelabel is not None:
                images = len(self.fake.read(_manifest_uri(job)).splitlines())
                say(f"     a plain bounding-box job: {images} image(s) without proposals (held out, or no box)")
        labels = list(run.settings().labels)
        say(f"5/6 Simulated workers label {len(expected_keys)} images ({SIMULATED_NOTE})")
        events = run.session.client("events")
        # Every part ends before any event is sent: the job end reads a job of two parts once both have ended.
        for job in jobs:
            self.fake.finish(job["LabelingJobName"], "Completed", self._answer(job, labels))
        for job in jobs:
            events.put_events(Entries=[state_change_event(job)])
            say(f"   {job['LabelingJobName']}: Completed; state-change event sent to EventBridge")
        delivery = run.pipeline.rule_deliveries[0]
        names = sorted({pipeline_job_name(job["LabelingJobName"]) for job in jobs})
        run.wait_for_exports(names, lambda: run.runtime.poll_rule_delivery(delivery))
        say(f"   EventBridge rule -> job-events Lambda: exports written for {len(names)} job(s)")
        return names

    def _is_adjustment(self, job: dict[str, Any]) -> bool:
        return job["LabelingJobName"].lower() in self.fake.prior_attributes

    def _answer(self, job: dict[str, Any], labels: list[str]) -> list[str]:
        """The job's output lines: an adjustment job's in its own format, with the workers' corrections of the
        proposals; a plain job's as ever."""
        name = job["LabelingJobName"]
        if not self._is_adjustment(job):
            return answer_job(self.fake.read, job, labels, datetime.now(UTC))
        answers, corrections = adjustment_answers(self.fake.read, job, self.fake.prior_attributes[name.lower()], labels)
        for source_ref, correction in corrections.items():
            image = split_s3_uri(source_ref)[1].removeprefix(f"images/{DATASET}/")
            status = "adjusted" if correction.changed else "unadjusted (submitted as shown)"
            say(f"   {name} {image}: {correction.proposals} stand-in proposal(s): {correction.summary()}; {status}")
        return self.fake.adjustment_output(name, answers)

    def _refusal_then_redrive(self, run: LabelingRun, expected_keys: list[str]) -> list[str]:
        """What an account without Ground Truth sees, then the operator's redrive once it has access."""
        dead_letters = run.pipeline.outputs[StackOutput.DEAD_LETTER_QUEUE_URL]
        messages = run.drain(dead_letters)
        reasons = sorted({m["MessageAttributes"]["FailureReason"]["StringValue"] for m in messages})
        say("   Ground Truth refused the job, as it does for accounts that are new since 2026-07-30. The launcher")
        say(f"   sent the {len(messages)} upload messages to the dead-letter queue, nothing lost, with this reason:")
        for reason in reasons:
            say(f"     {reason}")
        for line in run_cli(["status"]):
            say("   " + line)
        # The operator's step is `aws sqs start-message-move-task`; moto lacks it, so the demo moves the
        # messages itself, unchanged.
        self.fake.refuse_account = False
        for message in messages:
            run.sqs.send_message(
                QueueUrl=run.pipeline.outputs[StackOutput.UPLOAD_QUEUE_URL], MessageBody=message["Body"]
            )
            run.sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
        say("   Now the account has Ground Truth: the messages go back to the upload queue (the redrive an operator")
        say("   starts with `aws sqs start-message-move-task`), and the launcher runs again.")
        run.launch(expected_keys)
        return reasons

    def job_files(self, run: LabelingRun, name: str, job_dir: Path) -> tuple[list[str], dict[str, Any]]:
        """The job's files; a job in two parts (an adjustment job and the plain one beside it) has the plain part's
        under unassisted/, as the pipeline writes its task inputs."""
        job = self.fake.jobs[name.lower()]
        tags = {tag["Key"]: tag["Value"] for tag in job.get("Tags", [])}
        parts = [(name, job_dir)]
        if UNASSISTED_PART_TAG in tags:
            parts.append((tags[UNASSISTED_PART_TAG], job_dir / UNASSISTED_FOLDER))
        lines: list[str] = []
        entries: list[dict[str, Any]] = []
        for part, folder in parts:
            part_job = self.fake.jobs[part.lower()]
            request = next(r for op, r in self.fake.calls if op == "CreateLabelingJob" and r["LabelingJobName"] == part)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "create-labeling-job.json").write_text(json.dumps(request, indent=1) + "\n")
            output_key = part_job["LabelingJobOutput"]["OutputDatasetS3Uri"].split(f"s3://{run.bucket}/", 1)[1]
            run.s3.download_file(run.bucket, output_key, str(folder / "output.manifest"))
            task = request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].rsplit(":function:PRE-", 1)[-1]
            if len(parts) > 1 or self._is_adjustment(part_job):
                shown = "with the stand-in's proposals" if self._is_adjustment(part_job) else "without proposals"
                lines.append(f"{task} job {part} ({shown}):")
            lines += [
                f"manifest        {folder / 'input.manifest'}",
                f"job definition  {folder / 'create-labeling-job.json'} (+ worker template, label categories)",
                f"answers         {folder / 'output.manifest'} (simulated)",
            ]
            entries.append(
                {
                    "name": part,
                    "task": task,
                    "manifest": str(folder / "input.manifest"),
                    "job_definition": str(folder / "create-labeling-job.json"),
                    "output_manifest": str(folder / "output.manifest"),
                }
            )
        main = entries[0]
        summary = {"accepted": all(part.lower() in self.fake.jobs for part, _ in parts), **main}
        del summary["name"], summary["task"]
        if len(parts) > 1 or run.prelabel is not None:
            summary["parts"] = entries
        return lines, summary


def _manifest_uri(job: dict[str, Any]) -> str:
    return str(job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
