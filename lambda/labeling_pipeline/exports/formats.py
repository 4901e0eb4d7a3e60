"""COCO, YOLO and Pascal VOC writers fed one LabeledImage at a time (memory does not grow with input).

- COCO (https://cocodataset.org/#format-data): one JSON; ``bbox`` is ``[x, y, width, height]`` in pixels,
  ``area`` = width * height, ``iscrowd`` 0; category ids are the stable class ids plus one (COCO keeps 0
  for background by convention).
- YOLO, as Ultralytics reads it (https://docs.ultralytics.com/datasets/detect/): ``labels/<path>.txt``
  per image with ``class cx cy w h`` normalized to [0, 1], ``classes.txt`` and ``data.yaml``.
- Pascal VOC: ``Annotations/<path>.xml`` per image with integer pixel ``xmin ymin xmax ymax``.

Class ids are fixed by the configured label order, not by a job's class-map, so that they are the same
for every job; a label that is not configured gets the next free id and is reported.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from labeling_pipeline.exports.output_manifest import Box, LabeledImage, ReadStats

INPUT_PREFIX = "images/"
FORMATS = ("coco", "yolo", "voc")


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


def relative_path(source_ref: str) -> str:
    """Where an image sits in an export: its key without the bucket and the images/ prefix."""
    parsed = urlparse(source_ref)
    key = parsed.path.lstrip("/") if parsed.scheme else source_ref
    return key.removeprefix(INPUT_PREFIX) or PurePosixPath(key).name


class Sink(Protocol):
    def write_text(self, relative: str, text: str) -> None: ...

    def close(self) -> None: ...


class DirectorySink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write_text(self, relative: str, text: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def close(self) -> None:
        return None


class ZipSink:
    """One archive instead of a file per image: 100,000 S3 PUTs would not fit a Lambda run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)

    def write_text(self, relative: str, text: str) -> None:
        self._zip.writestr(relative, text)

    def close(self) -> None:
        self._zip.close()


class Writer(Protocol):
    def add(self, image: LabeledImage) -> None: ...

    def close(self) -> None: ...


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
        if image.failed:
            return
        self._image_id += 1
        record = {
            "id": self._image_id,
            "file_name": relative_path(image.source_ref),
            "width": image.width,
            "height": image.height,
            "source_ref": image.source_ref,
        }
        self._images.write(("," if self._image_id > 1 else "") + json.dumps(record, ensure_ascii=False) + "\n")
        for box in image.boxes:
            self._annotation_id += 1
            annotation = {
                "id": self._annotation_id,
                "image_id": self._image_id,
                "category_id": self.labels.class_id(box.label) + 1,
                "bbox": [_number(box.left), _number(box.top), _number(box.width), _number(box.height)],
                "area": _number(box.width * box.height),
                "iscrowd": 0,
            }
            separator = "," if self._annotation_id > 1 else ""
            self._annotations.write(separator + json.dumps(annotation) + "\n")

    def close(self) -> None:
        self._images.close()
        self._annotations.close()
        categories = [
            {"id": index + 1, "name": name, "supercategory": "object"} for index, name in enumerate(self.labels.names)
        ]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with self.target.open("w", encoding="utf-8") as out:
            out.write('{"info": ' + json.dumps({"description": self.description}) + ',\n"images": [\n')
            with (self._spool / "images").open(encoding="utf-8") as spooled:
                shutil.copyfileobj(spooled, out)
            out.write('],\n"annotations": [\n')
            with (self._spool / "annotations").open(encoding="utf-8") as spooled:
                shutil.copyfileobj(spooled, out)
            out.write('],\n"categories": ' + json.dumps(categories, ensure_ascii=False) + "}\n")
        shutil.rmtree(self._spool, ignore_errors=True)


