"""COCO, YOLO and Pascal VOC writers fed one LabeledImage at a time (memory does not grow with input).

Every image gets one flat id derived from its S3 key (``image_id``): the key below ``images/`` with its
folders joined by ``__`` and anything but letters, digits, ``.``, ``_`` and ``-`` replaced, then ``-`` and 10
hex digits of the key's SHA-256, so that ``a/x.jpg`` and ``b/x.jpg`` stay apart. Each format's files are
named by it, flat, as their readers walk them; the key itself stays in the file (COCO ``source_ref``, VOC
``<path>``). A stable 90/10 train/val split follows from the same hash, so an image keeps its split when
the dataset grows.

- COCO (https://cocodataset.org/#format-data): one JSON; ``file_name`` is ``<id><ext>``; ``bbox`` is
  ``[x, y, width, height]`` in pixels, ``area`` = width * height, ``iscrowd`` 0; category ids are the stable
  class ids plus one (COCO keeps 0 for background by convention).
- YOLO, as Ultralytics reads it (https://docs.ultralytics.com/datasets/detect/): ``labels/<id>.txt`` per
  image with ``class cx cy w h`` normalized to [0, 1], images in ``images/<id><ext>``, ``train.txt`` and
  ``val.txt`` listing them, ``classes.txt`` and ``data.yaml``.
- Pascal VOC, as the VOC devkit lays it out: ``Annotations/<id>.xml``, ``JPEGImages/<id><ext>``,
  ``ImageSets/Main/{train,val,trainval}.txt``; ``<bndbox>`` holds the devkit's 1-based, inclusive pixel
  indices (``xmin = left + 1``, ``xmax = left + width``), which detectron2 and supervision shift back.

YOLO and VOC go to a folder (the CLI) or to one streamed ``.tar.gz`` each (the job-events Lambda): a tar
has no central directory, so nothing is kept per file and memory stays flat however many images there
are (a zip writer has to remember every entry until it writes the directory at the end). The split lists
are spooled to a temporary file and written last.

Class ids are fixed by the configured label order, not by a job's class-map, so that they are the same
for every job; a label that is not configured gets the next free id and is reported.

Speed (benchmarks/export_throughput.py): the text is formatted with plain string templates (VOC with
``xml.sax.saxutils.escape``, which escapes exactly what ElementTree escapes in element text), so the
output is the same byte for byte as with ElementTree.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple, Protocol
from urllib.parse import urlparse
from xml.sax.saxutils import escape

from labeling_pipeline.box_changes import ReviewTally
from labeling_pipeline.consolidation import JobAgreement, consolidate_image, settle
from labeling_pipeline.labels import SETTLED_BY_BACKEND, Box, LabeledImage, ReadStats
from labeling_pipeline.names import INPUT_PREFIX

# Where each format keeps the pictures: Ultralytics maps images/x.jpg to labels/x.txt; Pascal VOC keeps them
# in JPEGImages/ beside Annotations/.
IMAGE_FOLDERS = {"yolo": "images", "voc": "JPEGImages"}
VOC_IMAGE_FOLDER = IMAGE_FOLDERS["voc"]
FORMATS = ("coco", "yolo", "voc")
ARCHIVE_SUFFIX = ".tar.gz"
# gzip level of the archives. Measured on 20,000 images (19 MB of YOLO tar, 36 MB of VOC tar): level 1
# takes 0.18 s of CPU for both and gives 1.3 + 1.8 MB; level 6 (zlib's default) 0.47 s for 1.0 + 1.2 MB;
# level 9 (tarfile's 'w|gz') 1.3 s for 1.0 + 1.1 MB. The Lambda pays for CPU; a few MB more do not matter.
ARCHIVE_COMPRESSLEVEL = 1


def export_file_name(fmt: str, *, archive: bool) -> str:
    """What make_writers writes for a format under out_dir: coco.json, yolo/ or yolo.tar.gz, voc/ or voc.tar.gz."""
    if fmt == "coco":
        return "coco.json"
    return fmt + ARCHIVE_SUFFIX if archive else fmt


class LabelSpace:
    def __init__(self, labels: Sequence[str]) -> None:
        self.names: list[str] = list(labels)
        self._ids = {name: index for index, name in enumerate(self.names)}
        self.unconfigured: list[str] = []

    def class_id(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = len(self.names)
            self.names.append(name)
            self.unconfigured.append(name)
        return self._ids[name]


# Characters for which urlsplit does more than cut "s3://bucket/key" at the first slash.
_URL_SPECIAL = re.compile(r"[?#\[\]\t\r\n]")


@lru_cache(maxsize=8)  # the review gallery asks twice about the same image: bounded, so memory stays flat
def relative_path(source_ref: str) -> str:
    """Where the review gallery puts an image: its key without the bucket and the images/ prefix, made
    safe as a file name under the gallery's folder."""
    if source_ref.startswith("s3://") and not _URL_SPECIAL.search(source_ref):
        netloc, _, path = source_ref[5:].partition("/")
        if netloc.isascii():
            key = path.lstrip("/")
            return _contained(key.removeprefix(INPUT_PREFIX) or PurePosixPath(key).name)
    parsed = urlparse(source_ref)
    key = parsed.path.lstrip("/") if parsed.scheme else source_ref
    return _contained(key.removeprefix(INPUT_PREFIX) or PurePosixPath(key).name)


