"""The pipeline against Label Studio's own way, side by side in one run: intake, export, upload-to-task latency.

Run: .venv/bin/python benchmarks/label_studio_side_by_side.py      (defaults: the sizes below)
     quick: ... --existing 1000 --new 100 --export 1000 --latency-uploads 20 --latency-seconds 30
     one part: ... --parts intake (or export, latency, reads; comma-separated)

One Label Studio server from .venv-label-studio (SQLite, uwsgi as deployed, loopback) and moto's server
as AWS; each comparison gets a pipeline world of its own as the tests make it (tests/label_studio/pipeline_world.py:
bucket with its notification to the upload queue, ledger, project, storage, webhook). Every figure of one
comparison comes from the same run on the same servers.

1. Intake: `--new` uploads into a project that already holds `--existing` tasks.
   - the pipeline: the real `Launcher` with the Label Studio backend launches the new image versions
     (`maxImagesPerJob` 1000); the existing tasks were imported by the backend before (untimed). Timed: the whole
     launch (the ledger's DynamoDB claims in moto's server are most of it) and Label Studio's share (its API
     requests, timed at the client).
   - Label Studio: a second project with an S3 import storage over the same bucket (prefix images/, blob URLs),
     synced once with the existing objects (untimed), then the new objects are added and one sync is timed, from
     the POST to the status `completed`. The S3 LIST requests it makes are counted in moto's server log.
2. Export: for each size in `--export` (comma-separated), that many annotated tasks (1-3 boxes each, imported with
   their annotations) in one job of the pipeline.
   - Label Studio: GET /api/projects/{id}/export?exportType=JSON, then COCO, YOLO and VOC (download_resources=false,
     download_all_tasks=true), each timed to the last byte, with the largest RSS of the server's processes (uwsgi's
     master and workers) sampled every 20 ms.
   - the job's index and task shards, as the job-events function keeps them while answers arrive, built in one
     full read (timed: what a job without them costs once), LATE_COMMIT_MARGIN after the import.
   - the pipeline: the job end's export path (job_results.JobFinisher): the backend's describe_job and read_results
     (tasks.jsonl to S3) streamed into write_exports (COCO, YOLO and VOC in one pass), the three files and
     summary.json uploaded, in a child process whose wall time, requests and peak RSS (VmHWM) are reported. Left
     out: the ledger's per-image bookkeeping, which is not an export.
   - then one answer changed (PATCH, as the editor saves it) and the job end again: the re-export.
   - the job's read through the data manager (every field, as the job end read it before the index) at each of
     `--page-sizes`.
3. Latency: from an upload to its task in Label Studio's project, over `--latency-uploads` uploads arriving at
   random (seeded, a Poisson process over `--latency-seconds`), through moto's S3 notification to SQS and
   sandbox.lambda_runtime's emulation of the SQS event source mapping (batch size 1000, the batching window) into
   the real launcher handler; once with the deployment's default window and once with the smallest one it allows
   (both read from stacks/deployment_settings.py). A task counts as there when Label Studio's task list (polled
   every 0.2 s) holds it.

4. Reads (`--parts reads`, not in the default run): the ways Label Studio offers to read one job's answers back
   (`--export` annotated tasks), each timed on the same job: the data manager's task list with every field (the job
   end's read today) and with task rows only, the export endpoint given the task ids (100 and 500 a request) and
   for the whole project; then four changes to answers (updated, deleted, added, deleted in bulk), whether each
   moves its task's ``updated_at`` past the job's newest, and the read of only the tasks updated since.

Caveats: Label Studio runs on SQLite, not Postgres; moto's
server stands in for S3, SQS and DynamoDB and is far slower than they are; everything shares this machine's
2 cores (the pipeline's own CPU, the server's and moto's). The event source emulation runs one invocation at a
time (Lambda would run up to 5 pollers). Figures, not a test.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]
os.environ.update(AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark", AWS_DEFAULT_REGION="us-east-1")

import urllib3  # noqa: E402

from benchmarks.label_studio_requests import api_requests, exported_task_ids, time_requests  # noqa: E402
from labeling_pipeline.backends.label_studio import LIMITS  # noqa: E402
from labeling_pipeline.backends.label_studio.api import LabelStudioApi  # noqa: E402

# --- Label Studio's facts, from its source (.venv-label-studio/lib/python3.11/site-packages/) -------------------
# label_studio/io_storages/base_models.py, StorageInfo.Status: the states of a storage's sync.
SYNC_DONE = ("completed", "completed_with_errors")
SYNC_FAILED = "failed"
# label_studio/io_storages/s3/models.py, S3ImportStorageBase.get_data: with use_blob_urls a key becomes a task
# {DATA_UNDEFINED_NAME: "s3://bucket/key"} without reading the object (core/settings/base.py); the task API shows
# that key as the label config's field, $image (tasks/serializers.py, replace_task_data_undefined_with_config_field).
DATA_UNDEFINED_NAME = "$undefined$"
# label_studio_sdk/converter/converter.py, Format (the names label_studio/data_export/api.py ExportAPI hands to
# Converter.convert). VOC downloads each image unless download_resources is false (its default is
# CONVERTER_DOWNLOAD_RESOURCES, true: core/settings/base.py; data_export/serializers.py ExportParamSerializer).
EXPORT_TYPES = ("JSON", "COCO", "YOLO", "VOC")
# The storage's regex_filter (re.match on the whole key, io_storages/s3/models.py iter_objects): the image
# suffixes the pipeline's launcher takes, in any case as it takes them.
STORAGE_REGEX = "(?i).*(" + "|".join(re.escape(suffix) for suffix in LIMITS.image_suffixes) + ")$"

SIZES = [(640, 480), (1920, 1080), (1024, 768), (512, 512), (800, 600)]
UPLOAD_THREADS = 16
IMPORT_CHUNK = 1000
SAMPLE_SECONDS = 0.02
WATCH_SECONDS = 0.2
# stacks/constructs/launch_pipeline.py: the upload queue's visibility timeout, 6 x LAUNCHER_TIMEOUT (300 s).
UPLOAD_QUEUE_VISIBILITY = 6 * 300
LONG_TIMEOUT = (5, 3600)


def long_api(url: str, token: str) -> LabelStudioApi:
    return LabelStudioApi(url, token, timeout=urllib3.Timeout(connect=5.0, read=3600.0))


class OwnWay:
    """Label Studio's own way, as a script or its UI would call it: every request counted."""

    def __init__(self, url: str, token: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.count = 0

    def call(self, method: str, path: str, **options: Any) -> Any:
        self.count += 1
        answer = self.session.request(method, self.url + path, timeout=LONG_TIMEOUT, **options)
        answer.raise_for_status()
        return answer


# --- helpers ---------------------------------------------------------------------------------------------------


def tiny_png() -> bytes:
    from tests.label_studio.pipeline_world import png

    return png(8, 6)


def put_objects(s3: Any, bucket: str, keys: list[str], body: bytes) -> dict[str, str]:
    """The objects, UPLOAD_THREADS at a time; each key's version id."""

    def put(key: str) -> tuple[str, str]:
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png")
        return key, str(answer.get("VersionId", "null"))

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        return dict(pool.map(put, keys))


def s3_client(url: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=url, region_name=region, config=Config(max_pool_connections=UPLOAD_THREADS * 2)
    )


def task_total(own: OwnWay, project_id: int) -> int:
    answer = own.session.get(
        f"{own.url}/api/tasks", params={"project": project_id, "page_size": 1}, timeout=LONG_TIMEOUT
    )
    answer.raise_for_status()
    return int(answer.json()["total"])


def all_tasks(own: OwnWay, project_id: int) -> list[dict[str, Any]]:
    """Every task of the project, in one page (untimed checks; TASK_API_PAGE_SIZE_MAX is unset by default,
    label_studio/core/settings/base.py)."""
    answer = own.session.get(
        f"{own.url}/api/tasks",
        params={"project": str(project_id), "page_size": "1000000", "resolve_uri": "false"},
        timeout=LONG_TIMEOUT,
    )
    answer.raise_for_status()
    tasks: list[dict[str, Any]] = answer.json()["tasks"]
    return tasks


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# --- 1. intake --------------------------------------------------------------------------------------------------


def intake(moto: Any, server: Any, existing: int, new: int) -> None:
    from labeling_pipeline.backends import JobRequest
    from labeling_pipeline.backends.label_studio import build
    from labeling_pipeline.backends.label_studio.project import project_fields
    from labeling_pipeline.backends.label_studio.results import TaskData
    from labeling_pipeline.images import ImageRef
    from labeling_pipeline.launcher import job_prefix
    from labeling_pipeline.names import OUTPUT_PREFIX
    from labeling_pipeline.names import EnvironmentVariable as Env
    from tests.label_studio.pipeline_world import REGION, label_studio_pipeline

    print(f"\n== 1. Intake: {new:,} new uploads into a project that holds {existing:,} tasks")
    with label_studio_pipeline(moto, server, "Intake") as pipeline:
        resources = json.loads(pipeline.environment[Env.BACKEND_RESOURCES])
        s3 = s3_client(moto.url, REGION)
        # The Launcher is called directly here, so the bucket's notification to the upload queue is not needed;
        # with it, moto's server slows down as the messages pile up (1,000 puts: 21 s, then 55 s, then 104 s).
        s3.put_bucket_notification_configuration(Bucket=pipeline.bucket, NotificationConfiguration={})
        body = tiny_png()
        started = time.perf_counter()
        old_keys = [f"images/old/{i:06d}.png" for i in range(existing)]
        old = put_objects(s3, pipeline.bucket, old_keys, body)
        print(f"setup: {existing:,} objects put into moto's S3 in {seconds(time.perf_counter() - started)}")

        # The pipeline's project: the existing tasks, imported by the backend as its jobs would have (untimed).
        started = time.perf_counter()
        backend = build(pipeline.settings, resources, pipeline.client_for, REGION)
        backend.api = long_api(backend.api.base_url, server.token)
        images = [ImageRef(pipeline.bucket, key, old[key]) for key in old_keys]
        size = pipeline.settings.max_images_per_job
        for number, start in enumerate(range(0, existing, size)):
            name = f"lsbox-existing-{number:03d}"
            chunk = tuple(images[start : start + size])
            backend.create_job(JobRequest(name, chunk, pipeline.bucket, job_prefix(name), OUTPUT_PREFIX))
        own = OwnWay(server.url, server.token)
        assert task_total(own, pipeline.project_id) == existing
        spent = seconds(time.perf_counter() - started)
        print(f"setup: {existing:,} tasks imported into the pipeline's project in {spent}")

        # Label Studio's own way: a project with an S3 import storage over the same bucket.
        fields = project_fields(pipeline.settings) | {"title": "Intake, Label Studio's own sync"}
        project = own.call("POST", "/api/projects", json=fields).json()
        storage = own.call(
            "POST",
            "/api/storages/s3",
            json={
                "project": project["id"],
                "title": "images/ of the pipeline's bucket",
                "bucket": pipeline.bucket,
                "prefix": "images/",
                "regex_filter": STORAGE_REGEX,
                "use_blob_urls": True,
                "presign": True,
                "presign_ttl": 15,
                # Uploads go to images/<dataset>/...: without it, only the keys right under images/ are listed.
                "recursive_scan": True,
                "region_name": REGION,
                "s3_endpoint": moto.url,
            },
        ).json()
        first = sync(own, storage["id"], moto.log_path, pipeline.bucket)
        assert first["created"] == existing, first
        print(
            f"setup: Label Studio's first sync of {existing:,} objects: {first['created']:,} tasks in "
            f"{seconds(first['seconds'])}, {first['lists']}"
        )

        new_keys = [f"images/new/{i:06d}.png" for i in range(new)]
        added = put_objects(s3, pipeline.bucket, new_keys, body)
        new_images = [ImageRef(pipeline.bucket, key, added[key]) for key in new_keys]
        print(f"setup: {new:,} new objects put; the bucket holds {existing + new:,} under images/")

        # (a) the pipeline: a fresh backend (as a cold Lambda would build it) and the real Launcher.
        api_requests.clear()
        launcher = pipeline.launcher()
        started = time.perf_counter()
        outcomes = launcher.launch(new_images)
        launch_seconds = time.perf_counter() - started
        assert all(outcome.ok for outcome in outcomes.values()), [o for o in outcomes.values() if not o.ok][:3]
        requests_made = list(api_requests)
        label_studio_seconds = sum(spent for _kind, spent in requests_made)
        jobs = sorted({str(outcome.job_name) for outcome in outcomes.values()})
        listed = all_tasks(own, pipeline.project_id)
        pipeline_tasks = [task for task in listed if task["data"].get(TaskData.JOB) in jobs]
        pipeline_refs = Counter(str(task["data"][TaskData.IMAGE]) for task in pipeline_tasks)
        assert len(pipeline_tasks) == new and len(pipeline_refs) == new, (len(pipeline_tasks), len(pipeline_refs))
        assert set(pipeline_refs) == {image.source_ref for image in new_images}
        assert task_total(own, pipeline.project_id) == existing + new
        kinds = Counter(kind for kind, _spent in requests_made)
        print(
            f"pipeline (Launcher, maxImagesPerJob {size}): {seconds(launch_seconds)} whole launch, of which Label "
            f"Studio {seconds(label_studio_seconds)}; {len(requests_made)} API requests "
            f"({', '.join(f'{count} {kind}' for kind, count in sorted(kinds.items()))}); "
            f"{len(pipeline_tasks):,} tasks created in {len(jobs)} job(s), no duplicate"
        )

        # (b) Label Studio's own way: one sync of the storage, which now sees the new objects too.
        second = sync(own, storage["id"], moto.log_path, pipeline.bucket)
        synced = all_tasks(own, project["id"])
        refs = Counter(str(task["data"].get(TaskData.IMAGE, task["data"].get(DATA_UNDEFINED_NAME))) for task in synced)
        duplicates = sum(count - 1 for count in refs.values())
        assert second["created"] == new and len(synced) == existing + new and duplicates == 0, (second, duplicates)
        assert {f"s3://{pipeline.bucket}/{key}" for key in new_keys} <= set(refs)
        print(
            f"Label Studio (S3 storage sync): {seconds(second['seconds'])} from POST .../sync to status "
            f"{second['status']!r}; {second['requests']} API requests (1 sync, {second['requests'] - 1} status "
            f"poll(s)); {second['created']:,} tasks created ({second['existed']:,} keys found already synced), no "
            f"duplicate; {second['lists']} over {existing + new:,} keys (moto's server log)"
        )
        third = sync(own, storage["id"], moto.log_path, pipeline.bucket)
        print(
            f"Label Studio, one more sync with nothing new: {seconds(third['seconds'])}, {third['created']} tasks "
            f"created, {third['lists']} (every sync lists the whole prefix again)"
        )
        print(
            f"ratio: pipeline / Label Studio sync: {ratio(launch_seconds, second['seconds'])} time (whole launch, "
            f"moto's DynamoDB included), {ratio(label_studio_seconds, second['seconds'])} time (Label Studio's "
            f"share), {ratio(len(requests_made), second['requests'])} requests"
        )


def sync(own: OwnWay, storage_id: int, moto_log: Path, bucket: str) -> dict[str, Any]:
    """POST .../sync, then GET the storage until its status says done. On Community (no Redis) the POST runs the
    sync inside the request (io_storages/base_models.py, ImportStorage.sync: import_sync_background is called
    directly when redis_connected() is false), so one poll finds it done."""
    own.count = 0
    log_start = log_size(moto_log)
    started = time.perf_counter()
    own.call("POST", f"/api/storages/s3/{storage_id}/sync")
    while True:
        state = own.call("GET", f"/api/storages/s3/{storage_id}").json()
        if state["status"] in SYNC_DONE or state["status"] == SYNC_FAILED:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if state["status"] == SYNC_FAILED:
        raise RuntimeError(f"the sync failed: {state.get('traceback')}")
    time.sleep(0.3)  # moto's log is copied by a thread
    with moto_log.open("rb") as log:
        log.seek(log_start)
        lines = log.read().decode(errors="replace").splitlines()
    # ListObjects pages (boto3's bucket.objects.filter in S3ImportStorageBase.iter_objects, up to 1,000 keys each) and
    # ListObjectsV2 with MaxKeys=1 (S3StorageMixin.validate_connection): io_storages/s3/models.py.
    lists = [line for line in lines if f'"GET /{bucket}?' in line and ("prefix=" in line or "list-type" in line)]
    checks = sum(1 for line in lists if "max-keys=1&" in line or line.endswith("max-keys=1"))
    return {
        "seconds": elapsed,
        "requests": own.count,
        "status": state["status"],
        "created": int(state.get("last_sync_count") or 0),
        "existed": int((state.get("meta") or {}).get("tasks_existed") or 0),
        "lists": f"{len(lists)} S3 LIST requests ({len(lists) - checks} listing pages, {checks} MaxKeys=1 checks)",
    }


# --- 2. export --------------------------------------------------------------------------------------------------

EXPORT_JOB = "lsbox-export-benchmark"


def annotated_tasks(bucket: str, count: int, labels: list[str], seed: int = 7) -> tuple[list[dict[str, Any]], int]:
    """Tasks as the pipeline imports them, each with one submitted annotation of 1-3 rectangles (percent of a real
    image size, inside the image); and the number of boxes."""
    from labeling_pipeline.backends.label_studio.service import task_data
    from labeling_pipeline.images import ImageRef
    from tests.label_studio.pipeline_world import rectangle

    rng = random.Random(seed)
    tasks, boxes = [], 0
    for index in range(count):
        width, height = rng.choice(SIZES)
        results = []
        for number in range(rng.randint(1, 3)):
            w, h = rng.uniform(2, 40), rng.uniform(2, 40)
            x, y = rng.uniform(0, 100 - w), rng.uniform(0, 100 - h)
            result = rectangle(x, y, w, h, rng.choice(labels), (width, height))
            results.append({"id": f"r{index}x{number}", **result})
        boxes += len(results)
        image = ImageRef(bucket, f"images/export/{index:06d}.jpg", f"v{index}")
        tasks.append({"data": task_data(image, EXPORT_JOB), "annotations": [{"result": results}]})
    return tasks, boxes


def run_export_child(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--export-child", json.dumps(job)], check=False, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"the pipeline's export failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def exports(moto: Any, server: Any, counts: list[int], page_sizes: list[int]) -> None:
    for count in counts:
        export(moto, server, count, page_sizes)


def export(moto: Any, server: Any, count: int, page_sizes: list[int]) -> None:
    """The job end of one job (describe_job, read_results, the three formats in one pass, uploaded) against Label
    Studio's own export of the same tasks in JSON, COCO, YOLO and VOC; then the re-export after one changed answer."""
    from labeling_pipeline.backends.label_studio.job_index import LATE_COMMIT_MARGIN
    from labeling_pipeline.backends.label_studio.results import TaskData
    from labeling_pipeline.backends.label_studio.service import LabelStudioBackend
    from labeling_pipeline.names import EnvironmentVariable as Env
    from tests.label_studio.pipeline_world import REGION, label_studio_pipeline, rectangle

    print(f"\n== 2. Export: {count:,} annotated tasks (1-3 boxes each) in one job")
    with label_studio_pipeline(moto, server, f"Export {count}") as pipeline:
        labels = list(pipeline.settings.labels)
        tasks, boxes = annotated_tasks(pipeline.bucket, count, labels)
        api = long_api(server.url, server.token)
        started = time.perf_counter()
        for start in range(0, count, IMPORT_CHUNK):
            api.import_tasks(pipeline.project_id, tasks[start : start + IMPORT_CHUNK])
        imported = time.monotonic()
        print(
            f"setup: {count:,} tasks with their annotations ({boxes:,} boxes) imported in "
            f"{seconds(time.perf_counter() - started)}"
        )
        del tasks

        # (a) Label Studio's own export, one format at a time, with the server's memory sampled.
        own = OwnWay(server.url, server.token)
        theirs: dict[str, dict[str, Any]] = {}
        for fmt in EXPORT_TYPES:
            with sampled_rss(server.pid) as memory, tempfile.TemporaryFile() as body:
                started = time.perf_counter()
                answer = own.session.get(
                    f"{server.url}/api/projects/{pipeline.project_id}/export",
                    params={"exportType": fmt, "download_resources": "false", "download_all_tasks": "true"},
                    stream=True,
                    timeout=LONG_TIMEOUT,
                )
                answer.raise_for_status()
                for piece in answer.iter_content(1 << 20):
                    body.write(piece)
                elapsed = time.perf_counter() - started
                size = body.tell()
                body.seek(0)
                found = check_label_studio_export(fmt, body.read())
            if (found["images"], found["boxes"]) != (count, boxes):
                found["summary"] += f" (NOT the {count:,} images and {boxes:,} boxes imported)"
            theirs[fmt] = {"seconds": elapsed, "bytes": size, **memory, **found}
            print(
                f"Label Studio {fmt}: {seconds(elapsed)}, {size / 1e6:.1f} MB; server RSS {memory['before']:.0f} MB "
                f"before, peak {memory['peak']:.0f} MB (+{memory['peak'] - memory['before']:.0f} MB; "
                f"{memory['children']:.0f} short-lived child processes not counted); {found['summary']}"
            )
        total = sum(result["seconds"] for result in theirs.values())
        peak = max(result["peak"] for result in theirs.values())
        grown = max(result["peak"] - result["before"] for result in theirs.values())
        print(f"Label Studio, the four formats: {seconds(total)}, peak server RSS {peak:.0f} MB (+{grown:.0f} MB)")

        # (b) The job's index and task shards, as the job-events function keeps them while answers arrive (each
        # webhook reads the tasks changed since the one before): built here in one read, as for a job started before
        # indexes were kept. As at a real job's end, the last answers are older than the margin a read keeps for
        # late commits when that read is made.
        wait = LATE_COMMIT_MARGIN.total_seconds() + 5 - (time.monotonic() - imported)
        if wait > 0:
            print(f"(waiting {wait:.0f} s: the last answers are {LATE_COMMIT_MARGIN.total_seconds():.0f} s old)")
            time.sleep(wait)
        s3 = s3_client(moto.url, REGION)
        backend = LabelStudioBackend(long_api(server.url, server.token), s3, pipeline.settings, bucket=pipeline.bucket)
        started = time.perf_counter()
        backend.describe_job(EXPORT_JOB)
        print(
            f"the job's index and task shards built in one full read (a job without them; the webhooks keep them as "
            f"answers arrive): {seconds(time.perf_counter() - started)}"
        )

        # (c) The pipeline's job end, in a child process.
        job = {
            "url": server.url,
            "token": server.token,
            "moto": moto.url,
            "bucket": pipeline.bucket,
            "settings": pipeline.environment[Env.PIPELINE_SETTINGS],
            "region": REGION,
        }
        child = run_export_child(job)
        work = child["rss_peak"] - child["rss_start"]
        ours = check_pipeline_export(s3, pipeline.bucket)
        assert ours == {"images": count, "boxes": boxes, "yolo_files": count, "voc_files": count}, ours
        print(
            f"pipeline job end (describe_job + read_results -> write_exports, COCO+YOLO+VOC in one pass, uploaded to "
            f"S3): {seconds(child['wall'])} wall (describe_job {seconds(child['describe'])}; tasks read through the "
            f"export endpoint, tasks.jsonl and the three formats written {seconds(child['write'])}; exports uploaded "
            f"{seconds(child['upload'])}; {child['requests']} API requests); peak RSS {child['rss_peak']:.0f} MB, "
            f"{child['rss_start']:.0f} MB after imports, so {work:.0f} MB for the work"
        )
        print(f"         checked: coco.json {count:,} images, {boxes:,} annotations; {count:,} YOLO and VOC files")
        print(
            f"ratio: pipeline job end (three formats, one pass) / Label Studio (four exports): "
            f"{ratio(child['wall'], total)} time ({total / child['wall']:.1f}x faster); peak RSS "
            f"{ratio(child['rss_peak'], peak)} ({child['rss_peak']:.0f} / {peak:.0f} MB), memory for the work "
            f"{ratio(work, grown)} ({work:.0f} / {grown:.0f} MB); against Label Studio's COCO, YOLO and VOC alone: "
            f"{ratio(child['wall'], total - theirs['JSON']['seconds'])} time"
        )

        # (d) One answer changed after the export, then the job end again (what a webhook's re-export does).
        first = next(iter(api.tasks(pipeline.project_id, {TaskData.JOB: EXPORT_JOB}, with_annotations=True)))
        annotation = first["annotations"][0]
        moved = rectangle(1, 1, 10, 10, labels[0], (first["annotations"][0]["result"][0]["original_width"], 100))
        own.call("PATCH", f"/api/annotations/{annotation['id']}", json={"result": [moved], "lead_time": 2.0})
        again = run_export_child(job)
        changed = check_pipeline_export(s3, pipeline.bucket)
        assert changed["images"] == count, changed
        print(
            f"re-export after one changed answer: {seconds(again['wall'])} wall (describe_job "
            f"{seconds(again['describe'])}, which read the changed task and kept it in its shard; "
            f"{again['exported_ids']} task(s) read through the export endpoint; {again['requests']} API requests); "
            f"peak RSS {again['rss_peak']:.0f} MB; against the first job end: {ratio(again['wall'], child['wall'])}, "
            f"against Label Studio's four exports: {ratio(again['wall'], total)}"
        )

        # After the rest, so that the server-memory figures are as before.
        read: dict[int, float] = {}
        for size in page_sizes:
            api.task_page_size = size
            started = time.perf_counter()
            listed = sum(1 for _ in api.tasks(pipeline.project_id, {TaskData.JOB: EXPORT_JOB}, with_annotations=True))
            read[size] = time.perf_counter() - started
            assert listed == count, (listed, count)
        if read:
            first_size = next(iter(read))
            by_size = [f"{size:,}: {seconds(took)} ({ratio(took, read[first_size])})" for size, took in read.items()]
            print(
                "the job's tasks read alone through the data manager (the job end's read before the export "
                "endpoint), by page size: " + "; ".join(by_size) + f" against pages of {first_size:,}"
            )


def reads(moto: Any, server: Any, count: int) -> None:
    """The ways Label Studio 1.23.2 offers to read one job's answers back, on the same job, and what each change to an
    answer leaves in the task's ``updated_at`` (what a read of only the changed tasks would filter on)."""
    from labeling_pipeline.backends.label_studio.job_index import JobIndex
    from labeling_pipeline.backends.label_studio.results import TaskData
    from labeling_pipeline.backends.label_studio.service import task_data
    from labeling_pipeline.images import ImageRef
    from tests.label_studio.pipeline_world import label_studio_pipeline

    print(f"\n== 4. Reading one job's answers: {count:,} annotated tasks (1-3 boxes each)")
    with label_studio_pipeline(moto, server, "Reads") as pipeline:
        labels = list(pipeline.settings.labels)
        tasks, _boxes = annotated_tasks(pipeline.bucket, count, labels)
        api = long_api(server.url, server.token)
        for start in range(0, count, IMPORT_CHUNK):
            api.import_tasks(pipeline.project_id, tasks[start : start + IMPORT_CHUNK])
        del tasks
        own = OwnWay(server.url, server.token)
        job = {TaskData.JOB: EXPORT_JOB}
        figures: dict[str, float] = {}
        job_filter = {
            "filter": f"filter:tasks:data.{TaskData.JOB}",
            "operator": "equal",
            "type": "String",
            "value": EXPORT_JOB,
        }

        def task_list(*filters: dict[str, Any], page_size: int, **options: Any) -> dict[str, Any]:
            """One page of the data manager's task list: the job's tasks that pass `filters` too."""
            query = {"filters": {"conjunction": "and", "items": [job_filter, *filters]}}
            if "ordering" in options:
                query["ordering"] = options.pop("ordering")
            params = {"project": pipeline.project_id, "page_size": page_size, "query": json.dumps(query), **options}
            return dict(own.call("GET", "/api/tasks", params=params).json())

        def timed(name: str, read: Callable[[], int]) -> None:
            started = time.perf_counter()
            found = read()
            figures[name] = time.perf_counter() - started
            print(f"{name}: {seconds(figures[name])} ({found:,} tasks)")

        timed(
            "data manager, every field (today's read)",
            lambda: sum(1 for _ in api.tasks(pipeline.project_id, job, with_annotations=True)),
        )
        rows: list[dict[str, Any]] = []

        def list_rows() -> int:
            rows.extend(api.tasks(pipeline.project_id, job, with_annotations=False))
            return len(rows)

        timed("data manager, task rows only (ids, counters, updated_at)", list_rows)
        ids = [int(row["id"]) for row in rows]

        def export_by_ids(chunk: int) -> int:
            found = 0
            for start in range(0, len(ids), chunk):
                answer = own.call(
                    "GET",
                    f"/api/projects/{pipeline.project_id}/export",
                    params=[("exportType", "JSON"), ("download_all_tasks", "true")]
                    + [("ids[]", str(task_id)) for task_id in ids[start : start + chunk]],
                )
                found += len(answer.json())
            return found

        for chunk in (100, 500):
            timed(f"export endpoint, JSON, ids[] by {chunk}", functools.partial(export_by_ids, chunk))

        def whole_export() -> int:
            answer = own.call(
                "GET",
                f"/api/projects/{pipeline.project_id}/export",
                params={"exportType": "JSON", "download_all_tasks": "true"},
            )
            return len(answer.json())

        timed("export endpoint, JSON, the whole project", whole_export)

        # What moves a task's updated_at past the job's newest one (a read of only the changed tasks would keep that
        # watermark): each way an answer changes, on its own task, then the tasks updated after the watermark.
        watermark = max(str(row["updated_at"]) for row in rows)

        def updated_since(mark: str) -> list[dict[str, Any]]:
            value = mark.replace("+00:00", "Z")
            after = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}
            return list(task_list(after, page_size=1000, fields="all", resolve_uri="false")["tasks"])

        def annotation_of(task_id: int) -> dict[str, Any]:
            return dict(own.call("GET", f"/api/tasks/{task_id}").json()["annotations"][0])

        changes: dict[str, int] = {}
        time.sleep(0.01)
        changes["updated (PATCH /api/annotations/<id>, as the editor saves)"] = ids[0]
        kept = annotation_of(ids[0])
        own.call("PATCH", f"/api/annotations/{kept['id']}", json={"result": kept["result"][:1]})
        changes["deleted (DELETE /api/annotations/<id>)"] = ids[1]
        own.call("DELETE", f"/api/annotations/{annotation_of(ids[1])['id']}")
        changes["added (POST /api/tasks/<id>/annotations)"] = ids[2]
        own.call("POST", f"/api/tasks/{ids[2]}/annotations", json={"result": [], "lead_time": 3.0})
        changes["deleted in bulk (data manager action delete_tasks_annotations)"] = ids[3]
        own.call(
            "POST",
            "/api/dm/actions",
            params={"id": "delete_tasks_annotations", "project": pipeline.project_id},
            json={"selectedItems": {"all": False, "included": [ids[3]]}},
        )
        started = time.perf_counter()
        found = {int(task["id"]) for task in updated_since(watermark)}
        figures["data manager, every field, updated since the watermark"] = time.perf_counter() - started
        print(
            f"data manager, every field, updated since the watermark: "
            f"{seconds(figures['data manager, every field, updated since the watermark'])} ({len(found)} tasks)"
        )
        for change, task_id in changes.items():
            print(f"   annotation {change}: {'found' if task_id in found else 'NOT found'} by updated_at")

        # The job's newest updated_at in one request (the watermark a later read would start from), then annotations
        # made from predictions in bulk (the data manager's action) and a skip.
        def newest_updated_at() -> str:
            return str(task_list(page_size=1, ordering=["-tasks:updated_at"])["tasks"][0]["updated_at"])

        own.call(
            "POST",
            "/api/predictions/",
            json={"task": ids[3], "result": kept["result"][:1], "model_version": "benchmark"},
        )
        started = time.perf_counter()
        second_watermark = newest_updated_at()
        figures["data manager, the job's newest updated_at (one request)"] = time.perf_counter() - started
        print(f"data manager, the job's newest updated_at (one request): {seconds(time.perf_counter() - started)}")
        time.sleep(0.01)
        own.call(
            "POST",
            "/api/dm/actions",
            params={"id": "predictions_to_annotations", "project": pipeline.project_id},
            json={"selectedItems": {"all": False, "included": [ids[3]]}},
        )
        own.call("POST", f"/api/tasks/{ids[1]}/annotations", json={"result": [], "was_cancelled": True})
        found = {int(task["id"]) for task in updated_since(second_watermark)}
        for change, task_id in {
            "made from a prediction in bulk (data manager action predictions_to_annotations)": ids[3],
            "skipped (POST /api/tasks/<id>/annotations, was_cancelled)": ids[1],
        }.items():
            print(f"   annotation {change}: {'found' if task_id in found else 'NOT found'} by updated_at")

        # The tasks still waiting for an answer, counted by Label Studio (completed_at is set once a task is labeled,
        # label_studio/data_manager/managers.py annotate_completed_at) against the pipeline's own count from the rows.
        def waiting() -> int:
            empty = {"filter": "filter:tasks:completed_at", "operator": "empty", "type": "Datetime", "value": True}
            return int(task_list(empty, page_size=1)["total"])

        unanswered = ImageRef(pipeline.bucket, "images/export/unanswered.jpg", "v-unanswered")
        api.import_tasks(pipeline.project_id, [{"data": task_data(unanswered, EXPORT_JOB)}])
        started = time.perf_counter()
        left = waiting()
        figures["data manager, the job's tasks still waiting (one request)"] = time.perf_counter() - started
        print(f"data manager, the job's tasks still waiting (one request): {seconds(time.perf_counter() - started)}")

        rows_now = api.tasks(pipeline.project_id, job, with_annotations=False)
        counted = JobIndex.build(pipeline.project_id, None, rows_now, 1).left
        print(
            f"   tasks still waiting (one task imported unanswered): {left} by Label Studio's completed_at, "
            f"{counted} by the pipeline's own count"
        )

        def counts() -> int:
            answer = task_list(page_size=1)
            print(f"   job totals: {answer['total']} tasks, {answer['total_annotations']} annotations")
            return int(answer["total"])

        timed("data manager, the job's totals (one request)", counts)
        base = figures["data manager, every field (today's read)"]
        print("against today's read: " + "; ".join(f"{name} {took / base:.3f}x" for name, took in figures.items()))


def check_pipeline_export(s3: Any, bucket: str) -> dict[str, int]:
    prefix = f"exports/{EXPORT_JOB}/"
    coco = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "coco.json")["Body"].read())

    def members(name: str, folder: str) -> int:
        raw = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
            return sum(1 for member in archive if member.isfile() and member.name.startswith(folder))

    return {
        "images": len(coco["images"]),
        "boxes": len(coco["annotations"]),
        "yolo_files": members("yolo.tar.gz", "labels/"),
        "voc_files": members("voc.tar.gz", "Annotations/"),
    }


