"""Export throughput and peak memory: the streaming writers against the naive approach, in the same run.

Run: .venv/bin/python benchmarks/export_throughput.py [lines ...]      (default: 100000 20000)

For each size a synthetic output manifest is written (0-5 boxes per image, some spilling past the image),
and every measurement runs in a child process of its own, pinned to one core when os.sched_setaffinity
exists. Each reports CPU seconds (user + system: the system part is the kernel's, mostly file creation
for folders), lines per CPU second, peak RSS (VmHWM) and the RSS after imports, before any work. Runs
that write no folder are repeated (REPEATS) and the least CPU is kept, since other processes on a shared
machine only ever add to it; the peak RSS is the highest of the repeats.

- streaming: the project's code. COCO, YOLO and VOC as the CLI writes them (coco.json, folders), YOLO and
  VOC as single archives, and all three as the job-events Lambda writes them (the Ground Truth backend's
  read_results over botocore's StreamingBody, as it reads S3, into job_results.write_exports).
- floor: as many files as the YOLO folder holds, created with os.open/os.write/os.close and nothing else:
  the filesystem's share of a folder export.
- naive: the obvious approach: read the whole manifest into a list with json.loads, build every output in
  memory (a COCO dict, every label text, an ElementTree per VOC file), then write it all (json.dump,
  Path.write_text, tarfile for the archives).

A 2,000-line run first checks that the naive and the streaming outputs are identical, so that the ratios
compare two ways of producing the same files.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]

LABELS = ["Dog", "Cat"]
ATTRIBUTE = "labels"
CHECK_LINES = 2_000
REPEATS = 3


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


# --- streaming: the project's code ---------------------------------------------------------------------


class _ManifestBucket:
    """The one S3 call read_results makes, answered from the local manifest as botocore answers it."""

    def __init__(self, manifest: Path) -> None:
        self._manifest = manifest
        self.opened: list[Any] = []

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        from botocore.response import StreamingBody

        raw = self._manifest.open("rb")
        self.opened.append(raw)
        return {"Body": StreamingBody(raw, self._manifest.stat().st_size)}


def lambda_export(manifest: Path, out: Path) -> Any:
    """What the job-events Lambda does with a completed job's results: the backend streams the output
    manifest into labeled images, which write_exports turns into every format in one pass."""
    from labeling_pipeline.backends import JobDescription
    from labeling_pipeline.backends.ground_truth.service import GroundTruthBackend
    from labeling_pipeline.backends.registry import settings_model
    from labeling_pipeline.exports.formats import ExportStats
    from labeling_pipeline.job_results import write_exports
    from labeling_pipeline.names import JobState

    settings = settings_model("ground-truth").model_validate({"labels": LABELS, "labelAttributeName": ATTRIBUTE})
    bucket = _ManifestBucket(manifest)
    backend = GroundTruthBackend(None, bucket, settings, region="us-east-1", workteam_arn="", role_arn="")
    description = JobDescription(
        name="bench",
        state=JobState.COMPLETED,
        backend_status="Completed",
        results_uri="s3://example-bucket/output/bench/manifests/output/output.manifest",
        failure_reason=None,
        labeled=0,
        failed_objects=0,
        unlabeled=0,
    )
    stats = ExportStats()
    try:
        return write_exports(backend.read_results(description, stats.read), out, LABELS, "bench", stats)
    finally:
        for raw in bucket.opened:
            raw.close()


def streaming(kind: str, manifest: Path, out: Path) -> int:
    from labeling_pipeline.backends.ground_truth.results import read_output_manifest
    from labeling_pipeline.exports.formats import ExportStats, LabelSpace, export, make_writers

    if kind == "lambda":
        return int(lambda_export(manifest, out).read.lines)
    fmt, _, shape = kind.partition("-")
    labels, stats = LabelSpace(LABELS), ExportStats()
    writers = make_writers([fmt], out, labels, stats, archive=shape == "archive", description="bench")
    with manifest.open("rb") as lines:
        export(read_output_manifest(lines, ATTRIBUTE, stats.read), writers, stats, labels)
    return stats.read.lines


# --- naive: everything in memory, then written -----------------------------------------------------------


def _name(source_ref: str) -> tuple[str, str, str]:
    """The image's id, file name and split, spelled out with pathlib and re (the exports' rule)."""
    key = source_ref.removeprefix("s3://").partition("/")[2].lstrip("/")
    relative = PurePosixPath(key.removeprefix("images/") or key)
    suffix = relative.suffix.lower() if relative.suffix[1:].isascii() and relative.suffix[1:].isalnum() else ""
    stem = str(relative.with_suffix("")) if suffix else str(relative)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))[-100:].strip("._-")
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    image_id = f"{readable}-{digest}" if readable else digest
    return image_id, image_id + suffix, "val" if int(digest, 16) % 100 < 10 else "train"


def _coco_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def naive_images(manifest: Path) -> list[dict[str, Any]]:
    """The whole manifest as a list (json.loads per line), each box clipped to its image as the exports do."""
    with manifest.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    images = []
    for record in records:
        label, metadata = record[ATTRIBUTE], record[f"{ATTRIBUTE}-metadata"]
        size = label["image_size"][0]
        width, height = size["width"], size["height"]
        boxes = []
        for annotation in label["annotations"]:
            raw_left, raw_top = float(annotation["left"]), float(annotation["top"])
            left, top = max(0.0, raw_left), max(0.0, raw_top)
            right = min(float(width), raw_left + float(annotation["width"]))
            bottom = min(float(height), raw_top + float(annotation["height"]))
            if right > left and bottom > top:
                name = metadata["class-map"][str(annotation["class_id"])]
                boxes.append((name, left, top, right - left, bottom - top))
        images.append(
            {
                "source_ref": record["source-ref"],
                "width": width,
                "height": height,
                "depth": size.get("depth", 3),
                "job": metadata["job-name"].removeprefix("labeling-job/"),
                "boxes": boxes,
            }
        )
    return images


def naive_coco(images: list[dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {"info": {"description": "bench"}, "images": [], "annotations": []}
    for image_id, image in enumerate(images, 1):
        document["images"].append(
            {
                "id": image_id,
                "file_name": _name(image["source_ref"])[1],
                "width": image["width"],
                "height": image["height"],
                "source_ref": image["source_ref"],
            }
        )
        for name, left, top, width, height in image["boxes"]:
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": LABELS.index(name) + 1,
                    "bbox": [_coco_number(left), _coco_number(top), _coco_number(width), _coco_number(height)],
                    "area": _coco_number(width * height),
                    "iscrowd": 0,
                }
            )
    document["categories"] = [
        {"id": index + 1, "name": name, "supercategory": "object"} for index, name in enumerate(LABELS)
    ]
    return document


def naive_yolo(images: list[dict[str, Any]], root: Path | None) -> dict[str, str]:
    from labeling_pipeline.exports.formats import DATA_YAML_HEADER, NO_VAL_COMMENT

    files = {}
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for image in images:
        width, height = image["width"], image["height"]
        lines = [
            f"{LABELS.index(name)} {(left + w / 2) / width:.6f} {(top + h / 2) / height:.6f} "
            f"{w / width:.6f} {h / height:.6f}\n"
            for name, left, top, w, h in image["boxes"]
        ]
        image_id, file_name, split = _name(image["source_ref"])
        files[f"labels/{image_id}.txt"] = "".join(lines)
        splits[split].append(f"./images/{file_name}\n")
    files["classes.txt"] = "".join(name + "\n" for name in LABELS)
    files["train.txt"], files["val.txt"] = "".join(splits["train"]), "".join(splits["val"])
    names = "".join(f"  {index}: {json.dumps(name)}\n" for index, name in enumerate(LABELS))
    path = f"path: {json.dumps(str(root))}\n" if root else ""
    val = "val: val.txt\n" if splits["val"] else f"{NO_VAL_COMMENT}val: train.txt\n"
    files["data.yaml"] = f"{DATA_YAML_HEADER}{path}train: train.txt\n{val}nc: {len(LABELS)}\nnames:\n{names}"
    return files


def naive_voc(images: list[dict[str, Any]]) -> tuple[list[tuple[str, ET.Element]], dict[str, str]]:
    documents = []
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for image in images:
        image_id, file_name, split = _name(image["source_ref"])
        splits[split].append(image_id + "\n")
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = file_name
        ET.SubElement(root, "path").text = image["source_ref"]
        ET.SubElement(ET.SubElement(root, "source"), "database").text = f"labeling job {image['job']}"
        size = ET.SubElement(root, "size")
        for tag in ("width", "height", "depth"):
            ET.SubElement(size, tag).text = str(image[tag])
        ET.SubElement(root, "segmented").text = "0"
        for name, left, top, width, height in image["boxes"]:
            obj = ET.SubElement(root, "object")
            for tag, text in (("name", name), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
                ET.SubElement(obj, tag).text = text
            bndbox = ET.SubElement(obj, "bndbox")
            xmin, ymin = round(left + 1), round(top + 1)
            xmax, ymax = max(round(left + width), xmin), max(round(top + height), ymin)
            for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
                ET.SubElement(bndbox, tag).text = str(value)
        documents.append((f"Annotations/{image_id}.xml", root))
    lists = {f"ImageSets/Main/{split}.txt": "".join(ids) for split, ids in splits.items()}
    lists["ImageSets/Main/trainval.txt"] = "".join(splits["train"] + splits["val"])
    return documents, lists


def _voc_text(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _write_folder(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _write_tar(path: Path, files: dict[str, str]) -> None:
    from labeling_pipeline.exports.formats import ARCHIVE_COMPRESSLEVEL

    with tarfile.open(path, "w:gz", compresslevel=ARCHIVE_COMPRESSLEVEL) as archive:
        mtime = int(time.time())
        for relative, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(relative)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            archive.addfile(info, io.BytesIO(data))


def naive(kind: str, manifest: Path, out: Path) -> int:
    images = naive_images(manifest)
    out.mkdir(parents=True, exist_ok=True)
    if kind in ("coco", "lambda"):
        document = naive_coco(images)
    if kind in ("yolo-folder", "lambda"):
        yolo = naive_yolo(images, (out / "yolo").resolve() if kind == "yolo-folder" else None)
    if kind in ("voc-folder", "lambda"):
        documents, lists = naive_voc(images)
        voc = {path: _voc_text(root) for path, root in documents} | lists
    if kind in ("coco", "lambda"):
        with (out / "coco.json").open("w", encoding="utf-8") as target:
            json.dump(document, target, ensure_ascii=False)
    if kind == "yolo-folder":
        _write_folder(out / "yolo", yolo)
    if kind == "voc-folder":
        _write_folder(out / "voc", voc)
    if kind == "lambda":
        _write_tar(out / "yolo.tar.gz", yolo)
        _write_tar(out / "voc.tar.gz", voc)
    return len(images)


# --- measurement -----------------------------------------------------------------------------------------

RUNS: list[tuple[str, str, str]] = [
    ("streaming", "coco", "COCO (coco.json)"),
    ("streaming", "yolo-folder", "YOLO (folder)"),
    ("streaming", "voc-folder", "VOC (folder)"),
    ("floor", "files", "files alone (os.open/write/close)"),
    ("streaming", "yolo-folder-ram", "YOLO (folder in /dev/shm, RAM)"),
    ("streaming", "voc-folder-ram", "VOC (folder in /dev/shm, RAM)"),
    ("streaming", "yolo-archive", "YOLO (yolo.tar.gz)"),
    ("streaming", "voc-archive", "VOC (voc.tar.gz)"),
    ("streaming", "lambda", "all three, as the Lambda"),
    ("naive", "coco", "COCO (coco.json)"),
    ("naive", "yolo-folder", "YOLO (folder)"),
    ("naive", "voc-folder", "VOC (folder)"),
    ("naive", "lambda", "all three, as the Lambda"),
]
COMPARED = ["coco", "yolo-folder", "voc-folder", "lambda"]
# A RAM filesystem, where creating a file costs the kernel little: folder runs there show Python's share.
RAM_DIR = Path("/dev/shm")


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_mb() -> float:
    """This program's high-water mark. VmHWM where /proc exists: ru_maxrss of a child also counts the
    parent's memory at the fork that started it."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    now = _status_mb("VmRSS")
    return now if now is not None else _peak_rss_mb()