def _contained(relative: str) -> str:
    """S3 keys may hold "." and ".." segments and repeated slashes ("images/../../x.jpg" is a valid key);
    as a path under a folder they would reach outside it. Those segments are written as %2E and %2E%2E,
    which no file system reads as a step up, and empty segments are dropped."""
    parts = ["%2E%2E" if part == ".." else "%2E" if part == "." else part for part in relative.split("/") if part]
    return "/".join(parts) or "%2E"


# Readable part of an id: the characters every file system, tar reader and shell script takes as they are.
_UNSAFE_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
ID_HASH_HEX = 10  # 40 bits: two keys share an id only if their readable parts and these bits both agree
MAX_READABLE_ID = 100  # the tail of a long key is kept: the file name says most
VAL_PERCENT = 10


def source_key(source_ref: str) -> str:
    """The S3 key of a manifest's ``s3://bucket/key``, verbatim ('#' and '?' are part of a key)."""
    if source_ref.startswith("s3://"):
        return source_ref[5:].partition("/")[2].lstrip("/")
    return source_ref


class ImageName(NamedTuple):
    id: str
    file_name: str  # id + the key's extension, lower case
    split: str  # "train" or "val"


@lru_cache(maxsize=8)  # the writers ask in turn about the same image: bounded, so memory stays flat
def image_name(source_ref: str) -> ImageName:
    """The image's flat, collision-free id, its file name in an export, and its split (module docstring)."""
    key = source_key(source_ref)
    relative = key.removeprefix(INPUT_PREFIX) or key
    slash, dot = relative.rfind("/"), relative.rfind(".")
    stem, extension = (relative[:dot], relative[dot:].lower()) if dot > slash + 1 else (relative, "")
    if not (extension[1:].isascii() and extension[1:].isalnum()):
        extension = ""
    readable = _UNSAFE_IN_ID.sub("_", stem.replace("/", "__"))[-MAX_READABLE_ID:].strip("._-")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:ID_HASH_HEX]
    image_id = f"{readable}-{digest}" if readable else digest
    split = "val" if int(digest, 16) % 100 < VAL_PERCENT else "train"
    return ImageName(image_id, image_id + extension, split)


class Sink(Protocol):
    def write_text(self, relative: str, text: str) -> None: ...

    def close(self) -> None: ...


class DirectorySink:
    """One file per call. Creating 100,000 files is mostly the kernel's work (the benchmark prints user
    and system CPU apart, and the cost of bare os.open/os.write/os.close for as many files); this side
    keeps to those three calls per file and creates a directory only when it changes."""

    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = str(root)
        self._made: str | None = None

    def write_text(self, relative: str, text: str) -> None:
        target = os.path.join(self._base, relative)
        directory = os.path.dirname(target)
        if directory != self._made:
            os.makedirs(directory, exist_ok=True)
            self._made = directory
        data = memoryview(text.encode("utf-8"))
        descriptor = os.open(target, self._FLAGS, 0o666)
        try:
            while data:
                data = data[os.write(descriptor, data) :]
        finally:
            os.close(descriptor)

    def close(self) -> None:
        return None


_BLOCK = 512
_RECORD = 20 * _BLOCK  # what tarfile pads an archive to
_NUL_BLOCK = bytes(_BLOCK)
_FLUSH_BYTES = 1 << 18