def check_label_studio_export(fmt: str, raw: bytes) -> dict[str, Any]:
    if fmt == "JSON":
        tasks = json.loads(raw)
        boxes = sum(len(annotation["result"]) for task in tasks for annotation in task["annotations"])
        return {"images": len(tasks), "boxes": boxes, "summary": f"{len(tasks):,} tasks, {boxes:,} rectangles"}
    if fmt == "COCO":
        if raw[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                raw = archive.read(next(name for name in archive.namelist() if name.endswith(".json")))
        coco = json.loads(raw)
        images, boxes = len(coco["images"]), len(coco["annotations"])
        return {"images": images, "boxes": boxes, "summary": f"{images:,} images, {boxes:,} annotations"}
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        names = archive.namelist()
        if fmt == "YOLO":
            files = [name for name in names if name.startswith("labels/") and name.endswith(".txt")]
            boxes = sum(len(archive.read(name).splitlines()) for name in files)
            return {"images": len(files), "boxes": boxes, "summary": f"{len(files):,} label files, {boxes:,} boxes"}
        files = [name for name in names if name.startswith("Annotations/") and name.endswith(".xml")]
        boxes = sum(archive.read(name).count(b"<object>") for name in files)
        return {"images": len(files), "boxes": boxes, "summary": f"{len(files):,} XML files, {boxes:,} objects"}


def export_child(job: dict[str, Any]) -> None:
    """The job end's export path (job_results.JobFinisher.handle and _export), in a process of its own."""
    import boto3

    from labeling_pipeline.backends.label_studio.service import LabelStudioBackend
    from labeling_pipeline.backends.registry import settings_model
    from labeling_pipeline.exports.formats import ExportStats
    from labeling_pipeline.job_results import EXPORT_FILES, write_exports
    from labeling_pipeline.names import EXPORTS_PREFIX, JobState
    from labeling_pipeline.settings import validate_json

    time_requests()
    settings = validate_json(settings_model("label-studio"), job["settings"])
    s3 = boto3.client("s3", endpoint_url=job["moto"], region_name=job["region"])
    backend = LabelStudioBackend(long_api(job["url"], job["token"]), s3, settings, bucket=job["bucket"])
    rss_start = status_mb("VmRSS")
    started = time.perf_counter()
    description = backend.describe_job(EXPORT_JOB)
    assert description.state == JobState.COMPLETED, description
    listed = time.perf_counter()
    stats = ExportStats()
    images = backend.read_results(description, stats.read)
    prefix = f"{EXPORTS_PREFIX}{EXPORT_JOB}/"
    with tempfile.TemporaryDirectory(prefix="export-") as work:
        out = Path(work)
        write_exports(images, out, list(settings.labels), EXPORT_JOB, stats)
        written = time.perf_counter()
        for name, content_type in EXPORT_FILES.items():
            s3.upload_file(str(out / name), job["bucket"], prefix + name, ExtraArgs={"ContentType": content_type})
    summary = {"status": description.state.value, **stats.summary(EXPORT_JOB)}
    s3.put_object(Bucket=job["bucket"], Key=prefix + "summary.json", Body=json.dumps(summary).encode())
    ended = time.perf_counter()
    print(
        json.dumps(
            {
                "wall": ended - started,
                "describe": listed - started,
                "write": written - listed,
                "upload": ended - written,
                "requests": len(api_requests),
                "exported_ids": sum(exported_task_ids),
                "rss_start": rss_start,
                "rss_peak": status_mb("VmHWM"),
            }
        )
    )


def status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except (OSError, ValueError):
        pass
    return found


def server_processes(pid: int) -> list[int]:
    """uwsgi's master and its workers (an export runs in one worker); not the workers' own short-lived children."""
    workers = [child for child in children(pid) if "uwsgi" in command_line(child)]
    return [pid, *workers]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def largest_rss(pids: list[int]) -> float:
    found = 0.0
    for pid in pids:
        try:
            found = max(found, status_mb("VmRSS", pid))
        except OSError:
            continue
    return found


@contextmanager
def sampled_rss(pid: int | None) -> Iterator[dict[str, float]]:
    """The largest RSS of the server's processes (uwsgi's master and workers) before, and its peak while the block
    runs, sampled every SAMPLE_SECONDS. The workers' children during an export are `git describe` shells
    (label_studio/core/version.py get_git_version, called by data_export/models.py DataExport.save_export_files), and a
    fork's RSS counts the parent's pages again: they are counted, not measured."""
    assert pid is not None
    processes = server_processes(pid)
    found = {"before": largest_rss(processes), "peak": 0.0, "children": 0.0}
    found["peak"] = found["before"]
    seen: set[int] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            found["peak"] = max(found["peak"], largest_rss(processes))
            for process in processes[1:]:
                seen.update(children(process))
            stop.wait(SAMPLE_SECONDS)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found["peak"] = max(found["peak"], largest_rss(processes))
        found["children"] = float(len(seen))


# --- 3. latency -------------------------------------------------------------------------------------------------


def windows() -> tuple[int, int, int]:
    """The deployment's batch size and default batching window, and the smallest window its rule allows for that
    batch size (DeploymentSettings' own validator, tried from 0 up)."""
    from pydantic import ValidationError

    from stacks.deployment_settings import MAX_BATCHING_WINDOW, DeploymentSettings

    batch = int(DeploymentSettings.model_fields["batch_size"].default)
    default = int(DeploymentSettings.model_fields["batching_window_seconds"].default)
    for window in range(MAX_BATCHING_WINDOW + 1):
        try:
            DeploymentSettings.model_validate({"batchSize": batch, "batchingWindowSeconds": window})
        except ValidationError:
            continue
        return batch, default, window
    raise RuntimeError("no batching window is allowed")


def arrivals(count: int, duration: float, seed: int) -> list[float]:
    """A Poisson process of `count` arrivals over `duration` seconds (sorted uniform times)."""
    rng = random.Random(seed)
    return sorted(rng.uniform(0, duration) for _ in range(count))


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)} " + " ".join(f"{value:.2f}" for value in values)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"min {min(values):6.2f}  p50 {cuts[49]:6.2f}  p90 {cuts[89]:6.2f}  p99 {cuts[98]:6.2f}  "
        f"max {max(values):6.2f} s"
    )


