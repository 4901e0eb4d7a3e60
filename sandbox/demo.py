"""make demo: the whole pipeline on this machine, without an AWS account. The worker answers are simulated.

1. Synthesizes the stacks (as `make synth`, with a 10 s batching window so nobody waits a minute).
2. Starts moto's server on loopback and the project's Ground Truth fake behind a local endpoint.
3. Creates what the templates define (sandbox.provision) and runs the real Lambda code on it
   (sandbox.lambda_runtime), with every AWS call going through AWS_ENDPOINT_URL.
4. Uploads sample photos from scikit-image with `gt-labeling upload`; the S3 notification, the queue
   and the launcher create a labeling job, which the fake validates as the service would.
5. Simulated workers answer in Ground Truth's output format; the fake emits the state-change event;
   the EventBridge rule and the job-events Lambda export COCO, YOLO and Pascal VOC.
6. Writes everything under demo-output/, builds the `gt-labeling review` gallery, opens it, and
   stops the emulator. Ctrl-C at any point stops it too.
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
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from sandbox.emulator import MotoServer
from sandbox.fake_ground_truth import FakeGroundTruth
from sandbox.ground_truth_endpoint import GroundTruthEndpoint
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import ProvisionedStack, Provisioner, ProvisionError
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


def say(text: str = "") -> None:
    for line in text.splitlines() or [""]:
        print(f"{PREFIX} {line}", flush=True)


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


def synthesize(out: Path, region: str) -> Path:
    cdk_out = out / "cdk.out"
    context = [arg for key, value in DEMO_CONTEXT.items() for arg in ("-c", f"{key}={value}")]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment.update(
        # The CDK CLI looks up credentials and a default account; with none it synthesizes
        # environment-agnostic for this region, and never calls AWS.
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DEFAULT_REGION=region,
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=environment.get(
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"
        ),
        CDK_DISABLE_CLI_TELEMETRY="true",
    )
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(cdk_out), *context]
    completed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise DemoError(f"cdk synth failed:\n{completed.stderr or completed.stdout}")
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
    from labeling_cli.main import main

    captured, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(errors):
        code = main(argv)
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


def point_aws_at(emulator_url: str, ground_truth_url: str) -> None:
    """Every AWS call of this process (the CLI, the Lambda code, boto3 here) goes to loopback."""
    os.environ.update(AWS_ENDPOINT_URL=emulator_url, AWS_ENDPOINT_URL_SAGEMAKER=ground_truth_url)


def manifest_sources(s3: Any, fake: FakeGroundTruth) -> set[str]:
    sources = set()
    for job in fake.jobs.values():
        uri = job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        sources |= {json.loads(line)["source-ref"].split("/", 3)[3] for line in body.splitlines()}
    return sources


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


def run(out: Path, region: str, open_browser: bool) -> dict[str, Any]:
    started = time.monotonic()
    isolate_from_aws(region)
    say("No AWS account is used: AWS is emulated on this machine (moto), and Amazon SageMaker Ground Truth")
    say("is stood in for by the project's fake. " + SIMULATED_NOTE[0].upper() + SIMULATED_NOTE[1:] + ".")
    prepare_output(out)
    logs = out / "logs"
    say(
        f"1/6 Synthesizing the stacks into {out / 'cdk.out'} "
        f"(with {', '.join(f'{k}={v}' for k, v in DEMO_CONTEXT.items())})"
    )
    stacks = stacks_in_deploy_order(synthesize(out, region))
    header = f"# moto server for the local demo; {SIMULATED_NOTE}\n"
    with MotoServer(logs / "emulator.log", header) as emulator:
        say(f"2/6 Emulator (moto server) on {emulator.url}, pid {emulator.process.pid if emulator.process else '?'}")
        fake = FakeGroundTruth(region=region)
        with GroundTruthEndpoint(fake) as ground_truth:
            point_aws_at(emulator.url, ground_truth.url)
            session = boto3.Session()
            s3 = session.client("s3")
            fake.s3_client = s3
            say(f"   Ground Truth fake on {ground_truth.url} (validates requests against botocore's SageMaker model)")
            provisioner = Provisioner(session, region)
            provisioned: list[ProvisionedStack] = []
            for name, template in stacks:
                stack = provisioner.provision(name, template)
                provisioned.append(stack)
                created = ", ".join(
                    f"{count} {kind.split('::')[-1]}"
                    + (" (run by the demo)" if kind == "AWS::Lambda::Function" else "")
                    for kind, count in sorted(stack.created.items())
                )
                skipped = ", ".join(f"{count} {kind}" for kind, count in sorted(stack.not_emulated.items()))
                say(f"3/6 {name}: created {created}")
                say(f"   not emulated: {skipped}")
                if any("SecureTransport" in setting or "TLS" in setting for setting in stack.ignored_settings):
                    say("   left out: the TLS-only deny statements (the emulator speaks plain HTTP on loopback)")
            pipeline = next(stack for stack in provisioned if stack.event_sources)
            bucket = pipeline.outputs["BucketName"]
            runtime = LocalLambda(session.client("sqs"), region, logs, SIMULATED_NOTE)
            try:
                result = _label(out, session, fake, runtime, pipeline, bucket, open_browser)
            finally:
                runtime.close()
    result["seconds"] = round(time.monotonic() - started, 1)
    say(f"Emulator stopped; nothing is left running. The demo took {result['seconds']} s.")
    (out / "demo-summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _label(
    out: Path,
    session: Any,
    fake: FakeGroundTruth,
    runtime: LocalLambda,
    pipeline: ProvisionedStack,
    bucket: str,
    open_browser: bool,
) -> dict[str, Any]:
    s3 = session.client("s3")
    samples, expected_keys = sample_folder(out)
    say(f"4/6 gt-labeling upload {samples} --dataset {DATASET}")
    for line in run_cli(["upload", str(samples), "--dataset", DATASET]):
        say("   " + line)
    source = pipeline.event_sources[0]
    say(
        f"   S3 notification -> queue -> launcher Lambda (batch size {source.batch_size}, "
        f"batching window {source.batching_window_seconds} s, from the template)"
    )
    deadline = time.monotonic() + source.batching_window_seconds + WAIT_SECONDS
    while not set(expected_keys) <= manifest_sources(s3, fake):
        if time.monotonic() > deadline:
            raise DemoError(f"no labeling job for every upload after {WAIT_SECONDS} s; see {out / 'logs'}")
        runtime.poll_queue_source(source)
    jobs = sorted(fake.jobs.values(), key=lambda job: job["CreationTime"])
    for job in jobs:
        say(f"   labeling job {job['LabelingJobName']} created: the fake accepted the request as the service would")

    labels = json.loads(pipeline.outputs["Labels"])
    say(f"5/6 Simulated workers label {len(expected_keys)} images ({SIMULATED_NOTE})")
    events = session.client("events")
    for job in jobs:
        lines = answer_job(s3, job, labels, datetime.now(UTC))
        fake.finish(job["LabelingJobName"], "Completed", lines)
        events.put_events(Entries=[state_change_event(job)])
        say(f"   {job['LabelingJobName']}: Completed; state-change event sent to EventBridge")
    delivery = pipeline.rule_deliveries[0]
    deadline = time.monotonic() + WAIT_SECONDS
    pending = {job["LabelingJobName"] for job in jobs}
    while pending:
        if time.monotonic() > deadline:
            raise DemoError(f"no exports for {sorted(pending)} after {WAIT_SECONDS} s; see {out / 'logs'}")
        runtime.poll_rule_delivery(delivery)
        pending = {name for name in pending if not _exists(s3, bucket, f"exports/{name}/summary.json")}
    say(f"   EventBridge rule -> job-events Lambda: exports written for {len(jobs)} job(s)")

    say("6/6 Results (every box below is simulated)")
    job_results = []
    for job in jobs:
        name = job["LabelingJobName"]
        job_dir = out / "jobs" / name
        download_prefix(s3, bucket, f"jobs/{name}/", job_dir)
        request = next(r for op, r in fake.calls if op == "CreateLabelingJob" and r["LabelingJobName"] == name)
        (job_dir / "create-labeling-job.json").write_text(json.dumps(request, indent=1) + "\n")
        output_uri = job["LabelingJobOutput"]["OutputDatasetS3Uri"]
        s3.download_file(bucket, output_uri.split(f"s3://{bucket}/", 1)[1], str(job_dir / "output.manifest"))
        exports = download_prefix(s3, bucket, f"exports/{name}/", out / "exports" / name)
        gallery = out / "gallery" / name
        run_cli(["review", name, "--images", "s3", "--out", str(gallery), "--note", SIMULATED_NOTE.capitalize()])
        job_results.append(
            {
                "name": name,
                "accepted": name.lower() in fake.jobs,
                "manifest": str(job_dir / "input.manifest"),
                "job_definition": str(job_dir / "create-labeling-job.json"),
                "output_manifest": str(job_dir / "output.manifest"),
                "exports": sorted(str(path) for path in exports),
                "gallery": str(gallery / "index.html"),
            }
        )
        say(f"   job {name}")
        say(f"     manifest        {job_dir / 'input.manifest'}")
        say(f"     job definition  {job_dir / 'create-labeling-job.json'} (+ worker template, label categories)")
        say(f"     answers         {job_dir / 'output.manifest'} (simulated)")
        for path in sorted(exports):
            say(f"     export          {path}")
        say(f"     review gallery  {gallery / 'index.html'}")
    for line in run_cli(["status"]):
        say("   " + line)
    say(f"   Lambda logs: {out / 'logs'}")
    gallery_index = Path(job_results[0]["gallery"])
    if open_browser and can_open_browser() and webbrowser.open(gallery_index.resolve().as_uri()):
        say("   The gallery is open in your browser.")
    else:
        say(f"   Open the gallery in a browser: {gallery_index.resolve().as_uri()}")
    return {
        "simulated": True,
        "note": SIMULATED_NOTE,
        "bucket": bucket,
        "uploaded": expected_keys,
        "jobs": job_results,
        "invocations": [invocation.__dict__ for invocation in runtime.invocations],
    }


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output", help="output folder (default demo-output/)")
    parser.add_argument("--region", default="us-east-1", help="region the stacks are synthesized for")
    parser.add_argument("--no-browser", action="store_true", help="do not open the gallery")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run(args.out.resolve(), args.region, open_browser=not args.no_browser)
    except KeyboardInterrupt:
        say("Interrupted: the emulator is stopped and nothing is left running. Run `make demo` again at any time.")
        return 130
    except (DemoError, ProvisionError) as error:
        say(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