class TarGzSink:
    """A gzip-compressed tar written as a stream: each file is a ustar header, its bytes and padding,
    and nothing is remembered after it is written, so memory does not grow with the number of files.

    Headers are built here for ASCII names up to 100 bytes (the same bytes ``TarInfo.tobuf`` gives,
    which the tests check) because tarfile's own header code costs more than formatting an image;
    other names go through ``TarInfo.tobuf`` in PAX format (UTF-8 and long names).
    """

    def __init__(self, path: Path, *, compresslevel: int = ARCHIVE_COMPRESSLEVEL, mtime: int | None = None) -> None:
        self.path = path
        self.mtime = int(time.time()) if mtime is None else mtime
        self._file = path.open("wb")
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._file, compresslevel=compresslevel, mtime=self.mtime
        )
        self._buffer = bytearray()
        self._written = 0
        # ustar fields around the name, size and checksum; the checksum counts its own field as spaces.
        self._mode_ids = b"0000644\0" + b"0000000\0" + b"0000000\0"
        self._mtime_field = b"%011o\0" % self.mtime
        self._rest = b"0" + bytes(100) + tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155 + 12)
        self._checksum_base = sum(self._mode_ids) + sum(self._mtime_field) + sum(self._rest) + 8 * ord(" ")

    def _header(self, relative: str, size: int) -> bytes:
        if len(relative) <= 100 and relative.isascii() and size < 8**11:
            name = relative.encode("ascii")
            size_field = b"%011o\0" % size
            checksum = self._checksum_base + sum(name) + sum(size_field)
            return b"".join(
                (
                    name.ljust(100, b"\0"),
                    self._mode_ids,
                    size_field,
                    self._mtime_field,
                    b"%06o\0 " % checksum,
                    self._rest,
                )
            )
        info = tarfile.TarInfo(relative)
        info.size, info.mtime, info.mode = size, self.mtime, 0o644
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def write_text(self, relative: str, text: str) -> None:
        data = text.encode("utf-8")
        buffer = self._buffer
        buffer += self._header(relative, len(data))
        buffer += data
        buffer += _NUL_BLOCK[: -len(data) % _BLOCK]
        if len(buffer) >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._written += len(self._buffer)
        self._gzip.write(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        self._buffer += bytes(2 * _BLOCK)  # end of archive
        self._buffer += bytes(-(self._written + len(self._buffer)) % _RECORD)
        self._flush()
        self._gzip.close()
        self._file.close()


class Writer(Protocol):
    def add(self, image: LabeledImage) -> None: ...

    def close(self) -> None: ...


_JSON = json.JSONEncoder(ensure_ascii=False)


def _json_number(value: Any) -> str:
    """json.dumps of an int or float, without building an encoder per call."""
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _JSON.encode(value)


def _coco_number(value: float) -> str:
    """json.dumps of a COCO coordinate or area: whole pixels as integers, others rounded to 3 decimals."""
    if float(value).is_integer():
        return int.__repr__(int(value))
    return _json_number(round(value, 3))


class CocoWriter:
    """Streams images and annotations to two spool files and joins them into one JSON at the end."""

    def __init__(self, target: Path, labels: LabelSpace, description: str = "") -> None:
        self.target = target
        self.labels = labels
        self.description = description
        self._spool = Path(tempfile.mkdtemp(prefix="coco-"))
        self._images: IO[str] = (self._spool / "images").open("w", encoding="utf-8")
        self._annotations: IO[str] = (self._spool / "annotations").open("w", encoding="utf-8")
        self._image_id = 0
        self._annotation_id = 0

    def add(self, image: LabeledImage) -> None:
        # The same text json.dumps gives for {"id", "file_name", "width", "height", "source_ref"} and
        # {"id", "image_id", "category_id", "bbox", "area", "iscrowd"} (ensure_ascii=False for strings).
        if image.failed:
            return
        self._image_id += 1
        image_id = self._image_id
        self._images.write(
            f'{"," if image_id > 1 else ""}{{"id": {image_id}, '
            f'"file_name": {_JSON.encode(image_name(image.source_ref).file_name)}, '
            f'"width": {_json_number(image.width)}, "height": {_json_number(image.height)}, '
            f'"source_ref": {_JSON.encode(image.source_ref)}}}\n'
        )
        if not image.boxes:
            return
        class_id = self.labels.class_id
        parts = []
        annotation_id = self._annotation_id
        for box in image.boxes:
            annotation_id += 1
            parts.append(
                f'{"," if annotation_id > 1 else ""}{{"id": {annotation_id}, "image_id": {image_id}, '
                f'"category_id": {class_id(box.label) + 1}, '
                f'"bbox": [{_coco_number(box.left)}, {_coco_number(box.top)}, '
                f"{_coco_number(box.width)}, {_coco_number(box.height)}], "
                f'"area": {_coco_number(box.width * box.height)}, "iscrowd": 0'
                + ("" if box.confidence is None else f', "confidence": {_json_number(round(box.confidence, 4))}')
                + ("}\n" if box.annotator is None else f', "annotator": {_JSON.encode(box.annotator)}}}\n')
            )
        self._annotation_id = annotation_id
        self._annotations.write("".join(parts))

    def close(self) -> None:
        self._images.close()
        self._annotations.close()
        categories = [
            {"id": index + 1, "name": name, "supercategory": "object"} for index, name in enumerate(self.labels.names)
        ]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        # The spools are UTF-8 already: copied as bytes, without decoding and encoding them again.
        with self.target.open("wb") as out:
            out.write(('{"info": ' + json.dumps({"description": self.description}) + ',\n"images": [\n').encode())
            with (self._spool / "images").open("rb") as spooled:
                shutil.copyfileobj(spooled, out)
            out.write(b'],\n"annotations": [\n')
            with (self._spool / "annotations").open("rb") as spooled:
                shutil.copyfileobj(spooled, out)
            out.write(('],\n"categories": ' + json.dumps(categories, ensure_ascii=False) + "}\n").encode("utf-8"))
        shutil.rmtree(self._spool, ignore_errors=True)


class SplitLists:
    """Each image's entry under its split, spooled to a temporary file so that memory stays flat, and
    read back as one text per split when the writer closes."""

    def __init__(self) -> None:
        self._spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by texts())
        self.counts: Counter[str] = Counter()

    def add(self, split: str, entry: str) -> None:
        self._spool.write(f"{split}\t{entry}\n")
        self.counts[split] += 1

    def texts(self) -> dict[str, str]:
        lines: dict[str, list[str]] = {"train": [], "val": []}
        self._spool.seek(0)
        for line in self._spool:
            split, _, entry = line.partition("\t")
            lines[split].append(entry)
        self._spool.close()
        return {split: "".join(entries) for split, entries in lines.items()}