def latency_run(moto: Any, server: Any, folder: Path, window: int, batch: int, times: list[float]) -> dict[str, Any]:
    from sandbox.lambda_runtime import LocalLambda
    from sandbox.provision import FunctionSpec, QueueEventSource
    from tests.label_studio.pipeline_world import REGION, label_studio_pipeline

    with label_studio_pipeline(moto, server, f"Latency {window}s") as pipeline:
        sqs = pipeline.client("sqs")
        queue_url = pipeline.environment["UPLOAD_QUEUE_URL"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        function = FunctionSpec(
            logical_id="Launcher",
            name=f"launcher-{window}s",
            handler="labeling_pipeline.handler.lambda_handler",
            environment=dict(pipeline.environment),
            timeout_seconds=300,
            memory_mb=512,
        )
        source = QueueEventSource(queue_url, queue_arn, function, batch, window, report_batch_item_failures=True)
        runtime = LocalLambda(sqs, REGION, folder / "logs", "benchmark")
        # As the stack sets it (stacks/constructs/launch_pipeline.py: 6 x the launcher's 300 s timeout): with the
        # queue's default 30 s, messages would come back into the same 60 s batching window.
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(UPLOAD_QUEUE_VISIBILITY)})
        # S3's test event (sent when the notification was configured) would open the first batching window early.
        sqs.purge_queue(QueueUrl=queue_url)
        own = OwnWay(server.url, server.token)
        s3 = s3_client(moto.url, REGION)
        body = tiny_png()
        uploaded: dict[str, float] = {}
        counts: list[tuple[float, int]] = []
        stop = threading.Event()
        origin = time.monotonic() + 1.0

        def upload() -> None:
            for index, at in enumerate(times):
                stop.wait(max(0.0, origin + at - time.monotonic()))
                if stop.is_set():
                    return
                key = f"images/latency/{index:05d}.png"
                s3.put_object(Bucket=pipeline.bucket, Key=key, Body=body, ContentType="image/png")
                uploaded[key] = time.monotonic()

        def watch() -> None:
            while not stop.is_set():
                try:
                    total = task_total(own, pipeline.project_id)
                except Exception:  # a slow answer is retried at the next tick; the next count covers it
                    total = -1
                if total >= 0:
                    counts.append((time.monotonic(), total))
                stop.wait(WATCH_SECONDS)

        threads = [threading.Thread(target=upload, daemon=True), threading.Thread(target=watch, daemon=True)]
        for thread in threads:
            thread.start()
        deadline = origin + times[-1] + window + 180
        try:
            while time.monotonic() < deadline:
                if len(uploaded) == len(times) and counts and counts[-1][1] >= len(times):
                    break
                runtime.poll_queue_source(source)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            runtime.close()
        tasks = sorted(all_tasks(own, pipeline.project_id), key=lambda task: int(task["id"]))
        keys = [str(task["data"]["image"]).removeprefix(f"s3://{pipeline.bucket}/") for task in tasks]
        assert len(keys) == len(set(keys)) == len(times) == len(uploaded), (len(keys), len(set(keys)), len(uploaded))
        latencies = []
        for rank, key in enumerate(keys, 1):
            seen = next(at for at, total in counts if total >= rank)
            latencies.append(seen - uploaded[key])
        invocations = [invocation for invocation in runtime.invocations if invocation.event_count]
        failed = [invocation for invocation in invocations if invocation.error]
        dead = pipeline.dead_letters()
        assert not failed and not dead, (failed[:2], dead[:2])
        return {
            "latencies": latencies,
            "invocations": len(invocations),
            "messages": sum(invocation.event_count for invocation in invocations),
            "handler_seconds": sum(invocation.seconds for invocation in invocations),
            "wall": time.monotonic() - origin,
        }