class YoloWriter:
    def __init__(self, sink: Sink, labels: LabelSpace, stats: ExportStats) -> None:
        self.sink = sink
        self.labels = labels
        self.stats = stats

    def add(self, image: LabeledImage) -> None:
        if image.failed:
            return
        if image.width <= 0 or image.height <= 0:
            self.stats.skipped_without_size.append(image.source_ref)
            return
        lines = []
        for box in image.boxes:
            cx = (box.left + box.width / 2) / image.width
            cy = (box.top + box.height / 2) / image.height
            lines.append(
                f"{self.labels.class_id(box.label)} {cx:.6f} {cy:.6f} "
                f"{box.width / image.width:.6f} {box.height / image.height:.6f}"
            )
        stem = str(PurePosixPath(relative_path(image.source_ref)).with_suffix(".txt"))
        self.sink.write_text(f"labels/{stem}", "".join(line + "\n" for line in lines))

    def close(self) -> None:
        self.sink.write_text("classes.txt", "".join(name + "\n" for name in self.labels.names))
        names = "".join(
            f"  {index}: {json.dumps(name, ensure_ascii=False)}\n" for index, name in enumerate(self.labels.names)
        )
        # Ultralytics: images/ beside labels/ with the same relative paths; download the images there.
        self.sink.write_text(
            "data.yaml",
            f"path: .\ntrain: images\nval: images\nnc: {len(self.labels.names)}\nnames:\n{names}",
        )
        self.sink.close()


class VocWriter:
    def __init__(self, sink: Sink, labels: LabelSpace) -> None:
        self.sink = sink
        self.labels = labels

    def add(self, image: LabeledImage) -> None:
        if image.failed:
            return
        relative = relative_path(image.source_ref)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = str(PurePosixPath(relative).parent)
        ET.SubElement(root, "filename").text = PurePosixPath(relative).name
        ET.SubElement(root, "path").text = image.source_ref
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "database").text = f"SageMaker Ground Truth job {image.job_name or 'unknown'}"
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", image.depth)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, "segmented").text = "0"
        for box in image.boxes:
            self.labels.class_id(box.label)  # keeps unconfigured labels visible in the summary
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = box.label
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, coordinate in (
                ("xmin", box.left),
                ("ymin", box.top),
                ("xmax", box.left + box.width),
                ("ymax", box.top + box.height),
            ):
                ET.SubElement(bndbox, tag).text = str(round(coordinate))
        ET.indent(root)
        xml = ET.tostring(root, encoding="unicode")
        self.sink.write_text(f"Annotations/{PurePosixPath(relative).with_suffix('.xml')}", xml + "\n")

    def close(self) -> None:
        self.sink.close()


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


@dataclass
class ExportStats:
    read: ReadStats = field(default_factory=ReadStats)
    boxes_per_label: Counter[str] = field(default_factory=Counter)
    images_without_boxes: int = 0
    skipped_without_size: list[str] = field(default_factory=list)
    unconfigured_labels: list[str] = field(default_factory=list)

    def summary(self, job_name: str | None = None) -> dict[str, Any]:
        return {
            "job": job_name,
            "images": self.read.images,
            "imagesLabeled": self.read.images - len(self.read.failed),
            "imagesWithoutBoxes": self.images_without_boxes,
            "boxes": sum(self.boxes_per_label.values()),
            "boxesPerLabel": dict(self.boxes_per_label),
            "boxesClipped": self.read.boxes_clipped,
            "emptyBoxesDropped": self.read.boxes_dropped_empty,
            "failedObjects": [{"sourceRef": ref, "reason": reason} for ref, reason in self.read.failed],
            "imagesWithoutSize": self.skipped_without_size,
            "unconfiguredLabels": self.unconfigured_labels,
        }


def export(
    images: Iterable[LabeledImage],
    writers: Sequence[Writer],
    stats: ExportStats,
    labels: LabelSpace,
) -> ExportStats:
    """Feed every image to every writer in one pass and count what the summary reports."""
    for image in images:
        if not image.failed:
            if not image.boxes:
                stats.images_without_boxes += 1
            stats.boxes_per_label.update(box.label for box in image.boxes)
        for writer in writers:
            writer.add(image)
    for writer in writers:
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
    """Writers for the chosen formats under out_dir: coco.json, and yolo/ and voc/ as folders or zips."""
    writers: list[Writer] = []
    for name in formats:
        if name == "coco":
            writers.append(CocoWriter(out_dir / "coco.json", labels, description))
        elif name in ("yolo", "voc"):
            if archive:
                out_dir.mkdir(parents=True, exist_ok=True)
            sink: Sink = ZipSink(out_dir / f"{name}.zip") if archive else DirectorySink(out_dir / name)
            writers.append(YoloWriter(sink, labels, stats) if name == "yolo" else VocWriter(sink, labels))
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
