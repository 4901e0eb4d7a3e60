"""The steps of `make demo` that both labeling backends share: the emulator world (synthesis, moto, the stacks
provisioned, the Lambda code run in this process), the upload, the launcher's runs, the wait for the job ends'
exports, the job's files, the gallery and every printed line.

What a backend's labeling service does in each step is its stand-in's (`StandIn`: sandbox.ground_truth_demo,
sandbox.label_studio_demo); what --prelabel adds is the pre-label part's (`Prelabel`: sandbox.prelabel_demo).
This module knows them only through those two protocols, so that it stands below both backends and imports
neither: sandbox.demo, the entry, picks them and hands them to `run`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from labeling_cli.main import main as gt_labeling
from labeling_pipeline.names import EnvironmentVariable, StackOutput
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import PipelineSettings
from sandbox.emulator import ACCOUNT, MotoServer
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import LocalHooks, ProvisionedStack, Provisioner, ProvisionError, QueueEventSource
from sandbox.simulated_workers import SIMULATED_NOTE

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
DEMO_CONTEXT = {"labeling.batchingWindowSeconds": "2", "labeling.workerEmails": '["worker@example.com"]'}
WAIT_SECONDS = 90
PRELABEL_HANDLER = "labeling_pipeline.prelabel.handler.lambda_handler"


class DemoError(Exception):
    pass


# What every printed line starts with: PREFIX, unless the labels come from a person (--interactive).
_line_prefix = [PREFIX]


class Interrupt:
    """Ctrl-C (or a kill) as KeyboardInterrupt, remembered: Python drops an exception raised while a finalizer runs
    (an HTTP response's or a socket's, which the demo makes by the hundred), so an interrupt that lands there would
    be lost. Remembered, it is raised again at the demo's next line of output."""

    pending = False

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.pending = True
        raise KeyboardInterrupt

    @classmethod
    def take(cls) -> bool:
        """Whether an interrupt is remembered, forgetting it: for an error that a call raised because the interrupt
        landed inside it and was wrapped (pydantic-core's schema building turns it into a SchemaError)."""
        pending, cls.pending = cls.pending, False
        return pending

    @classmethod
    def raise_pending(cls) -> None:
        """Raise the remembered interrupt, unless a KeyboardInterrupt is being handled (the demo's cleanup, its
        "Interrupted" line): then it reached a handler and was not lost."""
        if cls.pending:
            cls.pending = False
            if not isinstance(sys.exception(), KeyboardInterrupt):
                raise KeyboardInterrupt


def say(text: str = "") -> None:
    Interrupt.raise_pending()
    for line in text.splitlines() or [""]:
        print(f"{_line_prefix[0]} {line}", flush=True)


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
    """The project's own `bbox-labeling` command, in this process (so it reaches the emulator)."""
    captured, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(errors):
        code = gt_labeling(argv)
    if code != 0:
        raise DemoError(f"bbox-labeling {' '.join(argv)} failed: {errors.getvalue().strip()}")
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
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:layer:{name}:1"
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


class Prelabel(Protocol):
    """--prelabel's part of each step, for either backend (sandbox.prelabel_demo's stand-in detector). A protocol,
    as `StandIn` is, so that the shared steps import no part that stands above them."""

    note: str  # after the backend's note in every Lambda log line: what the proposals come from
    gallery_note: str  # after the backend's note on the gallery
    context: dict[str, str]  # the synthesis' context overrides (labeling.prelabel)
    summary: dict[str, Any]  # demo-summary.json's "prelabel"

    def line_prefix(self, prefix: str) -> str:
        """The backend's line prefix, marked with what the proposals come from."""

    def introduce(self) -> None: ...

    def before_upload(self, run: LabelingRun) -> None:
        """Step 4, ahead of the upload: what the pre-label function needs in the emulator (its model)."""

    def show_proposals(self, run: LabelingRun, keys: list[str]) -> None:
        """Step 4, once the launcher has handled the uploads: what the pre-label function proposed for each."""

    def show_report(self, run: LabelingRun, name: str) -> dict[str, Any]:
        """Step 6: the ended job's pre-label report, and its files for the job's summary."""


class StandIn(Protocol):
    """The labeling service's part of each step, for one backend: Ground Truth's fake, or a real Label Studio."""

    prefix: str  # what every printed line starts with
    note: str  # in every Lambda log line; the gallery's note, capitalized
    prelabel: Prelabel | None  # --prelabel: the stand-in detector's part
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
        log_note = stand_in.note if detector is None else f"{stand_in.note}; {detector.note}"
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
        say(f"4/6 bbox-labeling upload {samples} --dataset {DATASET}")
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


def show_gallery(index: Path, open_browser: bool) -> None:
    if open_browser and can_open_browser() and webbrowser.open(index.resolve().as_uri()):
        say("   The gallery is open in your browser.")
    else:
        say(f"   Open the gallery in a browser: {index.resolve().as_uri()}")