def floor(kind: str, manifest: Path, out: Path) -> int:
    """As many files as YOLO writes, in the same place, with 100 bytes each and nothing else: the
    filesystem's share of a folder export."""
    lines = sum(1 for _ in manifest.open("rb"))
    folder = out / "yolo" / "labels" / "set"
    folder.mkdir(parents=True)
    data = b"0 0.500000 0.500000 0.250000 0.250000\n" * 2 + b"1 0.5 0.5 0.25 0.25\n"
    for index in range(lines):
        descriptor = os.open(f"{folder}/{index:06d}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.write(descriptor, data)
        os.close(descriptor)
    return lines


def child(approach: str, kind: str, manifest: Path, out: Path, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # Import what the run needs before the baseline, so that the figures are the work's own.
    if approach == "streaming":
        importlib.import_module("labeling_pipeline.exports.formats")
        importlib.import_module("labeling_pipeline.backends.ground_truth.results")
    if approach == "streaming" and kind == "lambda":
        importlib.import_module("botocore.response")
        importlib.import_module("labeling_pipeline.job_results")
        importlib.import_module("labeling_pipeline.backends.ground_truth")
    run: Callable[[str, Path, Path], int] = {"streaming": streaming, "naive": naive, "floor": floor}[approach]
    rss_start = _rss_mb()
    before, wall = os.times(), time.perf_counter()
    lines = run(kind, manifest, out)
    after, wall = os.times(), time.perf_counter() - wall
    archives = sorted(out.glob("*.tar.gz"))
    print(
        json.dumps(
            {
                "lines": lines,
                "user": after.user - before.user,
                "sys": after.system - before.system,
                "wall": wall,
                "rss_start": rss_start,
                "rss_peak": _peak_rss_mb(),
                "archives": {path.name: path.stat().st_size for path in archives},
            }
        )
    )


def measure(approach: str, kind: str, manifest: Path, work: Path, cpu: int | None) -> dict[str, Any]:
    """The least CPU of REPEATS runs (other processes on the machine only ever add to it) and the
    highest peak RSS; runs that create a file per image once, since they are the kernel's figures."""
    runs = []
    for _ in range(1 if kind.endswith(("-folder", "files")) else REPEATS):
        out = (
            (RAM_DIR / f"export-bench-{os.getpid()}-{approach}-{kind}")
            if kind.endswith("-ram")
            else work / f"{approach}-{kind}"
        )
        command = [sys.executable, __file__, "--child", approach, kind, str(manifest), str(out), str(cpu)]
        try:
            done = subprocess.run(command, check=True, capture_output=True, text=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        result: dict[str, Any] = json.loads(done.stdout)
        result["cpu"] = result["user"] + result["sys"]
        runs.append(result)
    best = min(runs, key=lambda result: result["cpu"])
    return best | {"rss_peak": max(result["rss_peak"] for result in runs)}


def _tree(root: Path) -> dict[str, bytes]:
    files = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    # A folder's data.yaml names the folder itself, which differs between the two runs.
    if "yolo/data.yaml" in files:
        lines = files["yolo/data.yaml"].splitlines(keepends=True)
        files["yolo/data.yaml"] = b"".join(line for line in lines if not line.startswith(b"path: "))
    return files


def _tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {member.name: archive.extractfile(member).read() for member in archive if member.isfile()}  # type: ignore[union-attr]


def check_same_output(work: Path) -> None:
    manifest = work / "check.manifest"
    make_manifest(manifest, CHECK_LINES, seed=2)
    for kind in COMPARED:
        for approach, run in (("streaming", streaming), ("naive", naive)):
            run(kind, manifest, work / approach / kind)
    for kind in COMPARED:
        fast, slow = work / "streaming" / kind, work / "naive" / kind
        if kind in ("coco", "lambda"):
            same = json.loads((fast / "coco.json").read_text()) == json.loads((slow / "coco.json").read_text())
            assert same, "naive and streaming coco.json differ"
        if kind.endswith("-folder"):
            assert _tree(fast) == _tree(slow), f"naive and streaming {kind} differ"
        if kind == "lambda":
            for name in ("yolo.tar.gz", "voc.tar.gz"):
                assert _tar(fast / name) == _tar(slow / name), f"naive and streaming {name} differ"
    shutil.rmtree(work / "streaming")
    shutil.rmtree(work / "naive")
    print(f"check: naive and streaming outputs are identical on {CHECK_LINES:,} lines (coco, folders, archives)")


def _row(label: str, result: dict[str, Any]) -> str:
    rate = result["lines"] / result["cpu"] if result["cpu"] else float("inf")
    archives = " ".join(f"{name} {size / 1e6:.1f} MB" for name, size in result["archives"].items())
    return (
        f"| {label} | {result['cpu']:.2f} s | {result['user']:.2f} | {result['sys']:.2f} | {rate:,.0f} | "
        f"{result['rss_peak']:.0f} MB | {result['rss_start']:.0f} MB | {result['wall']:.1f} s | {archives} |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        approach, kind, manifest_arg, out_arg, cpu_arg = sys.argv[2:7]
        child(approach, kind, Path(manifest_arg), Path(out_arg), None if cpu_arg == "None" else int(cpu_arg))
        return
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 20_000]
    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, each run in its own process"
        + (f" pinned to core {cpu}" if cpu is not None else " (no pinning on this platform)")
    )
    ram = RAM_DIR.is_dir() and os.access(RAM_DIR, os.W_OK)
    runs = [run for run in RUNS if ram or not run[1].endswith("-ram")]
    results: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="export-bench-") as work_dir:
        work = Path(work_dir)
        check_same_output(work)
        for lines in sizes:
            manifest = work / f"{lines}.manifest"
            make_manifest(manifest, lines)
            print(f"\n{lines:,} lines, {manifest.stat().st_size / 1e6:.1f} MB manifest, 0-5 boxes per image")
            print(
                "| approach, output | CPU | user | sys | lines/s (CPU) | peak RSS | RSS before work | wall | archives |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            results[lines] = {}
            for approach, kind, label in runs:
                result = measure(approach, kind, manifest, work, cpu)
                results[lines][approach, kind] = result
                print(_row(f"{approach}: {label}", result), flush=True)
            manifest.unlink()
            print(f"\nnaive / streaming at {lines:,} lines:")
            for kind in COMPARED:
                fast, slow = results[lines]["streaming", kind], results[lines]["naive", kind]
                label = next(label for approach, name, label in RUNS if name == kind)
                print(
                    f"  {label}: CPU {slow['cpu'] / fast['cpu']:.1f}x ({slow['cpu']:.2f} s / {fast['cpu']:.2f} s), "
                    f"user CPU {slow['user'] / fast['user']:.1f}x, "
                    f"peak RSS {slow['rss_peak'] / fast['rss_peak']:.1f}x "
                    f"({slow['rss_peak']:.0f} / {fast['rss_peak']:.0f} MB)"
                )
    if len(sizes) > 1:
        print(f"\npeak RSS by size ({' -> '.join(f'{size:,}' for size in sizes)} lines):")
        for approach, kind, label in runs:
            figures = " -> ".join(f"{results[size][approach, kind]['rss_peak']:.0f}" for size in sizes)
            print(f"  {approach}: {label}: {figures} MB")


if __name__ == "__main__":
    main()
