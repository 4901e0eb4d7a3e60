"""The pre-label stage: cold start, images per second, and the seconds it adds from upload to an openable task,
each against the same run without pre-labels.

Run: .venv/bin/python benchmarks/prelabel_stage.py        (about 2 minutes; --images N, --runs N)

The detector is a graph built in code with YOLO's input and output (random weights: no weights can be downloaded
here), input 640x640, output [1, 84, 8400] as Ultralytics' ONNX export writes it, and 6.0 G multiply-adds: between
YOLO11n (3.2 G) and YOLO11s (10.8 G), so the figures sit between what those two would give; run by the pre-label
function's own code (prelabel.predictors.OnnxPredictor: letterbox, onnxruntime, decode, NMS). Everything runs
pinned to one CPU, as a Lambda function of 1,769 MB has one vCPU.

1. Cold start (whole processes, run in turn, medians; wall seconds, and the peak memory each process reports): a
   fresh Python that imports the pre-label handler and opens
   the model's onnxruntime session, against one that imports the launcher's handler (the first function an upload
   meets without pre-labels).
2. Images per second: OnnxPredictor.predict on JPEG photos of three sizes; per GB-second at the function's
   2,048 MB.
3. Upload to an openable task: moto (S3, SQS, DynamoDB) in this process and the Ground Truth fake; from an upload's
   S3 event until the launcher has created its job, through the pre-label stage and the launcher, against the
   launcher alone. Lambda's own polling and batching windows are not in it (see the note printed at the end).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]

FUNCTION_MEMORY_GB = 2.048
# YOLO11n at 640: 6.5 GFLOPs as Ultralytics lists it (3.2 G multiply-adds), YOLO11s 21.5 GFLOPs.
YOLO11N_GMACS = 3.2
PHOTO_SIZES = ((640, 480), (1920, 1080), (4032, 3024))


def _conv(name: str, source: str, channels_in: int, channels_out: int, stride: int, rng: np.random.Generator) -> tuple:
    weight = numpy_helper.from_array(
        (rng.standard_normal((channels_out, channels_in, 3, 3)) * (1.0 / np.sqrt(9 * channels_in))).astype(np.float32),
        f"{name}.w",
    )
    bias = numpy_helper.from_array(np.zeros(channels_out, np.float32), f"{name}.b")
    conv = helper.make_node(
        "Conv", [source, f"{name}.w", f"{name}.b"], [f"{name}.c"], pads=[1, 1, 1, 1], strides=[stride, stride]
    )
    act = helper.make_node("Relu", [f"{name}.c"], [name])
    return [conv, act], [weight, bias]


def yolo_sized_model(seed: int = 0) -> tuple[bytes, float]:
    """Strided 3x3 convolutions down to 80x80, 40x40 and 20x20, a head at each with 4 box rows and 80 class rows
    (sigmoid, biased low as a trained detector's are: few candidates pass a 0.25 score), concatenated to
    [1, 84, 8400]. Returns the model and its multiply-adds in billions."""
    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    weights: list[Any] = []
    macs = 0.0
    # (name, in, out, stride, output side)
    layers = [
        ("s1", 3, 32, 2, 320), ("s2", 32, 64, 2, 160), ("s2b", 64, 64, 1, 160), ("s3", 64, 128, 2, 80),
        ("s3b", 128, 128, 1, 80), ("s3c", 128, 128, 1, 80), ("s4", 128, 192, 2, 40), ("s4b", 192, 192, 1, 40),
        ("s4c", 192, 192, 1, 40), ("s5", 192, 256, 2, 20), ("s5b", 256, 256, 1, 20), ("s5c", 256, 256, 1, 20),
    ]  # fmt: skip
    source = "images"
    for name, channels_in, channels_out, stride, side in layers:
        made, params = _conv(name, source, channels_in, channels_out, stride, rng)
        nodes += made
        weights += params
        macs += 9 * channels_in * channels_out * side * side
        source = name
    heads = []
    for level, (feature, channels, side) in enumerate((("s3c", 128, 80), ("s4c", 192, 40), ("s5c", 256, 20))):
        box_w = numpy_helper.from_array((rng.random((4, channels, 1, 1)) * 0.01).astype(np.float32), f"h{level}.bw")
        box_b = numpy_helper.from_array(np.full(4, 60.0, np.float32), f"h{level}.bb")
        cls_w = numpy_helper.from_array(
            (rng.standard_normal((80, channels, 1, 1)) * 0.5).astype(np.float32), f"h{level}.cw"
        )
        cls_b = numpy_helper.from_array(np.full(80, -7.0, np.float32), f"h{level}.cb")
        weights += [box_w, box_b, cls_w, cls_b]
        nodes += [
            helper.make_node("Conv", [feature, f"h{level}.bw", f"h{level}.bb"], [f"h{level}.box"]),
            helper.make_node("Conv", [feature, f"h{level}.cw", f"h{level}.cb"], [f"h{level}.logit"]),
            helper.make_node("Sigmoid", [f"h{level}.logit"], [f"h{level}.cls"]),
            helper.make_node("Concat", [f"h{level}.box", f"h{level}.cls"], [f"h{level}.out"], axis=1),
            helper.make_node("Reshape", [f"h{level}.out", "shape"], [f"h{level}.flat"]),
        ]
        macs += 84 * channels * side * side
        heads.append(f"h{level}.flat")
    weights.append(numpy_helper.from_array(np.array([1, 84, -1], np.int64), "shape"))
    nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))
    graph = helper.make_graph(
        nodes,
        "yolo11n-sized",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 8400])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return model.SerializeToString(), macs / 1e9


def photo(size: tuple[int, int], seed: int) -> bytes:
    """A JPEG with a photo's texture and a few shapes (quality 90, as a camera writes)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(noise).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y = int(rng.integers(0, size[0] - 100)), int(rng.integers(0, size[1] - 100))
        draw.rectangle((x, y, x + size[0] // 6, y + size[1] // 6), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def settings_for(model_uri: str) -> Any:
    from labeling_pipeline.prelabel.settings import PrelabelSettings

    return PrelabelSettings.model_validate(
        {"modelUri": model_uri, "classMap": {"15": "Cat", "16": "Dog"}, "modelVersion": "bench-v1", "holdOutPercent": 0}
    )


def cold_start(model_path: Path, runs: int) -> list[str]:
    with_prelabels = (
        "import sys; sys.path[:0] = ['lambda', '.']; "
        "from benchmarks.prelabel_stage import settings_for; "
        "from labeling_pipeline.prelabel import handler; "
        "from labeling_pipeline.prelabel.predictors import OnnxPredictor; "
        f"OnnxPredictor.from_model(open({str(model_path)!r}, 'rb').read(), settings_for('s3://m-123456789012/m.onnx'))"
    )
    without = "import sys; sys.path[:0] = ['lambda', '.']; import labeling_pipeline.handler"
    environment = {**os.environ, "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_NAMESPACE": "Bench"}
    commands = {"A": [sys.executable, "-c", with_prelabels], "B": [sys.executable, "-c", without]}
    figures: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for run in range(runs + 1):  # the first pair warms the file cache and is not counted
        for name, command in commands.items():
            seconds, peak_mib = _timed(command, environment)
            if run:
                figures[name].append((seconds, peak_mib))
    ratios = [a[0] / b[0] for a, b in zip(figures["A"], figures["B"], strict=True)]
    lines = []
    for name, runs_of in figures.items():
        wall = sorted(seconds for seconds, _ in runs_of)
        peak = statistics.median(peak for _, peak in runs_of)
        lines.append(
            f"{name}: wall median {statistics.median(wall):.2f} s (min {wall[0]:.2f}, max {wall[-1]:.2f}), "
            f"peak {peak:.0f} MiB"
        )
    lines.append(f"A/B, pair by pair: median {statistics.median(ratios):.2f}x ({len(ratios)} pairs)")
    return lines


# Printed by each timed process at its end: its own peak resident memory (VmHWM belongs to the process image that exec
# made; wait4's ru_maxrss would also count the pages the child held between fork and exec).
PEAK_MEMORY = "; print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=__import__('sys').stderr)"


def _timed(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """One whole process: wall seconds from start to exit, and its peak resident memory in MiB."""
    started = time.monotonic()
    done = subprocess.run(
        [*command[:-1], command[-1] + PEAK_MEMORY],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise RuntimeError(f"{command[:2]} exited with {done.returncode}: {done.stderr[-500:]}")
    return seconds, int(done.stderr.split()[-1]) / 1024  # VmHWM is in kB


def throughput(model: bytes, images: int) -> list[str]:
    from labeling_pipeline.prelabel.predictors import OnnxPredictor

    predictor = OnnxPredictor.from_model(model, settings_for("s3://m-123456789012/m.onnx"))
    lines = []
    for size in PHOTO_SIZES:
        photos = [photo(size, seed) for seed in range(images)]
        predictor.predict(photos[0])  # the session's first run allocates its buffers
        started = time.perf_counter()
        seconds = []
        for body in photos:
            one = time.perf_counter()
            predictor.predict(body)
            seconds.append(time.perf_counter() - one)
        total = time.perf_counter() - started
        per_second = images / total
        lines.append(
            f"  {size[0]}x{size[1]} JPEG ({len(photos[0]) // 1024} KB): {per_second:.1f} images/s, median "
            f"{1000 * statistics.median(seconds):.0f} ms an image; {per_second / FUNCTION_MEMORY_GB:.1f} images per "
            f"GB-second at {FUNCTION_MEMORY_GB * 1000:.0f} MB"
        )
    return lines


def upload_to_task(model: bytes, images: int) -> list[str]:
    """Seconds from an upload's event to its job created, with the stage in front and without."""
    import boto3
    from moto import mock_aws

    from labeling_pipeline.backends.ground_truth import LIMITS
    from labeling_pipeline.images import ImageRef
    from labeling_pipeline.prelabel.predictors import OnnxPredictor
    from labeling_pipeline.prelabel.stage import PrelabelStage
    from labeling_pipeline.s3_events import parse_message
    from tests.lambda_code.prelabel.test_stage import record, s3_event
    from tests.support import BUCKET, REGION, build_world, make_settings
    from tests.support import World as LaunchWorld

    model_uri = "s3://m-123456789012/m.onnx"
    prelabel = {"modelUri": model_uri, "classMap": {"15": "Cat", "16": "Dog"},
                "modelVersion": "bench-v1", "holdOutPercent": 0}  # fmt: skip
    figures: dict[str, list[float]] = {"without": [], "with": []}
    with mock_aws():
        world: LaunchWorld = build_world()
        sqs = boto3.client("sqs", region_name=REGION)
        launch_url = sqs.create_queue(QueueName="launches")["QueueUrl"]
        predictor = OnnxPredictor.from_model(model, settings_for(model_uri))
        for index in range(images):
            body = photo((1920, 1080), index)
            for mode in ("without", "with"):
                key = f"images/bench/{mode}/{index}.jpg"
                etag = world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
                event = s3_event(key, len(body), etag)
                started = time.perf_counter()
                if mode == "with":
                    stage = PrelabelStage(
                        s3_client=world.s3, sqs_client=sqs, bucket=BUCKET, launch_queue_url=launch_url,
                        settings=settings_for(model_uri), predictor_factory=lambda: predictor,
                        limits=LIMITS,
                    )  # fmt: skip
                    stage.handle([record(event)])
                    [message] = sqs.receive_message(QueueUrl=launch_url, MaxNumberOfMessages=1)["Messages"]
                    sqs.delete_message(QueueUrl=launch_url, ReceiptHandle=message["ReceiptHandle"])
                    event = message["Body"]
                    settings = make_settings(prelabel=prelabel)
                else:
                    settings = make_settings()
                uploaded = parse_message("m", event).objects[0]
                image: ImageRef = uploaded.image_ref()
                outcomes = world.launcher(settings).launch([image])
                figures[mode].append(time.perf_counter() - started)
                assert all(outcome.ok for outcome in outcomes.values())
    without, with_stage = statistics.median(figures["without"]), statistics.median(figures["with"])
    return [
        f"  without pre-labels (launcher alone): median {1000 * without:.0f} ms",
        f"  with the pre-label stage in front:    median {1000 * with_stage:.0f} ms "
        f"(+{1000 * (with_stage - without):.0f} ms, {with_stage / without:.2f}x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="photos per size (default 20)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each process for the cold start (default 5)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    os.environ.setdefault("AWS_REGION", "us-east-1")
    model, gmacs = yolo_sized_model()
    with tempfile.TemporaryDirectory() as work:
        model_path = Path(work) / "yolo11n-sized.onnx"
        model_path.write_bytes(model)
        print(f"detector: a YOLO-shaped graph, {gmacs:.2f} G multiply-adds (YOLO11n: {YOLO11N_GMACS}), "
              f"{len(model) / 1e6:.1f} MB, output [1, 84, 8400]; one CPU")  # fmt: skip
        print("1. cold start (A: pre-label handler + model session, B: the launcher's handler)")
        for line in cold_start(model_path, args.runs):
            print("  " + line)
    print(f"2. images per second (OnnxPredictor.predict, {args.images} photos each)")
    for line in throughput(model, args.images):
        print(line)
    print(f"3. upload event to job created ({args.images} uploads, 1920x1080 JPEG, in-process moto)")
    for line in upload_to_task(model, args.images):
        print(line)
    print(
        "note: deployed, each function adds Lambda's SQS polling to these; the pre-label queue has no batching "
        "window, the launcher keeps its own (labeling.batchingWindowSeconds)."
    )


if __name__ == "__main__":
    main()
