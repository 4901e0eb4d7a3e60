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

`--prelabel` (either backend) synthesizes the stacks with `labeling.prelabel` and puts a detector between the
upload and the launcher: a stand-in (sandbox.stand_in_detector, an ONNX graph that boxes colour blobs), because no
registry package ships a trained detector's weights. Every line, log, note and summary says so. The pre-label
function runs on the emulator like the others; the simulated workers correct its proposals (on Ground Truth in an
adjustment job, beside a plain job for the images without proposals); the job's end writes the pre-label report,
which the demo prints (`gt-labeling report`), and the gallery draws the proposals dashed beside the final boxes.
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
from labeling_pipeline.backends.ground_truth.job_parts import UNASSISTED_FOLDER, UNASSISTED_PART_TAG, pipeline_job_name
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.names import PREDICTIONS_FILE, PRELABEL_REPORT_FILE, EnvironmentVariable, StackOutput
from labeling_pipeline.prelabel.proposals import Proposal, proposals_prefix
from labeling_pipeline.prelabel.proposals import decode as decode_proposal
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import PipelineSettings
from sandbox import stand_in_detector
from sandbox.emulator import MotoServer
from sandbox.fake_ground_truth import ACCOUNT as FAKE_ACCOUNT
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import LocalHooks, ProvisionedStack, Provisioner, ProvisionError, QueueEventSource
from sandbox.simulated_workers import SIMULATED_NOTE, adjustment_answers, answer_job, state_change_event

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
PRELABEL_HANDLER = "labeling_pipeline.prelabel.handler.lambda_handler"


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
    "AWS::Lambda::LayerVersion": " (its packages are this venv's)",
}
# What the pre-label runtime layer holds (stacks/constructs/prelabel/requirements.txt), by import name.
LAYER_MODULES = ("onnxruntime", "numpy", "PIL")