def latency(moto: Any, server: Any, folder: Path, uploads: int, duration: float, seed: int) -> None:
    from labeling_pipeline import handler

    batch, default, smallest = windows()
    times = arrivals(uploads, duration, seed)
    print(
        f"\n== 3. Upload to a task a worker can open: {uploads} uploads, Poisson arrivals over {duration:.0f} s "
        f"(seed {seed}), batch size {batch}; batching window {default} s (default) and {smallest} s (smallest allowed "
        f"for batch size {batch}: stacks/deployment_settings.py)"
    )
    results = {}
    (folder / "logs").mkdir(exist_ok=True)
    with (folder / "logs" / "launcher.log").open("a", encoding="utf-8") as log:
        # The handler's log lines go to a file, as the function's log would: its Powertools logger was made when
        # pipeline_world imported it, with this terminal's stdout (sandbox.lambda_runtime redirects only the
        # imports it makes itself).
        for log_handler in logging.getLogger(handler.logger.service).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                log_handler.setStream(log)
        for window in (default, smallest):
            result = latency_run(moto, server, folder, window, batch, times)
            results[window] = result
            print(
                f"window {window:3d} s: {percentiles(result['latencies'])}  ({result['invocations']} launcher "
                f"invocations, {result['messages'] / max(1, result['invocations']):.1f} uploads each, handler "
                f"{seconds(result['handler_seconds'])} in all; run {seconds(result['wall'])})"
            )
        for log_handler in logging.getLogger(handler.logger.service).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                log_handler.setStream(sys.stdout)
    medians = [statistics.median(results[window]["latencies"]) for window in (default, smallest)]
    print(
        f"ratio: median latency, window {default} s / window {smallest} s: {ratio(medians[0], medians[1])} "
        f"({medians[0]:.2f} / {medians[1]:.2f} s)"
    )