DATA_YAML_HEADER = (
    "# Ultralytics dataset. Each image goes under images/ as the file named in train.txt or val.txt, beside\n"
    "# its labels/ file of the same name (bbox-labeling export --format yolo --with-images does it). Without a\n"
    "# path: line, Ultralytics takes this file's folder as the dataset root.\n"
)
NO_VAL_COMMENT = "# No image fell into the 10% validation split (too few images): validating on train.txt.\n"


class YoloWriter:
    def __init__(self, sink: Sink, labels: LabelSpace, stats: ExportStats) -> None:
        self.sink = sink
        self.labels = labels
        self.stats = stats
        self.splits = SplitLists()

    def add(self, image: LabeledImage) -> None:
        if image.failed:
            return
        width, height = image.width, image.height
        if width <= 0 or height <= 0:
            self.stats.skipped_without_size.append(image.source_ref)
            return
        class_id = self.labels.class_id
        text = "".join(
            [
                f"{class_id(box.label)} {(box.left + box.width / 2) / width:.6f} "
                f"{(box.top + box.height / 2) / height:.6f} {box.width / width:.6f} {box.height / height:.6f}\n"
                for box in image.boxes
            ]
        )
        name = image_name(image.source_ref)
        self.sink.write_text(f"labels/{name.id}.txt", text)
        # Ultralytics reads "./" in a list file as the list's own folder.
        self.splits.add(name.split, f"./images/{name.file_name}")

    def close(self) -> None:
        self.sink.write_text("classes.txt", "".join(name + "\n" for name in self.labels.names))
        for split, text in self.splits.texts().items():
            self.sink.write_text(f"{split}.txt", text)
        names = "".join(
            f"  {index}: {json.dumps(name, ensure_ascii=False)}\n" for index, name in enumerate(self.labels.names)
        )
        val = "val: val.txt\n" if self.splits.counts["val"] else f"{NO_VAL_COMMENT}val: train.txt\n"
        # No path: line, in a folder as in an archive: Ultralytics resolves a relative `path:` against its own
        # datasets folder, and an absolute one ties the export to the machine that wrote it; without one it takes
        # data.yaml's folder (check_det_dataset in ultralytics/data/utils.py), so the folder can be moved or zipped.
        self.sink.write_text(
            "data.yaml",
            f"{DATA_YAML_HEADER}train: train.txt\n{val}nc: {len(self.labels.names)}\nnames:\n{names}",
        )
        self.sink.close()


