"""What the demo tests share: the demo as a newcomer's terminal starts it, what must be gone once it ends, and
the checks of its exports, readers and gallery against the boxes each image should hold."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

from labeling_pipeline.exports.formats import IMAGE_FOLDERS, image_name
from sandbox.demo_steps import DATASET, SAMPLE_IMAGES
from tests.cli.test_review_gallery import screenshot
from tests.support import extract_archive

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_LINE = re.compile(r"Emulator \(moto server\) on (http://127\.0\.0\.1:(\d+)), pid (\d+)")
# The limit for the whole demo after `make setup`.
DEMO_LIMIT_SECONDS = 180

# Per image file name (as the exports name it): its boxes, [class id, left, top, width, height] in pixels.
Boxes = dict[str, list[list[float]]]


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_demo(out: Path, *options: str, stdin: int | None = None) -> subprocess.Popen[str]:
    # A newcomer's shell may name a profile that does not exist here: the demo must ignore it, as it
    # ignores any real credentials.
    environment = {**os.environ, "AWS_PROFILE": "only-on-a-laptop", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"}
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.demo", "--no-browser", "--out", str(out), *options],
        cwd=ROOT,
        env=environment,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, so the test can send Ctrl-C to it as a terminal would.
        start_new_session=True,
        # A shell runs background commands with SIGINT ignored, and Python then never turns Ctrl-C into
        # KeyboardInterrupt; a terminal starts the demo with the default, as this does.
        preexec_fn=_default_interrupt,
    )


class Lines:
    """The demo's output as it comes, read on a thread so that a test can wait for a line with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{self.text}") from None
            if line is None:
                raise AssertionError(f"the demo ended before a line matching {pattern!r}:\n{self.text}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def rest(self, timeout: float) -> str:
        """Everything up to the end of the output."""
        deadline = time.monotonic() + timeout
        while (line := self._queue.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            self.seen.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.seen)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def processes_in_sessions(sessions: set[int]) -> list[str]:
    """Processes still running in these sessions (the demo's, and those it started its servers in)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) in sessions:
            found.append(text.split(")", 1)[0] + ")")
    return found


def export_path(job: dict[str, Any], name: str) -> Path:
    return next(Path(path) for path in job["exports"] if path.endswith(name))


def archive_members(archive: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                yield member.name, handle.read()


def _rounded(box: list[float]) -> list[float]:
    return [round(value, 2) for value in box]


def assert_coco_holds(job: dict[str, Any], expected: Boxes) -> None:
    coco = json.loads(export_path(job, "coco.json").read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    found: Boxes = {}
    for annotation in coco["annotations"]:
        left, top, width, height = annotation["bbox"]
        found.setdefault(names[annotation["image_id"]], []).append(
            _rounded([annotation["category_id"] - 1, left, top, width, height])
        )
    assert {name: sorted(boxes) for name, boxes in found.items()} == {
        name: sorted(_rounded(box) for box in boxes) for name, boxes in expected.items() if boxes
    }


def assert_yolo_and_voc_hold(job: dict[str, Any], expected: Boxes) -> None:
    yolo = {
        name: body.decode()
        for name, body in archive_members(export_path(job, "yolo.tar.gz"))
        if name.startswith("labels/")
    }
    # Flat: one labels/<id>.txt per image, the id being the image's file name in the export without its suffix.
    assert {name.removeprefix("labels/").removesuffix(".txt") for name in yolo} == {
        file_name.rsplit(".", 1)[0] for file_name in expected
    }
    for file_name, boxes in expected.items():
        rows = yolo["labels/" + file_name.rsplit(".", 1)[0] + ".txt"].splitlines()
        assert sorted(int(row.split()[0]) for row in rows) == sorted(box[0] for box in boxes)
    voc = dict(archive_members(export_path(job, "voc.tar.gz")))
    for file_name, boxes in expected.items():
        tree = ElementTree.parse(io.BytesIO(voc["Annotations/" + file_name.rsplit(".", 1)[0] + ".xml"]))
        corners = sorted(
            [round(float(box.findtext(tag) or "nan"), 2) for tag in ("xmin", "ymin", "xmax", "ymax")]
            for box in tree.iter("bndbox")
        )
        # Pascal VOC's 1-based pixel indices: xmin = left + 1, xmax = left + width.
        assert corners == sorted(
            _rounded([left + 1, top + 1, left + width, top + height]) for _, left, top, width, height in boxes
        )


def assert_readers_find_every_image(job: dict[str, Any], out: Path, bucket: str, expected: Boxes, work: Path) -> None:
    """supervision loads the demo's YOLO and VOC archives, with the sample pictures placed under the names the
    exports give them (what `bbox-labeling export --with-images` does), and finds all seven with their boxes."""
    import supervision as sv

    for fmt, folder in IMAGE_FOLDERS.items():
        extract_archive(export_path(job, f"{fmt}.tar.gz"), work / fmt)
        (work / fmt / folder).mkdir()
        for target in SAMPLE_IMAGES.values():
            key = f"images/{DATASET}/{target}"
            name = image_name(f"s3://{bucket}/{key}").file_name
            (work / fmt / folder / name).write_bytes((out / "samples" / target).read_bytes())
    yolo = sv.DetectionDataset.from_yolo(
        str(work / "yolo/images"), str(work / "yolo/labels"), str(work / "yolo/data.yaml")
    )
    voc = sv.DetectionDataset.from_pascal_voc(str(work / "voc/JPEGImages"), str(work / "voc/Annotations"))
    for dataset in (yolo, voc):
        assert len(dataset) == len(SAMPLE_IMAGES)
        for path, _, detections in dataset:
            boxes = expected[Path(path).name]
            corners = sorted([left, top, left + width, top + height] for _, left, top, width, height in boxes)
            assert sorted(detections.xyxy.round().astype(int).tolist()) == corners, path


def assert_gallery_shows(job: dict[str, Any], note: str, work: Path, pictures: int = len(SAMPLE_IMAGES)) -> str:
    """The gallery renders the note on its banner and the labeled pictures (a skipped one is a caption only);
    its page's text."""
    index = Path(job["gallery"])
    page = index.read_text()
    assert note in page
    assert page.count("<img ") == pictures
    shot = screenshot(index, work / "gallery.png").convert("RGB")
    colours = shot.getcolors(maxcolors=shot.width * shot.height) or []
    count = {colour: n for n, colour in colours}
    # The notice's background (#fff3cd) is on screen, and the pictures loaded (many distinct colours).
    assert count.get((255, 243, 205), 0) > 5000
    assert len(count) > 10000
    return page