def code_state() -> str:
    """The commit, and whether the pipeline's code has uncommitted changes (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "--no-optional-locks", "status", "--porcelain", "--", "lambda"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    return f"code: {head}" + (f" with {len(changed)} uncommitted file(s) under lambda/" if changed else "")


# --- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--export-child":
        export_child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--existing", type=int, default=10_000, help="tasks already in the project (intake)")
    parser.add_argument("--new", type=int, default=1_000, help="new uploads (intake)")
    parser.add_argument(
        "--export", default="10000", help="annotated tasks to export, a job of each size (comma-separated)"
    )
    parser.add_argument("--latency-uploads", type=int, default=200, help="uploads in each latency run")
    parser.add_argument("--latency-seconds", type=float, default=180.0, help="the span of their arrivals")
    parser.add_argument("--seed", type=int, default=1, help="seed of the arrival times")
    parser.add_argument(
        "--page-sizes", default="100,1000", help="task-list page sizes to read the export's job at (comma-separated)"
    )
    parser.add_argument("--parts", default="intake,export,latency", help="which comparisons, comma-separated")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    page_sizes = [int(size) for size in args.page_sizes.split(",") if size]
    export_sizes = [int(size) for size in args.export.split(",") if size]
    time_requests()

    from sandbox.emulator import MotoServer
    from sandbox.label_studio_server import LabelStudioServer, installed_version

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="label-studio-side-by-side-") as work:
        folder = Path(work)
        with MotoServer(folder / "moto.log") as moto, LabelStudioServer(folder / "label-studio") as server:
            print(
                f"Label Studio {installed_version()} {server.url} (pid {server.pid}, SQLite, uwsgi as deployed), "
                f"moto {moto.url}; {os.cpu_count()} cores; {code_state()}"
            )
            steps: list[tuple[str, Callable[[], None]]] = [
                ("intake", lambda: intake(moto, server, args.existing, args.new)),
                ("export", lambda: exports(moto, server, export_sizes, page_sizes)),
                ("reads", lambda: reads(moto, server, export_sizes[0])),
                (
                    "latency",
                    lambda: latency(moto, server, folder, args.latency_uploads, args.latency_seconds, args.seed),
                ),
            ]
            for name, step in steps:
                if name in parts:
                    step()
    print(f"\nthe whole run: {seconds(time.perf_counter() - began)}")


if __name__ == "__main__":
    main()
