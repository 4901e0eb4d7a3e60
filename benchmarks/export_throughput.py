"""Export throughput and peak memory on a synthetic 100,000-line output manifest.

Run: .venv/bin/python benchmarks/export_throughput.py [lines]
Prints lines/s per format (and all three in one pass, as the job-events Lambda does) and the peak
resident memory of a child process per run, so each figure is independent.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]


def make_manifest(path: Path, lines: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for index in range(lines):
            width, height = rng.choice([(640, 480), (1920, 1080), (512, 512)])
            boxes = [
                {
                    "class_id": rng.randint(0, 1),
                    "left": rng.randint(0, width - 50),
                    "top": rng.randint(0, height - 50),
                    "width": rng.randint(5, 200),
                    "height": rng.randint(5, 200),
                }
                for _ in range(rng.randint(0, 5))
            ]
            out.write(
                json.dumps(
                    {
                        "source-ref": f"s3://example-bucket/images/set/{index:06d}.jpg",
                        "labels": {
                            "annotations": boxes,
                            "image_size": [{"width": width, "height": height, "depth": 3}],
                        },
                        "labels-metadata": {
                            "class-map": {"0": "Dog", "1": "Cat"},
                            "human-annotated": "yes",
                            "job-name": "labeling-job/bench",
                            "objects": [{"confidence": 0.9}] * len(boxes),
                            "type": "groundtruth/object-detection",
                            "creation-date": "2026-11-25T00:00:00",
                        },
                    }
                )
                + "\n"
            )


def run_one(manifest: str, formats: str, archive: bool) -> None:
    from labeling_pipeline.exports.formats import ExportStats, LabelSpace, export, make_writers
    from labeling_pipeline.exports.output_manifest import read_output_manifest

    with tempfile.TemporaryDirectory() as out:
        labels, stats = LabelSpace(["Dog", "Cat"]), ExportStats()
        started = time.process_time()
        writers = make_writers(formats.split(","), Path(out), labels, stats, archive=archive)
        with open(manifest, "rb") as lines:
            export(read_output_manifest(lines, "labels", stats.read), writers, stats, labels)
        cpu = time.process_time() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"cpu_s": round(cpu, 2), "lines": stats.read.lines, "peak_rss_mb": round(peak_mb, 1)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_one(sys.argv[2], sys.argv[3], sys.argv[4] == "zip")
        return
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as work:
        manifest = Path(work) / "output.manifest"
        make_manifest(manifest, lines)
        print(f"{lines:,} lines, {manifest.stat().st_size / 1e6:.1f} MB manifest")
        for formats, archive in (("coco", "dir"), ("yolo", "dir"), ("voc", "dir"), ("coco,yolo,voc", "zip")):
            result = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--child", str(manifest), formats, archive],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            rate = result["lines"] / result["cpu_s"] if result["cpu_s"] else float("inf")
            print(
                f"{formats:14s} ({archive}): {result['cpu_s']:6.2f} s CPU, {rate:9,.0f} lines/s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
