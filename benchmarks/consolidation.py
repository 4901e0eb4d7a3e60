"""Consolidating several annotators' boxes: what it costs at the job end, and how close it comes to the truth.

Run: .venv/bin/python benchmarks/consolidation.py        (about a minute; --images N, --repeats N)

Synthetic images, seeded (the agreement figures are the same every run; only the timings move): each image has
known true boxes (1920x1080, 8 or 20 objects of four labels, 40-320 px a side); each simulated annotator draws
every true box with its four edges moved by a normal jitter of JITTER x the box's side (IoU with the true box
mostly >= 0.7, printed), misses a box with probability p and names it with another label with probability q.

1. Cost at the job end. `export()` (exports/formats.py) of the images into the real writers as the job-events
   Lambda makes them (COCO, YOLO and VOC, archive=True, in a temporary folder): the images answered by 3 annotators
   x 8 boxes (each consolidated on the way), against the same images answered by one annotator each (the first
   annotator's boxes: no consolidation), measured in the same run, in turn. Also `consolidate_image` alone over the
   same images, and 5 annotators x 20 boxes as a harder case. The images are built in memory beforehand, so
   reading the backend's results is in neither figure, nor is coco.annotators.json (every annotator's own boxes,
   which write_exports adds). Pinned to one core where os.sched_setaffinity exists; each figure is the least CPU
   time (user + system of this process) of --repeats runs, since other processes on a shared machine only ever add
   to it, and the ratio is also given as the median of the runs' paired ratios.
2. Agreement against the truth. For a few (p, q) and 3 or 5 annotators: the mean over images of the F1 of the
   consolidated boxes against the true ones (`consolidation.pairwise_f1`: IoU >= 0.5, same label), against the same
   F1 of one annotator's boxes alone (the mean over annotators); the share of label errors the majority vote fixed
   (an annotator's box named other than its object, whose cluster is kept with the object's true label); and the
   mean image agreement (`JobAgreement.mean_agreement`: mean pairwise F1 of the annotators).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]

from labeling_pipeline.consolidation import JobAgreement, consolidate_image, iou, pairwise_f1  # noqa: E402
from labeling_pipeline.exports.formats import FORMATS, ExportStats, LabelSpace, export, make_writers  # noqa: E402
from labeling_pipeline.labels import Box, LabeledImage  # noqa: E402

LABELS = ("Person", "Car", "Dog", "Cat")
IMAGE_WIDTH, IMAGE_HEIGHT = 1920, 1080
SIDE = (40, 320)  # a true box's width and height, in pixels
JITTER = 0.07  # the standard deviation of each drawn edge's offset, as a share of the box's width or height
COST_CASES = ((3, 8), (5, 20))  # annotators, true boxes per image
COST_ERRORS = (0.10, 0.05)  # p (miss), q (wrong label) in the cost runs
QUALITY_ERRORS = ((0.05, 0.05), (0.15, 0.10), (0.30, 0.20))
QUALITY_ANNOTATORS = (3, 5)
QUALITY_BOXES = 8


class Drawn(NamedTuple):
    image: LabeledImage  # every annotator's boxes, each with its annotator; `annotators` says who answered
    truth: tuple[Box, ...]
    # every drawn box -> the index in `truth` of the object it was drawn for
    source: dict[Box, int]


def true_boxes(rng: random.Random, count: int) -> list[Box]:
    boxes = []
    for _ in range(count):
        width, height = rng.uniform(*SIDE), rng.uniform(*SIDE)
        left, top = rng.uniform(0, IMAGE_WIDTH - width), rng.uniform(0, IMAGE_HEIGHT - height)
        boxes.append(Box(rng.choice(LABELS), left, top, width, height))
    return boxes


def draw(rng: random.Random, truth: Box, label: str, annotator: str) -> Box:
    """The true box with each edge moved by jitter, kept within the image and at least 2 px a side."""
    left = truth.left + rng.gauss(0, JITTER * truth.width)
    right = truth.left + truth.width + rng.gauss(0, JITTER * truth.width)
    top = truth.top + rng.gauss(0, JITTER * truth.height)
    bottom = truth.top + truth.height + rng.gauss(0, JITTER * truth.height)
    left, top = min(max(left, 0.0), IMAGE_WIDTH - 2.0), min(max(top, 0.0), IMAGE_HEIGHT - 2.0)
    right, bottom = min(max(right, left + 2.0), IMAGE_WIDTH), min(max(bottom, top + 2.0), IMAGE_HEIGHT)
    return Box(label, left, top, right - left, bottom - top, annotator=annotator)


def make_images(count: int, annotators: int, boxes: int, miss: float, mislabel: float, seed: int) -> list[Drawn]:
    rng = random.Random(seed)
    names = tuple(f"annotator-{n + 1}" for n in range(annotators))
    made = []
    for index in range(count):
        truth = true_boxes(rng, boxes)
        drawn: list[Box] = []
        source: dict[Box, int] = {}
        for name in names:
            for position, true in enumerate(truth):
                if rng.random() < miss:
                    continue
                label = true.label
                if rng.random() < mislabel:
                    label = rng.choice([other for other in LABELS if other != true.label])
                box = draw(rng, true, label, name)
                drawn.append(box)
                source[box] = position
        image = LabeledImage(
            line_number=index + 1,
            source_ref=f"s3://example-bucket/images/bench/{index:06d}.jpg",
            width=IMAGE_WIDTH,
            height=IMAGE_HEIGHT,
            depth=3,
            boxes=tuple(drawn),
            job_name="bench",
            human_annotated=True,
            annotators=names,
        )
        made.append(Drawn(image, tuple(truth), source))
    return made


def one_annotator(images: Sequence[Drawn]) -> list[LabeledImage]:
    """The same images answered by their first annotator alone: exported as they are, no consolidation."""
    single = []
    for drawn in images:
        first = drawn.image.annotators[0]
        boxes = tuple(box for box in drawn.image.boxes if box.annotator == first)
        single.append(drawn.image._replace(boxes=boxes, annotators=(first,)))
    return single


# --- 1. cost ---------------------------------------------------------------------------------------------------


def export_run(images: Sequence[LabeledImage], out: Path) -> ExportStats:
    labels, stats = LabelSpace(LABELS), ExportStats()
    writers = make_writers(FORMATS, out, labels, stats, archive=True, description="bench")
    return export(images, writers, stats, labels)


def consolidate_run(images: Sequence[LabeledImage]) -> int:
    kept = 0
    for image in images:
        consolidated, _ = consolidate_image(image, image.annotators)
        kept += len(consolidated.boxes)
    return kept


def cpu_seconds(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def measure_cost(work: Path, annotators: int, boxes: int, count: int, repeats: int) -> dict[str, list[float]]:
    miss, mislabel = COST_ERRORS
    drawn = make_images(count, annotators, boxes, miss, mislabel, seed=annotators * 100 + boxes)
    several = [item.image for item in drawn]
    single = one_annotator(drawn)
    times: dict[str, list[float]] = {"several": [], "single": [], "consolidation": []}
    # A warm-up of each, then the three in turn, so that a slow spell of the machine falls on all of them.
    for round_ in range(repeats + 1):
        for name, images in (("several", several), ("single", single)):
            out = work / f"{name}-{round_}"
            seconds = cpu_seconds(partial(export_run, images, out))
            shutil.rmtree(out)
            if round_:
                times[name].append(seconds)
        seconds = cpu_seconds(partial(consolidate_run, several))
        if round_:
            times["consolidation"].append(seconds)
    return times


def report_cost(work: Path, count: int, repeats: int) -> None:
    print(f"\n1. Cost at the job end: {count:,} images, export() into COCO, YOLO and VOC (archive=True);")
    print(f"   p (miss) = {COST_ERRORS[0]}, q (wrong label) = {COST_ERRORS[1]}; least CPU of {repeats} runs")
    print("| case | export, several annotators | export, one annotator | ratio (median of pairs) "
          "| consolidate_image alone | its share of the export |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for annotators, boxes in COST_CASES:
        times = measure_cost(work, annotators, boxes, count, repeats)
        per_k = {name: min(values) / count * 1000 for name, values in times.items()}
        paired = statistics.median(a / b for a, b in zip(times["several"], times["single"], strict=True))
        ratio = per_k["several"] / per_k["single"]
        print(
            f"| {annotators} annotators x {boxes} boxes | {per_k['several']:.3f} s / 1,000 images "
            f"| {per_k['single']:.3f} s / 1,000 | {ratio:.1f}x ({paired:.1f}x) "
            f"| {per_k['consolidation']:.3f} s / 1,000 | {per_k['consolidation'] / per_k['several']:.0%} |",
            flush=True,
        )


# --- 2. agreement against the truth -----------------------------------------------------------------------------


class Quality(NamedTuple):
    f1: float  # consolidated boxes against the truth, mean over images
    single_f1: float  # one annotator's boxes against the truth, mean over images and annotators
    label_errors: int
    fixed: int
    mean_agreement: float


def quality(images: Sequence[Drawn]) -> Quality:
    job = JobAgreement()
    f1s: list[float] = []
    single_f1s: list[float] = []
    errors = fixed = 0
    for drawn in images:
        image, truth = drawn.image, drawn.truth
        consolidated_image, consolidated = consolidate_image(image, image.annotators)
        job.add(image.source_ref, consolidated)
        f1s.append(pairwise_f1(consolidated_image.boxes, truth))
        for name in image.annotators:
            single_f1s.append(pairwise_f1([box for box in image.boxes if box.annotator == name], truth))
        for cluster in consolidated.clusters:
            for member in cluster.members:
                true_label = truth[drawn.source[member]].label
                if member.label != true_label:
                    errors += 1
                    fixed += cluster.kept and cluster.box.label == true_label
    assert job.mean_agreement is not None
    return Quality(
        math.fsum(f1s) / len(f1s), math.fsum(single_f1s) / len(single_f1s), errors, fixed, job.mean_agreement
    )


def jitter_iou(count: int) -> tuple[float, float]:
    """The median IoU of a drawn box with its true box, and the share at 0.7 or more."""
    rng = random.Random(7)
    ious = []
    for true in true_boxes(rng, count):
        drawn = draw(rng, true, true.label, "a")
        ious.append(iou(drawn, true))
    return statistics.median(ious), sum(value >= 0.7 for value in ious) / len(ious)


def report_quality(count: int) -> None:
    median_iou, share = jitter_iou(100_000)
    print(
        f"\n2. Against the known truth: {count:,} images x {QUALITY_BOXES} true boxes; each drawn box's IoU with its "
        f"true box: median {median_iou:.3f}, {share:.1%} at >= 0.7 (jitter {JITTER} of the side per edge)"
    )
    print("| p (miss) | q (wrong label) | annotators | F1 consolidated | F1 one annotator | label errors fixed "
          "| mean image agreement |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for miss, mislabel in QUALITY_ERRORS:
        for annotators in QUALITY_ANNOTATORS:
            seed = int(miss * 1000) * 100 + int(mislabel * 1000) + annotators
            result = quality(make_images(count, annotators, QUALITY_BOXES, miss, mislabel, seed))
            fixed = result.fixed / result.label_errors if result.label_errors else float("nan")
            print(
                f"| {miss:.2f} | {mislabel:.2f} | {annotators} | {result.f1:.3f} | {result.single_f1:.3f} "
                f"| {fixed:.1%} ({result.fixed:,} of {result.label_errors:,}) | {result.mean_agreement:.3f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2_000, help="images per case (default 2,000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement (default 5)")
    args = parser.parse_args()
    started = time.perf_counter()
    pinned = ""
    if hasattr(os, "sched_setaffinity"):
        core = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        pinned = f", pinned to core {core}"
    command = " ".join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv])
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs{pinned}")
    print(f"command: {command}")
    with tempfile.TemporaryDirectory(prefix="consolidation-bench-") as work_dir:
        report_cost(Path(work_dir), args.images, args.repeats)
    report_quality(args.images)
    print(f"\nran in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
