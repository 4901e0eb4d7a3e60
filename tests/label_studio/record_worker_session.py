"""Records what a worker's browser asks Label Studio for during a labeling session, into
tests/label_studio/fixtures/worker_session_requests.json: every request the test gate must let through.

    .venv/bin/python -m tests.label_studio.record_worker_session

The session is sandbox.label_studio_browser.draw_box's: sign in (the project list after it), open the project's
labeling stream, pick a label, draw a box, submit. Requests to other hosts (the presigned image link) are left
out; requests that differ only in their numbers (ids, cache busters) are kept once, the first of them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import draw_box
from sandbox.label_studio_server import LabelStudioServer, installed_version
from sandbox.simulated_annotators import choose_password, password_link
from tests.label_studio.pipeline_world import label_studio_pipeline, png

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "worker_session_requests.json"


def same_origin_requests(base_url: str, seen: list[tuple[str, str]]) -> list[dict[str, object]]:
    """The distinct (method, path, query) a browser sent to base_url, numbers folded for the comparison."""
    origin = urlsplit(base_url).netloc
    kept: dict[tuple[str, str, str], dict[str, object]] = {}
    for method, url in seen:
        parts = urlsplit(url)
        if parts.netloc != origin:
            continue
        query = parse_qsl(parts.query, keep_blank_values=True)
        shape = (method, re.sub(r"\d+", "N", parts.path), "&".join(sorted({name for name, _ in query})))
        kept.setdefault(shape, {"method": method, "path": parts.path, "query": parts.query})
    return list(kept.values())


def record() -> list[dict[str, object]]:
    # moto's fake credentials, as the test session's conftest sets them.
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="worker-session-") as work:
        work_dir = Path(work)
        with (
            MotoServer(work_dir / "moto.log") as moto,
            LabelStudioServer(work_dir / "label-studio") as label_studio,
            label_studio_pipeline(moto, label_studio, "Recorded session") as pipeline,
        ):
            pipeline.upload("images/a.png", png(800, 600))
            pipeline.upload("images/b.png", png(640, 480))
            pipeline.launch(pipeline.receive_uploads(2))
            password = "Maple-lantern-27"
            choose_password(
                password_link(LabelStudioWorkers(pipeline.api).add("recorded-worker@example.com")), password
            )
            seen: list[tuple[str, str]] = []
            draw_box(
                label_studio.url,
                "recorded-worker@example.com",
                password,
                pipeline.project_id,
                "Cat",
                (0.2, 0.2),
                (0.6, 0.7),
                requests_made=seen,
            )
            return same_origin_requests(label_studio.url, seen)


def main() -> None:
    requests = record()
    FIXTURE.write_text(
        json.dumps(
            {
                "recorded_with": f"Label Studio {installed_version()}, sandbox.label_studio_browser.draw_box "
                "(python -m tests.label_studio.record_worker_session)",
                "requests": requests,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{len(requests)} distinct requests -> {FIXTURE}")


if __name__ == "__main__":
    main()
