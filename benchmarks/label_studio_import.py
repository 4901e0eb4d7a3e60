"""Uploads to Label Studio tasks: one batch through the real launcher against a real Label Studio.

Run: .venv/bin/python benchmarks/label_studio_import.py [image counts, default 100,1000]

A Label Studio server from .venv-label-studio (SQLite, loopback) and moto's server as AWS, set up as the
tests set them up (tests/label_studio/pipeline_world.py). For each count, one batch of that many image
versions goes through `Launcher.launch` (claims in the ledger, the candidate list, the start lease, the
import, the check for duplicates, the mark). Printed: the whole launch, and Label Studio's share of it
(every API request, timed at the client), by request kind. The rest is the ledger's DynamoDB calls, which
moto's server emulates far more slowly than DynamoDB answers. Figures, not a test.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]
os.environ.update(AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark", AWS_DEFAULT_REGION="us-east-1")

from benchmarks.label_studio_requests import api_requests, time_requests  # noqa: E402
from labeling_pipeline.images import ImageRef  # noqa: E402
from sandbox.emulator import MotoServer  # noqa: E402
from sandbox.label_studio_server import LabelStudioServer  # noqa: E402
from tests.label_studio.pipeline_world import label_studio_pipeline  # noqa: E402


def main(counts: list[int]) -> None:
    time_requests()
    with tempfile.TemporaryDirectory(prefix="label-studio-bench-") as work:
        folder = Path(work)
        with (
            MotoServer(folder / "moto.log") as moto,
            LabelStudioServer(folder / "label-studio") as server,
            label_studio_pipeline(moto, server, "Benchmark") as pipeline,
        ):
            print(f"Label Studio {server.url}, moto {moto.url}")
            for count in counts:
                api_requests.clear()
                images = [ImageRef(pipeline.bucket, f"images/b{count}/{i:06d}.png", f"v{i}") for i in range(count)]
                launcher = pipeline.launcher()
                started = time.perf_counter()
                outcomes = launcher.launch(images)
                seconds = time.perf_counter() - started
                assert all(outcome.ok for outcome in outcomes.values())
                requests_timed: dict[str, list[float]] = defaultdict(list)
                for kind, spent in api_requests:
                    requests_timed[kind].append(spent)
                label_studio = sum(spent for _kind, spent in api_requests)
                print(
                    f"{count:6d} images: {seconds:6.2f} s end to end ({count / seconds:7.1f} tasks/s); "
                    f"Label Studio {label_studio:5.2f} s ({count / label_studio:7.1f} tasks/s)"
                )
                for kind, times in sorted(requests_timed.items()):
                    print(f"         {kind:32s} {len(times):4d} requests {sum(times):6.2f} s")


if __name__ == "__main__":
    main([int(part) for part in (sys.argv[1] if len(sys.argv) > 1 else "100,1000").split(",")])