def _text(text: str) -> str:
    """Element text as ElementTree escapes it: &, < and > (xml.sax.saxutils.escape does exactly these)."""
    return escape(text) if "&" in text or "<" in text or ">" in text else text


def _element(tag: str, text: str, indent: str) -> str:
    # ElementTree writes an element without text as <tag />.
    return f"{indent}<{tag}>{_text(text)}</{tag}>\n" if text else f"{indent}<{tag} />\n"


class VocWriter:
    """The text ElementTree gave (ET.indent by two spaces, ``<tag />`` when empty), from a template."""

    def __init__(self, sink: Sink, labels: LabelSpace) -> None:
        self.sink = sink
        self.labels = labels
        self.splits = SplitLists()

    def add(self, image: LabeledImage) -> None:
        if image.failed:
            return
        name = image_name(image.source_ref)
        database = f"labeling job {image.job_name or 'unknown'}"
        parts = [
            f"<annotation>\n  <folder>{VOC_IMAGE_FOLDER}</folder>\n{_element('filename', name.file_name, '  ')}"
            f"{_element('path', image.source_ref, '  ')}  <source>\n"
            f"{_element('database', database, '    ')}"
            f"  </source>\n  <size>\n    <width>{image.width}</width>\n    <height>{image.height}</height>\n"
            f"    <depth>{image.depth}</depth>\n  </size>\n  <segmented>0</segmented>\n"
        ]
        class_id = self.labels.class_id
        for box in image.boxes:
            class_id(box.label)  # keeps unconfigured labels visible in the summary
            label = f"    <name>{_text(box.label)}</name>\n" if box.label else "    <name />\n"
            # The devkit's 1-based, inclusive pixel indices: the first pixel column is 1, and the far edge
            # (left + width in 0-based continuous coordinates) is the last pixel inside the box.
            xmin, ymin = round(box.left + 1), round(box.top + 1)
            xmax, ymax = max(round(box.left + box.width), xmin), max(round(box.top + box.height), ymin)
            parts.append(
                f"  <object>\n{label}    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
                f"    <difficult>0</difficult>\n    <bndbox>\n      <xmin>{xmin}</xmin>\n"
                f"      <ymin>{ymin}</ymin>\n      <xmax>{xmax}</xmax>\n"
                f"      <ymax>{ymax}</ymax>\n    </bndbox>\n  </object>\n"
            )
        parts.append("</annotation>\n")
        self.sink.write_text(f"Annotations/{name.id}.xml", "".join(parts))
        self.splits.add(name.split, name.id)

    def close(self) -> None:
        texts = self.splits.texts()
        for split, text in texts.items():
            self.sink.write_text(f"ImageSets/Main/{split}.txt", text)
        self.sink.write_text("ImageSets/Main/trainval.txt", texts["train"] + texts["val"])
        self.sink.close()


@dataclass
class ExportStats:
    read: ReadStats = field(default_factory=ReadStats)
    boxes_per_label: Counter[str] = field(default_factory=Counter)
    images_without_boxes: int = 0
    skipped_without_size: list[str] = field(default_factory=list)
    unconfigured_labels: list[str] = field(default_factory=list)
    # Images whose answers came from several annotators, consolidated into one set of boxes (consolidation.py).
    agreement: JobAgreement = field(default_factory=JobAgreement)
    # Images a reviewer settled (Label Studio's review step): what the reviewers changed.
    review: ReviewTally = field(default_factory=ReviewTally)

    def summary(self, job_name: str | None = None) -> dict[str, Any]:
        consolidated = {"consolidation": self.agreement.summary()} if self.agreement.consolidated_images else {}
        if self.review.images:
            consolidated["review"] = self.review.summary()
        return {
            "job": job_name,
            "images": self.read.images,
            "imagesLabeled": self.read.images - len(self.read.failed),
            "imagesWithoutBoxes": self.images_without_boxes,
            "boxes": sum(self.boxes_per_label.values()),
            "boxesPerLabel": dict(self.boxes_per_label),
            "boxesClipped": self.read.boxes_clipped,
            "emptyBoxesDropped": self.read.boxes_dropped_empty,
            "rotatedBoxesStraightened": self.read.boxes_rotated,
            "failedObjects": [{"sourceRef": ref, "reason": reason} for ref, reason in self.read.failed],
            "imagesWithoutSize": self.skipped_without_size,
            "unconfiguredLabels": self.unconfigured_labels,
            **consolidated,
        }


