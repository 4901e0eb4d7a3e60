"""make demo: the whole pipeline on this machine, without an AWS account. The worker answers are simulated.

1. Synthesizes the stacks (as `make synth`, with a 2 s batching window so nobody waits a minute).
2. Starts moto's server on loopback and the project's Ground Truth fake behind a local endpoint.
3. Creates what the templates define (sandbox.provision) and runs the real Lambda code on it
   (sandbox.lambda_runtime), with every AWS call going through AWS_ENDPOINT_URL.
4. Uploads sample photos from scikit-image with `bbox-labeling upload`; the S3 notification, the queue
   and the launcher create a labeling job, which the fake validates as the service would.
5. Simulated workers answer in Ground Truth's output format; standing in for the service, the demo
   puts the job's state-change event on EventBridge, whose rule calls the job-events Lambda, which
   exports COCO, YOLO and Pascal VOC.
6. Writes everything under demo-output/, builds the `bbox-labeling review` gallery, opens it, and
   stops the emulator. Ctrl-C at any point stops it too.

`--backend label-studio` runs the same steps with a real Label Studio as the labeling service
(sandbox.label_studio_demo): the labeling service's part of each step is the backend's stand-in's.

`--prelabel` (either backend) synthesizes the stacks with `labeling.prelabel` and puts a detector between the
upload and the launcher: a stand-in (sandbox.stand_in_detector, an ONNX graph that boxes colour blobs), because no
registry package ships a trained detector's weights. Every line, log, note and summary says so. The pre-label
function runs on the emulator like the others; the simulated workers correct its proposals (on Ground Truth in an
adjustment job, beside a plain job for the images without proposals); the job's end writes the pre-label report,
which the demo prints (`bbox-labeling report`), and the gallery draws the proposals dashed beside the final boxes.

This module is the entry: it reads the options and picks the parts. The steps are sandbox.demo_steps'; the
labeling service's part of them is sandbox.ground_truth_demo's or sandbox.label_studio_demo's, and --prelabel's is
sandbox.prelabel_demo's. Those import the steps, never this module nor each other (the layers contract in
pyproject.toml).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from sandbox.demo_steps import ROOT, DemoError, Interrupt, StandIn, run, say
from sandbox.ground_truth_demo import GroundTruthStandIn
from sandbox.prelabel_demo import StandInDetector
from sandbox.provision import ProvisionError

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
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a shell's background job keeps ignoring it
        signal.signal(signal.SIGINT, Interrupt.handle)
    signal.signal(signal.SIGTERM, Interrupt.handle)
    stand_in: StandIn
    prelabel = StandInDetector(args.out.resolve()) if args.prelabel else None
    if args.backend == "label-studio":
        # Imported here: the Ground Truth demo needs none of Label Studio's parts.
        from sandbox.label_studio_demo import LabelStudioStandIn

        stand_in = LabelStudioStandIn(args.out.resolve(), interactive=args.interactive, prelabel=prelabel)
    else:
        stand_in = GroundTruthStandIn(args.region, refuses=args.ground_truth_refuses, prelabel=prelabel)
    return finish(lambda: run(args.out.resolve(), args.region, not args.no_browser, stand_in), stand_in)


def finish(demo: Callable[[], object], stand_in: StandIn) -> int:
    """The demo's exit status: 0, 1 when it failed, 130 when it was interrupted (also when the interrupt landed
    inside a call that then failed with an error of its own)."""
    try:
        demo()
        return 0
    except KeyboardInterrupt:
        pass
    except (DemoError, ProvisionError) as error:
        if not Interrupt.take():
            say(f"FAILED: {error}")
            return 1
    Interrupt.take()  # it reached a handler here: not raised again by the line below
    say(f"Interrupted: {stand_in.interrupted} and nothing is left running. Run `make demo` again at any time.")
    return 130


if __name__ == "__main__":
    sys.exit(main())
