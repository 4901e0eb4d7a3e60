"""make demo: the whole pipeline on this machine, without an AWS account. The worker answers are simulated.

1. Synthesizes the stacks (as `make synth`, with a 10 s batching window so nobody waits a minute).
2. Starts moto's server on loopback and the project's Ground Truth fake behind a local endpoint.
3. Creates what the templates define (sandbox.provision) and runs the real Lambda code on it
   (sandbox.lambda_runtime), with every AWS call going through AWS_ENDPOINT_URL.
4. Uploads sample photos from scikit-image with `gt-labeling upload`; the S3 notification, the queue
   and the launcher create a labeling job, which the fake validates as the service would.
5. Simulated workers answer in Ground Truth's output format; standing in for the service, the demo
   puts the job's state-change event on EventBridge, whose rule calls the job-events Lambda, which
   exports COCO, YOLO and Pascal VOC.
6. Writes everything under demo-output/, builds the `gt-labeling review` gallery, opens it, and
   stops the emulator. Ctrl-C at any point stops it too.

`--backend label-studio` runs the same steps with a real Label Studio as the labeling service
(sandbox.label_studio_demo): the labeling service's part of each step is the backend's stand-in's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import boto3

from labeling_cli.commands import queue_depth
from labeling_cli.main import main as gt_labeling
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.names import EnvironmentVariable, StackOutput
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import PipelineSettings
from sandbox.emulator import MotoServer
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import LocalHooks, ProvisionedStack, Provisioner, ProvisionError
from sandbox.simulated_workers import SIMULATED_NOTE, answer_job, state_change_event

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_MARKER = ".local-demo-output"
PREFIX = "[local demo | simulated workers]"
DATASET = "skimage-samples"
# Colour photographs that scikit-image ships in its wheel, plus one grey-scale picture.
SAMPLE_IMAGES = {
    "chelsea.png": "cats/chelsea the cat.png",  # a space: the S3 event carries the key URL-encoded
    "coffee.png": "coffee.png",
    "astronaut.png": "astronaut.png",
    "rocket.jpg": "rocket.jpg",
    "motorcycle_left.png": "motorcycle.png",
    "hubble_deep_field.jpg": "hubble_deep_field.jpg",
    "camera.png": "camera.png",
}
# The demo's only changes to cdk.json: a short batching window, and one invited worker.
DEMO_CONTEXT = {"labeling.batchingWindowSeconds": "10", "labeling.workerEmails": '["worker@example.com"]'}
WAIT_SECONDS = 90


class DemoError(Exception):
    pass


# What every printed line starts with: PREFIX, unless the labels come from a person (--interactive).
_line_prefix = [PREFIX]


def say(text: str = "") -> None:
    for line in text.splitlines() or [""]:
        print(f"{_line_prefix[0]} {line}", flush=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def prepare_output(out: Path) -> None:
    """A fresh output folder, deleting only a previous demo's (never a folder the demo did not make)."""
    if out.exists():
        if not (out / OUTPUT_MARKER).exists() and any(out.iterdir()):
            raise DemoError(f"{out} exists and was not made by the demo; pass --out with another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / OUTPUT_MARKER).write_text("made by `make demo`; deleted by the next run\n")


def sample_folder(out: Path) -> tuple[Path, list[str]]:
    """scikit-image's bundled photos (found without importing scikit-image), plus a file it must skip."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DemoError("scikit-image is not installed: run `make setup`")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    folder = out / "samples"
    keys = []
    for source, target in SAMPLE_IMAGES.items():
        path = folder / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / source, path)
        keys.append(f"images/{DATASET}/{target}")
    (folder / "notes.txt").write_text("Not an image: the upload command skips it and says so.\n")
    return folder, sorted(keys)


def synthesize(out: Path, region: str, demo_context: dict[str, str]) -> Path:
    """`cdk synth` into the demo's folder. Runs after `isolate_from_aws`, so the CDK CLI finds no
    credentials: it synthesizes for the region without looking up an account, and never calls AWS."""
    cdk_out = out / "cdk.out"
    context = [arg for key, value in demo_context.items() for arg in ("-c", f"{key}={value}")]
    environment = {
        **os.environ,
        "CDK_DEFAULT_REGION": region,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": os.environ.get(
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"
        ),
    }
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(cdk_out), *context]
    try:
        completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise DemoError("npx is not installed: install Node.js 20 or newer, then run `make setup`") from error
    if completed.returncode != 0:
        raise DemoError(f"cdk synth failed (run `make setup` first):\n{completed.stderr or completed.stdout}")
    return cdk_out


def stacks_in_deploy_order(cdk_out: Path) -> list[tuple[str, dict[str, Any]]]:
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    artifacts = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in artifacts[name].get("dependencies", []):
            if dependency in artifacts:
                visit(dependency)
        ordered.append(name)

    for name in artifacts:
        visit(name)
    return [
        (name, json.loads((cdk_out / artifacts[name]["properties"]["templateFile"]).read_text())) for name in ordered
    ]


def run_cli(argv: list[str]) -> list[str]:
    """The project's own `gt-labeling` command, in this process (so it reaches the emulator)."""
    captured, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(errors):
        code = gt_labeling(argv)
    if code != 0:
        raise DemoError(f"gt-labeling {' '.join(argv)} failed: {errors.getvalue().strip()}")
    return captured.getvalue().splitlines()


def isolate_from_aws(region: str) -> None:
    """Forget the user's AWS settings (profile, keys, config files) for this process: the demo never
    reaches AWS, and a profile that exists only on the user's machine must not break it."""
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(
        AWS_ACCESS_KEY_ID="local-demo",
        AWS_SECRET_ACCESS_KEY="local-demo",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )


def point_aws_at(emulator_url: str, ground_truth_url: str | None = None) -> None:
    """Every AWS call of this process (the CLI, the Lambda code, boto3 here) goes to loopback."""
    os.environ.update(AWS_ENDPOINT_URL=emulator_url)
    if ground_truth_url is not None:
        os.environ.update(AWS_ENDPOINT_URL_SAGEMAKER=ground_truth_url)


def download_prefix(s3: Any, bucket: str, prefix: str, target: Path) -> list[Path]:
    paths = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = target / item["Key"].removeprefix(prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            paths.append(path)
    return paths


def can_open_browser() -> bool:
    # On a Linux box without a display, webbrowser may start a text browser in the terminal.
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# How the demo stands in for what it creates but AWS would run.
RUN_BY_THE_DEMO = {
    "AWS::Lambda::Function": " (run by the demo)",
    "AWS::Lambda::Url": " (a loopback receiver)",
}


def provision_stacks(provisioner: Provisioner, stacks: list[tuple[str, dict[str, Any]]]) -> list[ProvisionedStack]:
    provisioned = []
    for name, template in stacks:
        stack = provisioner.provision(name, template)
        provisioned.append(stack)
        created = ", ".join(
            f"{count} {kind.split('::')[-1]}" + RUN_BY_THE_DEMO.get(kind, "")
            for kind, count in sorted(stack.created.items())
        )
        say(f"3/6 {name}: created {created}")
        for resource in stack.custom_resources:
            say(
                f"   {resource.kind} {resource.logical_id}: {resource.function.handler} ran with the template's "
                f"properties -> physical id {resource.physical_id}"
            )
        for url in stack.function_urls:
            say(f"   function URL of {url.function.name}: {url.url} (auth {url.auth_type}; on loopback)")
        for schedule in stack.schedules:
            say(
                f"   schedule {schedule.rule_name}: {schedule.expression} -> {schedule.function.name} (the emulator "
                "fires no schedule: the demo runs it once, at the end)"
            )
        say("   not emulated: " + ", ".join(f"{count} {kind}" for kind, count in sorted(stack.not_emulated.items())))
        if stack.tls_only_statements_left_out:
            say(
                f"   left out: {stack.tls_only_statements_left_out} TLS-only deny statement(s) "
                "(the emulator speaks plain HTTP on loopback)"
            )
    return provisioned


class StandIn(Protocol):
    """The labeling service's part of each step, for one backend: Ground Truth's fake, or a real Label Studio."""

    prefix: str  # what every printed line starts with
    note: str  # in every Lambda log line; the gallery's note, capitalized
    results_heading: str  # what step 6's heading says of the boxes
    stopped: str  # the end's line: what the demo stopped ("Emulator stopped")
    interrupted: str  # Ctrl-C's line: what is stopped ("the emulator is stopped")
    context: dict[str, str]  # the synthesis' context overrides
    summary: dict[str, Any]  # added to demo-summary.json

    def introduce(self) -> None: ...

    def start(self, services: contextlib.ExitStack, emulator: MotoServer) -> Any:
        """Start the service's stand-in (its processes go on `services`); the boto3 session for the demo."""

    def hooks(self, runtime: LocalLambda) -> LocalHooks:
        """What the provisioner needs of the demo for this backend's templates."""

    def before_upload(self, run: LabelingRun) -> None: ...

    def all_handled(self, run: LabelingRun, expected_keys: list[str]) -> bool:
        """Whether the launcher has handled every upload (a job holds it, or it was refused)."""

    def label(self, run: LabelingRun, expected_keys: list[str]) -> list[str]:
        """Steps 4 (the job's creation) and 5: the jobs labeled and exported, by name."""

    def job_files(self, run: LabelingRun, name: str, job_dir: Path) -> tuple[list[str], dict[str, Any]]:
        """The job's backend files in the output folder: the lines that list them, and the summary's entries."""


def run(out: Path, region: str, open_browser: bool, stand_in: StandIn) -> dict[str, Any]:
    started = time.monotonic()
    isolate_from_aws(region)
    _line_prefix[0] = stand_in.prefix
    stand_in.introduce()
    prepare_output(out)
    logs = out / "logs"
    say(
        f"1/6 Synthesizing the stacks into {out / 'cdk.out'} "
        f"(with {', '.join(f'{k}={v}' for k, v in stand_in.context.items())})"
    )
    stacks = stacks_in_deploy_order(synthesize(out, region, stand_in.context))
    # Closed in reverse: the function URLs, the labeling service, the emulator.
    with contextlib.ExitStack() as services:
        emulator = services.enter_context(MotoServer(logs / "emulator.log", f"{stand_in.prefix} "))
        say(f"2/6 Emulator (moto server) on {emulator.url}, pid {emulator.pid}")
        session = stand_in.start(services, emulator)
        runtime = LocalLambda(session.client("sqs"), region, logs, stand_in.note)
        services.callback(runtime.close)
        provisioned = provision_stacks(Provisioner(session, region, stand_in.hooks(runtime)), stacks)
        pipeline = next(stack for stack in provisioned if stack.event_sources)
        labeling = LabelingRun(out, session, runtime, pipeline, stand_in)
        uploaded = labeling.upload_and_launch()
        jobs = labeling.label_and_export(uploaded)
        show_gallery(Path(jobs[0]["gallery"]), open_browser)
        result: dict[str, Any] = {"uploaded": uploaded, **stand_in.summary, "jobs": jobs}
        result.update(
            simulated=stand_in.note == SIMULATED_NOTE,
            note=stand_in.note,
            bucket=labeling.bucket,
            invocations=[invocation.__dict__ for invocation in runtime.invocations],
        )
    result["seconds"] = round(time.monotonic() - started, 1)
    say(f"{stand_in.stopped}; nothing is left running. The demo took {result['seconds']} s.")
    (out / "demo-summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


class LabelingRun:
    """Steps 4 to 6 on the provisioned stacks: upload, launch, label, export, show; the labeling service's part
    is the stand-in's."""

    def __init__(
        self, out: Path, session: Any, runtime: LocalLambda, pipeline: ProvisionedStack, stand_in: StandIn
    ) -> None:
        self.out = out
        self.session = session
        self.s3 = session.client("s3")
        self.sqs = session.client("sqs")
        self.runtime = runtime
        self.pipeline = pipeline
        self.stand_in = stand_in
        self.bucket = pipeline.outputs[StackOutput.BUCKET_NAME]

    def settings(self) -> PipelineSettings:
        """The settings the functions run with, from the pipeline stack's output (validated as they parse it)."""
        text = self.pipeline.outputs[StackOutput.PIPELINE_SETTINGS]
        return pipeline_settings({EnvironmentVariable.PIPELINE_SETTINGS: text})

    def upload_and_launch(self) -> list[str]:
        samples, expected_keys = sample_folder(self.out)
        self.stand_in.before_upload(self)
        say(f"4/6 gt-labeling upload {samples} --dataset {DATASET}")
        for line in run_cli(["upload", str(samples), "--dataset", DATASET]):
            say("   " + line)
        source = self.pipeline.event_sources[0]
        say(
            f"   S3 notification -> queue -> launcher Lambda (batch size {source.batch_size}, "
            f"batching window {source.batching_window_seconds} s, from the template)"
        )
        self.launch(expected_keys)
        return expected_keys

    def launch(self, expected_keys: list[str]) -> None:
        source = self.pipeline.event_sources[0]
        deadline = time.monotonic() + source.batching_window_seconds + WAIT_SECONDS
        while not self.stand_in.all_handled(self, expected_keys):
            if time.monotonic() > deadline:
                raise DemoError(f"the uploads were not all handled after {WAIT_SECONDS} s; see {self.out / 'logs'}")
            self.runtime.poll_queue_source(source)

    def wait_for_exports(self, names: list[str], pump: Callable[[], object]) -> None:
        """Until the job-events function has exported every job; `pump` delivers what reaches it meanwhile."""
        deadline = time.monotonic() + WAIT_SECONDS
        pending = set(names)
        while pending:
            if time.monotonic() > deadline:
                raise DemoError(f"no exports for {sorted(pending)} after {WAIT_SECONDS} s; see {self.out / 'logs'}")
            pump()
            pending = {name for name in pending if not self.exists(f"exports/{name}/summary.json")}

    def label_and_export(self, expected_keys: list[str]) -> list[dict[str, Any]]:
        names = self.stand_in.label(self, expected_keys)
        say(f"6/6 Results ({self.stand_in.results_heading})")
        results = [self._collect(name) for name in names]
        for line in run_cli(["status"]):
            say("   " + line)
        say(f"   Lambda logs: {self.out / 'logs'}")
        return results

    def _collect(self, name: str) -> dict[str, Any]:
        """The job's files from the emulator into the output folder, and its review gallery."""
        job_dir = self.out / "jobs" / name
        download_prefix(self.s3, self.bucket, f"jobs/{name}/", job_dir)
        lines, entries = self.stand_in.job_files(self, name, job_dir)
        exports = sorted(download_prefix(self.s3, self.bucket, f"exports/{name}/", self.out / "exports" / name))
        gallery = self.out / "gallery" / name
        note = self.stand_in.note[0].upper() + self.stand_in.note[1:]
        run_cli(["review", name, "--images", "s3", "--out", str(gallery), "--note", note])
        say(f"   job {name}")
        for line in lines:
            say(f"     {line}")
        for path in exports:
            say(f"     export          {path}")
        say(f"     review gallery  {gallery / 'index.html'}")
        return {
            "name": name,
            **entries,
            "exports": [str(path) for path in exports],
            "gallery": str(gallery / "index.html"),
        }

    def drain(self, url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", []):
            messages += batch
        return messages

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError:
            return False
        return True


class GroundTruthStandIn:
    """Amazon SageMaker Ground Truth stood in for by the project's fake, its workers simulated."""

    prefix = PREFIX
    note = SIMULATED_NOTE
    results_heading = "every box below is simulated"
    stopped = "Emulator stopped"
    interrupted = "the emulator is stopped"
    context = DEMO_CONTEXT

    def __init__(self, region: str, refuses: bool = False) -> None:
        self.region = region
        self.refuses = refuses
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
        labels = list(run.settings().labels)
        say(f"5/6 Simulated workers label {len(expected_keys)} images ({SIMULATED_NOTE})")
        events = run.session.client("events")
        for job in jobs:
            lines = answer_job(self.fake.read, job, labels, datetime.now(UTC))
            self.fake.finish(job["LabelingJobName"], "Completed", lines)
            events.put_events(Entries=[state_change_event(job)])
            say(f"   {job['LabelingJobName']}: Completed; state-change event sent to EventBridge")
        delivery = run.pipeline.rule_deliveries[0]
        names = [job["LabelingJobName"] for job in jobs]
        run.wait_for_exports(names, lambda: run.runtime.poll_rule_delivery(delivery))
        say(f"   EventBridge rule -> job-events Lambda: exports written for {len(jobs)} job(s)")
        return names

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
        job = self.fake.jobs[name.lower()]
        request = next(r for op, r in self.fake.calls if op == "CreateLabelingJob" and r["LabelingJobName"] == name)
        (job_dir / "create-labeling-job.json").write_text(json.dumps(request, indent=1) + "\n")
        output_key = job["LabelingJobOutput"]["OutputDatasetS3Uri"].split(f"s3://{run.bucket}/", 1)[1]
        run.s3.download_file(run.bucket, output_key, str(job_dir / "output.manifest"))
        lines = [
            f"manifest        {job_dir / 'input.manifest'}",
            f"job definition  {job_dir / 'create-labeling-job.json'} (+ worker template, label categories)",
            f"answers         {job_dir / 'output.manifest'} (simulated)",
        ]
        return lines, {
            "accepted": name.lower() in self.fake.jobs,
            "manifest": str(job_dir / "input.manifest"),
            "job_definition": str(job_dir / "create-labeling-job.json"),
            "output_manifest": str(job_dir / "output.manifest"),
        }


def show_gallery(index: Path, open_browser: bool) -> None:
    if open_browser and can_open_browser() and webbrowser.open(index.resolve().as_uri()):
        say("   The gallery is open in your browser.")
    else:
        say(f"   Open the gallery in a browser: {index.resolve().as_uri()}")


BACKENDS = ("ground-truth", "label-studio")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output", help="output folder (default demo-output/)")
    parser.add_argument("--region", default="us-east-1", help="region the stacks are synthesized for")
    parser.add_argument("--no-browser", action="store_true", help="do not open the gallery")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=BACKENDS[0],
        help="the labeling service: Ground Truth (the project's fake) or Label Studio (a real server on this machine)",
    )
    parser.add_argument(
        "--ground-truth-refuses",
        action="store_true",
        help="play an account that Ground Truth first refuses (closed to new customers since 2026-07-30), "
        "then the redrive once it has access",
    )
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="with --backend label-studio: you draw the boxes in Label Studio's web UI (it prints the URL and a "
        "worker's sign-in), then press Enter",
    )
    args = parser.parse_args(argv)
    if args.ground_truth_refuses and args.backend != "ground-truth":
        parser.error("--ground-truth-refuses goes with --backend ground-truth")
    if args.interactive and args.backend != "label-studio":
        parser.error("--interactive goes with --backend label-studio")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    stand_in: StandIn
    if args.backend == "label-studio":
        # Imported here: the Ground Truth demo needs none of Label Studio's parts.
        from sandbox.label_studio_demo import LabelStudioStandIn

        stand_in = LabelStudioStandIn(args.out.resolve(), interactive=args.interactive)
    else:
        stand_in = GroundTruthStandIn(args.region, refuses=args.ground_truth_refuses)
    try:
        run(args.out.resolve(), args.region, not args.no_browser, stand_in)
    except KeyboardInterrupt:
        say(f"Interrupted: {stand_in.interrupted} and nothing is left running. Run `make demo` again at any time.")
        return 130
    except (DemoError, ProvisionError) as error:
        say(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    # `python -m sandbox.demo` runs this file as __main__; the backends' stand-ins import sandbox.demo, which must
    # be the one that runs (one line prefix, one DemoError).
    from sandbox import demo

    sys.exit(demo.main())