def export(
    images: Iterable[LabeledImage],
    writers: Sequence[Writer],
    stats: ExportStats,
    labels: LabelSpace,
    annotator_writers: Sequence[Writer] = (),
    exported: Callable[[LabeledImage], None] | None = None,
) -> ExportStats:
    """Feed every image to every writer in one pass and count what the summary reports; `exported` is told each
    image as the writers got it (its final boxes).

    An image answered by several annotators is consolidated first (consolidation.py: their boxes matched and
    merged, each kept box with its confidence): the writers get the consolidated boxes, `annotator_writers` every
    annotator's own boxes, and `stats.agreement` the image's agreement. An image one annotator answered goes to
    both unchanged. An image whose final boxes were settled elsewhere (`LabeledImage.settled_boxes`: a reviewer's
    answer, the backend's own consolidation) goes to the writers with those, and the annotators' scores are
    measured against them; a reviewer's changes to the boxes shown (the consolidated ones) go to `stats.review`."""
    boxes_per_label = stats.boxes_per_label
    for image in images:
        for writer in annotator_writers:
            writer.add(image)
        settled = image.settled_boxes
        if len(image.annotators) > 1 and not image.failed:
            image, consolidated = consolidate_image(image, image.annotators)
            if settled is not None:
                consolidated = settle(consolidated, settled)
            stats.agreement.add(image.source_ref, consolidated)
        if settled is not None and not image.failed:
            if image.settled_by not in (None, SETTLED_BY_BACKEND):
                stats.review.add(image.source_ref, str(image.settled_by), image.boxes, settled)
            image = image._replace(boxes=settled)
        if not image.failed:
            if not image.boxes:
                stats.images_without_boxes += 1
            for box in image.boxes:
                boxes_per_label[box.label] += 1
        for writer in writers:
            writer.add(image)
        if exported is not None:
            exported(image)
    for writer in [*writers, *annotator_writers]:
        writer.close()
    stats.unconfigured_labels = list(labels.unconfigured)
    return stats


def make_writers(
    formats: Sequence[str],
    out_dir: Path,
    labels: LabelSpace,
    stats: ExportStats,
    *,
    archive: bool,
    description: str = "",
) -> list[Writer]:
    """Writers for the chosen formats under out_dir: coco.json, and yolo/ and voc/ as folders or, with
    archive, as yolo.tar.gz and voc.tar.gz (see export_file_name)."""
    writers: list[Writer] = []
    for name in formats:
        if name == "coco":
            writers.append(CocoWriter(out_dir / "coco.json", labels, description))
        elif name in ("yolo", "voc"):
            if archive:
                out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / export_file_name(name, archive=archive)
            sink: Sink = TarGzSink(target) if archive else DirectorySink(target)
            if name == "yolo":
                writers.append(YoloWriter(sink, labels, stats))
            else:
                writers.append(VocWriter(sink, labels))
        else:
            raise ValueError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)}")
    return writers


def read_yolo_boxes(text: str, width: int, height: int, names: Sequence[str]) -> list[Box]:
    """YOLO label lines back to pixel boxes (for round trips and the review gallery)."""
    boxes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        class_id, cx, cy, w, h = line.split()
        box_width, box_height = float(w) * width, float(h) * height
        boxes.append(
            Box(
                names[int(class_id)],
                float(cx) * width - box_width / 2,
                float(cy) * height - box_height / 2,
                box_width,
                box_height,
            )
        )
    return boxes


def read_coco_boxes(document: dict[str, Any]) -> dict[str, list[Box]]:
    """A COCO document back to boxes per file_name."""
    names = {category["id"]: category["name"] for category in document["categories"]}
    files = {image["id"]: image["file_name"] for image in document["images"]}
    boxes: dict[str, list[Box]] = {name: [] for name in files.values()}
    for annotation in document["annotations"]:
        x, y, w, h = annotation["bbox"]
        boxes[files[annotation["image_id"]]].append(Box(names[annotation["category_id"]], x, y, w, h))
    return boxes