class DemoProvisioner(Provisioner):
    """The provisioner, plus what the demo stands in for itself: a Lambda layer. The functions run in this process,
    so a layer's packages must be importable here: they are checked, never unpacked."""

    def _create_AWS_Lambda_LayerVersion(
        self, stack: Any, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        missing = [name for name in LAYER_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise ProvisionError(f"{logical_id}: the layer's {', '.join(missing)} not installed here: run `make setup`")
        name = properties.get("LayerName") or f"{stack.name}-{logical_id}"[:64]
        arn = f"arn:aws:lambda:{self.region}:{FAKE_ACCOUNT}:layer:{name}:1"
        return {"Ref": arn, "LayerVersionArn": arn}


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
    prelabel: StandInDetector | None  # --prelabel: the stand-in detector's part
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
    detector = stand_in.prelabel
    _line_prefix[0] = stand_in.prefix
    stand_in.introduce()
    if detector is not None:
        detector.introduce()
    prepare_output(out)
    logs = out / "logs"
    context = {**stand_in.context, **(detector.context if detector is not None else {})}
    say(
        f"1/6 Synthesizing the stacks into {out / 'cdk.out'} (with {', '.join(f'{k}={v}' for k, v in context.items())})"
    )
    stacks = stacks_in_deploy_order(synthesize(out, region, context))
    # Closed in reverse: the function URLs, the labeling service, the emulator.
    with contextlib.ExitStack() as services:
        emulator = services.enter_context(MotoServer(logs / "emulator.log", f"{stand_in.prefix} "))
        say(f"2/6 Emulator (moto server) on {emulator.url}, pid {emulator.pid}")
        session = stand_in.start(services, emulator)
        log_note = stand_in.note if detector is None else f"{stand_in.note}; {stand_in_detector.STAND_IN_NOTE}"
        runtime = LocalLambda(session.client("sqs"), region, logs, log_note)
        services.callback(runtime.close)
        provisioned = provision_stacks(DemoProvisioner(session, region, stand_in.hooks(runtime)), stacks)
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
        if detector is not None:
            result["prelabel"] = detector.summary
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
        self.prelabel = stand_in.prelabel
        # With labeling.prelabel the uploads reach the pre-label function first, which forwards them to the launcher.
        handlers = {source.function.handler: source for source in pipeline.event_sources}
        self.prelabel_source: QueueEventSource | None = handlers.get(PRELABEL_HANDLER)
        self.launcher_source = next(s for s in pipeline.event_sources if s.function.handler != PRELABEL_HANDLER)

    def settings(self) -> PipelineSettings:
        """The settings the functions run with, from the pipeline stack's output (validated as they parse it)."""
        text = self.pipeline.outputs[StackOutput.PIPELINE_SETTINGS]
        return pipeline_settings({EnvironmentVariable.PIPELINE_SETTINGS: text})

    def upload_and_launch(self) -> list[str]:
        samples, expected_keys = sample_folder(self.out)
        self.stand_in.before_upload(self)
        if self.prelabel is not None:
            self.prelabel.before_upload(self)
        say(f"4/6 gt-labeling upload {samples} --dataset {DATASET}")
        for line in run_cli(["upload", str(samples), "--dataset", DATASET]):
            say("   " + line)
        source = self.launcher_source
        launcher = (
            f"launcher Lambda (batch size {source.batch_size}, batching window {source.batching_window_seconds} s, "
            "from the template)"
        )
        if self.prelabel_source is None:
            say(f"   S3 notification -> queue -> {launcher}")
        else:
            say(
                f"   S3 notification -> pre-label queue -> pre-label Lambda with the STAND-IN detector (batch size "
                f"{self.prelabel_source.batch_size}) -> launch queue -> {launcher}"
            )
        self.launch(expected_keys)
        if self.prelabel is not None:
            self.prelabel.show_proposals(self, expected_keys)
        return expected_keys

    def launch(self, expected_keys: list[str]) -> None:
        source = self.launcher_source
        deadline = time.monotonic() + source.batching_window_seconds + WAIT_SECONDS
        while not self.stand_in.all_handled(self, expected_keys):
            if time.monotonic() > deadline:
                raise DemoError(f"the uploads were not all handled after {WAIT_SECONDS} s; see {self.out / 'logs'}")
            if self.prelabel_source is not None:
                # Ahead of the launcher: its batching window then gathers every forwarded upload into one job.
                self.runtime.poll_queue_source(self.prelabel_source)
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
        if self.prelabel is not None:
            note += ". " + self.prelabel.gallery_note
        run_cli(["review", name, "--images", "s3", "--out", str(gallery), "--note", note])
        say(f"   job {name}")
        for line in lines:
            say(f"     {line}")
        for path in exports:
            say(f"     export          {path}")
        say(
            f"     review gallery  {gallery / 'index.html'}" + (" (stand-in proposals dashed)" if self.prelabel else "")
        )
        found = {
            "name": name,
            **entries,
            "exports": [str(path) for path in exports],
            "gallery": str(gallery / "index.html"),
        }
        if self.prelabel is not None:
            found.update(self.prelabel.show_report(self, name))
        return found

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

    def __init__(self, region: str, refuses: bool = False, prelabel: StandInDetector | None = None) -> None:
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


# --prelabel: where the stand-in detector's model goes (the modelUri the stacks are synthesized with).
MODELS_BUCKET = "gt-labeling-demo-models"
MODEL_KEY = f"stand-in/{stand_in_detector.MODEL_VERSION}.onnx"
# The share of images the pre-label function holds out, so that the report compares labeling with and without
# proposals. Which ones is a hash of each image's key and version (prelabel.holdout); the emulator's S3 events carry
# no versionId, so the version is the ETag, the MD5 of scikit-image's picture: every run holds out the same ones
# (rocket and hubble_deep_field at any percent from 10 to 40; tests/sandbox checks there are some of each kind).
HOLD_OUT_PERCENT = 20


class StandInDetector:
    """--prelabel, for either backend: the stand-in detector's model in the emulator, the proposals it made, and the
    job's pre-label report. It is said to be a stand-in on every line (the prefix), in the Lambda logs, the
    gallery's note and the summary."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.model_uri = f"s3://{MODELS_BUCKET}/{MODEL_KEY}"
        setting = stand_in_detector.prelabel_setting(self.model_uri, HOLD_OUT_PERCENT)
        self.context = {"labeling.prelabel": json.dumps(setting, separators=(",", ":"))}
        note = stand_in_detector.STAND_IN_NOTE
        self.gallery_note = f"Dashed boxes: {note}."
        self.summary: dict[str, Any] = {
            "detector": "stand-in",
            "note": note,
            "model_version": stand_in_detector.MODEL_VERSION,
            "model_uri": self.model_uri,
            "hold_out_percent": HOLD_OUT_PERCENT,
            "classes": {
                model_class: {"finds": stand_in_detector.CLASSES[int(model_class)], "label": label}
                for model_class, label in stand_in_detector.CLASS_MAP.items()
            },
        }

    @staticmethod
    def line_prefix(prefix: str) -> str:
        return prefix.removesuffix("]") + " | stand-in detector]"

    def introduce(self) -> None:
        classes = " and ".join(
            f"{stand_in_detector.CLASSES[int(model_class)]}s as {label}"
            for model_class, label in stand_in_detector.CLASS_MAP.items()
        )
        say("Pre-labels come from a STAND-IN detector, not a trained model (no registry package ships a detector's")
        say(f"weights): {stand_in_detector.MODEL_VERSION}, an ONNX graph built in code that boxes {classes}.")

    def before_upload(self, run: LabelingRun) -> None:
        """The model where the stack expects it."""
        model = stand_in_detector.build_model()
        local = self.out / "stand-in-detector" / Path(MODEL_KEY).name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(model)
        region = run.s3.meta.region_name
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        run.s3.create_bucket(Bucket=MODELS_BUCKET, **location)
        run.s3.put_object(Bucket=MODELS_BUCKET, Key=MODEL_KEY, Body=model)
        say(
            f"4/6 The STAND-IN detector's model ({len(model):,} bytes, built by sandbox/stand_in_detector.py) -> "
            f"{self.model_uri}, the stack's modelUri (a copy: {local})"
        )
        self.summary["model_file"] = str(local)

    def show_proposals(self, run: LabelingRun, keys: list[str]) -> None:
        """What the pre-label function wrote for each upload, from its proposals files (kept in the output folder).
        Read by what each file names rather than looked up by image version: the emulator's S3 events carry no
        versionId, so the function names each upload by its ETag, as it does for a bucket without versioning."""
        prefix = proposals_prefix(stand_in_detector.MODEL_VERSION)
        folder = self.out / prefix
        files = download_prefix(run.s3, run.bucket, prefix, folder)
        by_key: dict[str, tuple[Path, Proposal]] = {}
        for path in files:
            proposal = decode_proposal(path.read_bytes(), str(path))
            by_key[proposal.image.key] = (path, proposal)
        say(f"   the pre-label function's files (STAND-IN detector {stand_in_detector.MODEL_VERSION}): {folder}")
        per_image: dict[str, dict[str, Any]] = {}
        for key in keys:
            name = key.removeprefix(f"images/{DATASET}/")
            if key not in by_key:
                say(f"     {name}: no proposals file (the function failed on it; see its log)")
                per_image[key] = {"file": None, "held_out": False, "boxes": []}
                continue
            path, proposal = by_key[key]
            say(f"     {name}: {_proposals_line(proposal)}")
            per_image[key] = {
                "file": str(path),
                "held_out": proposal.held_out,
                "boxes": [
                    [box.label, box.left, box.top, box.width, box.height, box.confidence] for box in proposal.boxes
                ],
            }
        self.summary["images"] = per_image
        self.summary["held_out"] = sorted(key for key, entry in per_image.items() if entry["held_out"])

    def show_report(self, run: LabelingRun, name: str) -> dict[str, Any]:
        """`gt-labeling report` on the ended job, and where its files are."""
        say(f"     gt-labeling report {name} (the STAND-IN detector's proposals against the final boxes):")
        for line in run_cli(["report", name]):
            say(f"       {line}")
        folder = self.out / "exports" / name
        files = {"prelabel_report": folder / PRELABEL_REPORT_FILE, "predictions": folder / PREDICTIONS_FILE}
        for path in files.values():
            if not path.exists():
                raise DemoError(f"the job's end wrote no {path.name} for {name}")
        self.summary.setdefault("reports", {})[name] = str(files["prelabel_report"])
        return {key: str(path) for key, path in files.items()}


def _proposals_line(proposal: Proposal) -> str:
    if proposal.held_out:
        return "held out: no proposals on purpose (labeled from scratch, for the report's comparison)"
    if not proposal.boxes:
        dropped = sum(proposal.dropped.values())
        return "no box" + (f" ({dropped} below minScore or unmapped)" if dropped else " (no colour blob)")
    boxes = ", ".join(
        f"{box.label} {box.confidence:.2f} at ({box.left:.0f}, {box.top:.0f}) {box.width:.0f}x{box.height:.0f}"
        for box in proposal.boxes
    )
    return f"{len(proposal.boxes)} stand-in box(es): {boxes}"


def _manifest_uri(job: dict[str, Any]) -> str:
    return str(job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])


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
        "--prelabel",
        action="store_true",
        help="pre-labels: a STAND-IN detector (an ONNX graph that boxes colour blobs, not a trained model) proposes "
        "boxes before the labeling; the job's end reports what was kept",
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
    prelabel = StandInDetector(args.out.resolve()) if args.prelabel else None
    if args.backend == "label-studio":
        # Imported here: the Ground Truth demo needs none of Label Studio's parts.
        from sandbox.label_studio_demo import LabelStudioStandIn

        stand_in = LabelStudioStandIn(args.out.resolve(), interactive=args.interactive, prelabel=prelabel)
    else:
        stand_in = GroundTruthStandIn(args.region, refuses=args.ground_truth_refuses, prelabel=prelabel)
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
