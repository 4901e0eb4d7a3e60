"""Exports of the neutral stream of labeled images, checked field by field against values computed by hand.

The stream is read from Ground Truth output manifests (fixtures/), the one backend's results; the reader
itself is tested in ground_truth/test_results.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import re
import tarfile
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling_pipeline.backends.ground_truth.results import read_output_manifest
from labeling_pipeline.exports.formats import (
    DATA_YAML_HEADER,
    NO_VAL_COMMENT,
    CocoWriter,
    DirectorySink,
    ExportStats,
    LabelSpace,
    TarGzSink,
    VocWriter,
    YoloWriter,
    export,
    image_name,
    make_writers,
    read_coco_boxes,
    read_yolo_boxes,
    relative_path,
)
from labeling_pipeline.labels import Box, LabeledImage
from tests.support import extract_archive

FIXTURES = Path(__file__).with_name("fixtures")
LABELS = ["Dog", "Cat"]
# The fixture's images and their ids: the key below images/, folders joined by "__", spaces replaced, and
# the first 10 hex digits of the key's SHA-256 (sha256(b"images/park/two pets.png")).
EIGHT, TWO_PETS, EMPTY_ROAD, BROKEN, ODD = (
    f"s3://example-bucket/images/{name}"
    for name in ("8.jpg", "park/two pets.png", "empty-road.jpg", "broken.jpg", "odd.jpg")
)


def ident(source_ref: str) -> str:
    return image_name(source_ref).id


def run_export(
    tmp_path: Path,
    manifest: str = "output.manifest",
    attribute: str | None = "labels",
    formats: tuple[str, ...] = ("coco", "yolo", "voc"),
    archive: bool = False,
) -> ExportStats:
    labels = LabelSpace(LABELS)
    stats = ExportStats()
    writers = make_writers(formats, tmp_path, labels, stats, archive=archive)
    with (FIXTURES / manifest).open(encoding="utf-8") as lines:
        return export(read_output_manifest(lines, attribute, stats.read), writers, stats, labels)


def test_yolo_fields_match_hand_computed_values(tmp_path: Path) -> None:
    run_export(tmp_path, formats=("yolo",))
    # 8.jpg: Dog is class 0 (configured order), although the job's class-map said 1.
    # cx = (98 + 339/2) / 512, cy = (89 + 386/2) / 512, w = 339/512, h = 386/512
    assert (tmp_path / f"yolo/labels/{ident(EIGHT)}.txt").read_text() == "0 0.522461 0.550781 0.662109 0.753906\n"
    # two pets.png (640x480): Cat (class 1) at 10,20 30x40; Dog clipped from 600..700 to 600..640.
    assert (tmp_path / "yolo/labels/park__two_pets-3250b320d4.txt").read_text() == (
        f"1 {25 / 640:.6f} {40 / 480:.6f} {30 / 640:.6f} {40 / 480:.6f}\n"
        f"0 {620 / 640:.6f} {125 / 480:.6f} {40 / 640:.6f} {50 / 480:.6f}\n"
    )
    assert (tmp_path / f"yolo/labels/{ident(EMPTY_ROAD)}.txt").read_text() == ""  # a background image
    assert not list((tmp_path / "yolo/labels").glob("broken*"))  # the failed object has no label file
    assert (tmp_path / f"yolo/labels/{ident(ODD)}.txt").read_text() == ""  # both boxes were empty after clipping
    assert sorted(path.name for path in (tmp_path / "yolo").iterdir()) == [
        "classes.txt",
        "data.yaml",
        "labels",
        "train.txt",
        "val.txt",
    ]
    assert (tmp_path / "yolo/classes.txt").read_text() == "Dog\nCat\n"
    # None of the four labeled ids falls in the 10% validation split (their hashes, mod 100, are >= 10).
    assert (tmp_path / "yolo/train.txt").read_text() == "".join(
        f"./images/{image_name(ref).file_name}\n" for ref in (EIGHT, TWO_PETS, EMPTY_ROAD, ODD)
    )
    assert (tmp_path / "yolo/val.txt").read_text() == ""
    # No path: line: Ultralytics takes data.yaml's folder as the root, wherever the folder is moved.
    assert (tmp_path / "yolo/data.yaml").read_text() == (
        DATA_YAML_HEADER + f'train: train.txt\n{NO_VAL_COMMENT}val: train.txt\nnc: 2\nnames:\n  0: "Dog"\n  1: "Cat"\n'
    )


def test_a_folder_export_names_no_path_of_the_machine_that_wrote_it(tmp_path: Path) -> None:
    written = tmp_path / "written-here"
    run_export(written)
    for path in written.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text, path
    # Moved elsewhere, its lists still name images relative to themselves ("./images/..."), as Ultralytics reads them.
    moved = tmp_path / "moved"
    written.rename(moved)
    entries = (moved / "yolo/train.txt").read_text().split()
    assert entries and all(entry.startswith("./images/") for entry in entries)


def test_coco_fields_match_hand_computed_values(tmp_path: Path) -> None:
    run_export(tmp_path, formats=("coco",))
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert coco["categories"] == [
        {"id": 1, "name": "Dog", "supercategory": "object"},
        {"id": 2, "name": "Cat", "supercategory": "object"},
    ]
    assert [image["file_name"] for image in coco["images"]] == [
        image_name(ref).file_name for ref in (EIGHT, TWO_PETS, EMPTY_ROAD, ODD)
    ]
    assert coco["images"][1] == {
        "id": 2,
        "file_name": "park__two_pets-3250b320d4.png",
        "width": 640,
        "height": 480,
        "source_ref": "s3://example-bucket/images/park/two pets.png",
    }
    # Each box's confidence as the backend gave it (Ground Truth's consolidation here), for training code that
    # weighs or filters boxes by it.
    assert coco["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [98, 89, 339, 386], "area": 339 * 386, "iscrowd": 0}
        | {"confidence": 0.09},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0}
        | {"confidence": 0.8},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [600, 100, 40, 50], "area": 2000, "iscrowd": 0}
        | {"confidence": 0.7},
    ]


def test_voc_fields_match_hand_computed_values(tmp_path: Path) -> None:
    run_export(tmp_path, formats=("voc",))
    root = ET.parse(tmp_path / "voc/Annotations/park__two_pets-3250b320d4.xml").getroot()
    assert root.findtext("filename") == "park__two_pets-3250b320d4.png"
    assert root.findtext("folder") == "JPEGImages"
    assert root.findtext("path") == TWO_PETS  # the key itself stays in the file
    assert [root.findtext(f"size/{tag}") for tag in ("width", "height", "depth")] == ["640", "480", "3"]
    objects = [
        (obj.findtext("name"), [obj.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")])
        for obj in root.findall("object")
    ]
    # The devkit's 1-based inclusive indices: the Cat spans pixels 11..40 (0-based continuous 10..40); the
    # Dog clipped at the right edge ends on the last column, 640.
    assert objects == [("Cat", ["11", "21", "40", "60"]), ("Dog", ["601", "101", "640", "150"])]
    assert not list((tmp_path / "voc/Annotations").glob("broken*"))
    ids = [ident(ref) for ref in (EIGHT, TWO_PETS, EMPTY_ROAD, ODD)]
    assert (tmp_path / "voc/ImageSets/Main/trainval.txt").read_text() == "".join(f"{i}\n" for i in ids)
    assert (tmp_path / "voc/ImageSets/Main/train.txt").read_text() == "".join(f"{i}\n" for i in ids)
    assert (tmp_path / "voc/ImageSets/Main/val.txt").read_text() == ""


def test_summary_counts(tmp_path: Path) -> None:
    summary = run_export(tmp_path).summary("bbox-20261125-0123456789ab")
    assert summary["images"] == 5
    assert summary["imagesLabeled"] == 4
    assert summary["imagesWithoutBoxes"] == 2  # empty-road, and odd.jpg whose boxes were all empty
    assert summary["boxes"] == 3
    assert summary["boxesPerLabel"] == {"Dog": 2, "Cat": 1}
    assert summary["boxesClipped"] == 1
    assert summary["emptyBoxesDropped"] == 2
    assert summary["failedObjects"] == [
        {"sourceRef": "s3://example-bucket/images/broken.jpg", "reason": "ClientError: The image could not be loaded."}
    ]
    assert summary["unconfiguredLabels"] == []


def test_archives_hold_the_same_files(tmp_path: Path) -> None:
    run_export(tmp_path / "dir")
    run_export(tmp_path / "tar", archive=True)
    assert sorted(p.name for p in (tmp_path / "tar").iterdir()) == ["coco.json", "voc.tar.gz", "yolo.tar.gz"]
    for name in ("yolo", "voc"):
        with tarfile.open(tmp_path / "tar" / f"{name}.tar.gz", "r:gz") as archive:
            members = archive.getmembers()
            assert all(member.isfile() and member.mode == 0o644 for member in members)
            for member in members:
                content = archive.extractfile(member)
                assert content is not None
                on_disk_text = (tmp_path / "dir" / name / member.name).read_text()
                assert content.read().decode() == on_disk_text
            on_disk = sorted(
                str(p.relative_to(tmp_path / "dir" / name)) for p in (tmp_path / "dir" / name).rglob("*.*")
            )
            assert sorted(archive.getnames()) == on_disk


def test_yolo_archive_holds_what_ultralytics_loads(tmp_path: Path) -> None:
    run_export(tmp_path, formats=("yolo",), archive=True)
    extract_archive(tmp_path / "yolo.tar.gz", tmp_path / "out")
    assert (tmp_path / f"out/labels/{ident(EIGHT)}.txt").read_text() == "0 0.522461 0.550781 0.662109 0.753906\n"
    assert (tmp_path / f"out/labels/{ident(TWO_PETS)}.txt").read_text().count("\n") == 2
    assert (tmp_path / "out/classes.txt").read_text() == "Dog\nCat\n"
    # No path: line in an archive: Ultralytics then takes the folder data.yaml was extracted to.
    assert (tmp_path / "out/data.yaml").read_text() == (
        DATA_YAML_HEADER + f'train: train.txt\n{NO_VAL_COMMENT}val: train.txt\nnc: 2\nnames:\n  0: "Dog"\n  1: "Cat"\n'
    )


def test_streamed_tar_is_byte_for_byte_what_tarfile_writes(tmp_path: Path) -> None:
    """Hand-built ustar headers for short ASCII names, tarfile's PAX headers for the others; the
    uncompressed stream equals tarfile's own output for the same members, padding included."""
    members = [
        ("labels/a.txt", "0 0.5 0.5 0.1 0.1\n"),
        ("labels/empty.txt", ""),
        ("labels/été/ü.txt", "1 0.2 0.2 0.1 0.1\n"),
        ("x" * 100, "exactly 100 characters\n" * 30),
        ("y" * 101, "a PAX path\n"),
        ("Annotations/" + "deep/" * 30 + "name.xml", "<annotation />\n" * 40),
    ]
    sink = TarGzSink(tmp_path / "stream.tar.gz", mtime=1_764_000_000)
    for name, text in members:
        sink.write_text(name, text)
    sink.close()
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as reference:
        for name, text in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(text.encode()), 1_764_000_000, 0o644
            reference.addfile(info, io.BytesIO(text.encode()))
    assert gzip.decompress((tmp_path / "stream.tar.gz").read_bytes()) == expected.getvalue()


def test_archive_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    """What the writers hold after 1,000 images is what they hold after 8,000: nothing per file."""

    def images() -> Iterator[LabeledImage]:
        for index in range(8_000):
            yield LabeledImage(
                index + 1, f"s3://b/images/set/{index:06d}.jpg", 640, 480, 3, (Box("Dog", 1, 2, 30, 40),)
            )

    labels, stats = LabelSpace(LABELS), ExportStats()
    writers = make_writers(["yolo", "voc"], tmp_path, labels, stats, archive=True)
    stream = images()
    tracemalloc.start()
    try:
        for index, image in enumerate(stream, 1):
            for writer in writers:
                writer.add(image)
            if index == 1_000:
                after_1k = tracemalloc.get_traced_memory()[0]
        after_8k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for writer in writers:
        writer.close()
    # At most the two sinks' flush buffers (256 KiB each); a zip writer keeps a directory entry per file
    # (about 500 bytes), which would be some 7 MB here.
    assert after_8k - after_1k < 1024 * 1024


def _voc_with_elementtree(image: LabeledImage) -> tuple[str, str]:
    """The VOC file built with ElementTree: the template must match it."""
    name = image_name(image.source_ref)
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = name.file_name
    ET.SubElement(root, "path").text = image.source_ref
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = f"labeling job {image.job_name or 'unknown'}"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image.width), ("height", image.height), ("depth", image.depth)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for box in image.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        # What supervision's Pascal VOC writer (object_to_pascal_voc) computes for the same box.
        xmin, ymin = round(box.left + 1), round(box.top + 1)
        xmax, ymax = max(round(box.left + box.width), xmin), max(round(box.top + box.height), ymin)
        for tag, coordinate in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ET.SubElement(bndbox, tag).text = str(coordinate)
    ET.indent(root)
    return f"Annotations/{name.id}.xml", ET.tostring(root, encoding="unicode") + "\n"


class _Files:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def write_text(self, relative: str, text: str) -> None:
        self.files[relative] = text

    def close(self) -> None:
        return None


def _pieces(*pieces: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=8).map("".join)


_ODD_TEXT = _pieces("a", "é", "&", "<", ">", "&amp;", '"', "'", " ", ".", "/", "\\", "\n", "#", "?", "x.y")


@settings(max_examples=300, deadline=None)
@given(
    path=_ODD_TEXT,
    prefix=st.sampled_from(["s3://bucket/images/", "s3://bucket/", "s3://bucket//", "", "images/", "S3://b/"]),
    labels=st.lists(_ODD_TEXT, max_size=3),
    job=st.one_of(st.none(), _ODD_TEXT),
    coordinates=st.floats(min_value=-10, max_value=5000, allow_nan=False),
)
def test_voc_template_writes_what_elementtree_wrote(
    path: str, prefix: str, labels: list[str], job: str | None, coordinates: float
) -> None:
    source_ref = prefix + path + ".jpg"
    boxes = tuple(Box(label, coordinates, coordinates / 3, 10.5, coordinates / 7 + 1) for label in labels)
    image = LabeledImage(1, source_ref, 640, 480, 3, boxes, job)
    sink = _Files()
    expected = _voc_with_elementtree(image)
    VocWriter(sink, LabelSpace(LABELS)).add(image)
    [(name, text)] = sink.files.items()
    assert (name, text) == expected
    parsed = ET.fromstring(text)
    assert parsed.findtext("path") == source_ref
    assert [obj.findtext("name") for obj in parsed.findall("object")] == labels


@settings(max_examples=500, deadline=None)
@given(
    path=_pieces("a", "é", "/", ".", "..", "//", "?", "#", "[", "]", "%", ";", " ", "\t", "images/", "x.jpg"),
    prefix=st.sampled_from(["s3://bucket/", "s3://bucket", "s3://bück/", "s3:///", "S3://b/", "http://h/", "", "/"]),
)
def test_gallery_path_shortcut_agrees_with_urllib(path: str, prefix: str) -> None:
    """relative_path takes a string shortcut for the usual shapes; it must give what urlparse gives,
    whatever the key."""
    source_ref = prefix + path
    try:
        parsed = urlparse(source_ref)
    except ValueError:  # "Invalid IPv6 URL": unbalanced brackets in the bucket name
        with pytest.raises(ValueError):
            relative_path(source_ref)
        return
    key = parsed.path.lstrip("/") if parsed.scheme else source_ref
    unsafe = key.removeprefix("images/") or PurePosixPath(key).name
    # then "." and ".." segments spelled %2E and %2E%2E, empty segments dropped (never a step outside)
    parts = ["%2E%2E" if part == ".." else "%2E" if part == "." else part for part in unsafe.split("/") if part]
    relative = "/".join(parts) or "%2E"
    assert relative_path(source_ref) == relative


def test_an_unconfigured_label_gets_the_next_id_and_is_reported(tmp_path: Path) -> None:
    # The chained job's latest attribute labels a "Bird", which is not configured.
    stats = run_export(tmp_path, "chained.manifest", attribute=None, formats=("yolo",))
    assert stats.unconfigured_labels == ["Bird"]
    assert (tmp_path / f"yolo/labels/{ident(EIGHT)}.txt").read_text().splitlines()[1].startswith("2 ")
    assert (tmp_path / "yolo/classes.txt").read_text() == "Dog\nCat\nBird\n"


def test_relative_paths() -> None:
    assert relative_path("s3://bucket/images/a/b.jpg") == "a/b.jpg"
    assert relative_path("s3://bucket/other/b.jpg") == "other/b.jpg"
    assert relative_path("s3://bucket/images/") == "images"  # a prefix alone: its own name
    assert relative_path("s3://bucket/images/a%20b/c+d.jpg") == "a%20b/c+d.jpg"  # keys are taken as they are
    # "." and ".." segments and repeated slashes are valid in S3 keys; as a path they must not climb out.
    assert relative_path("s3://bucket/images/../../etc/cron.jpg") == "%2E%2E/%2E%2E/etc/cron.jpg"
    assert relative_path("s3://bucket/images/./a//b/.hidden.jpg") == "%2E/a/b/.hidden.jpg"
    assert relative_path("s3://bucket/images/..") == "%2E%2E"


@given(st.lists(st.sampled_from(["..", ".", "", "a", ".b", "c.jpg", "é", "%2E"]), min_size=1, max_size=6))
def test_an_export_path_never_leaves_the_export_folder(segments: list[str]) -> None:
    relative = relative_path("s3://bucket/images/" + "/".join(segments))
    assert relative and not relative.startswith("/")
    assert all(part not in ("", ".", "..") for part in relative.split("/"))
    root = PurePosixPath("/export")
    assert os.path.normpath(root / relative).startswith("/export/")


def _random_images(seed: int, count: int) -> list[LabeledImage]:
    rng = random.Random(seed)
    images = []
    for index in range(count):
        width, height = rng.randint(32, 4000), rng.randint(32, 4000)
        boxes = []
        for _ in range(rng.randint(0, 6)):
            left, top = rng.randint(0, width - 2), rng.randint(0, height - 2)
            boxes.append(Box(rng.choice(LABELS), left, top, rng.randint(1, width - left), rng.randint(1, height - top)))
        images.append(LabeledImage(index + 1, f"s3://b/images/{index}.jpg", width, height, 3, tuple(boxes)))
    return images


def test_yolo_round_trip(tmp_path: Path) -> None:
    """YOLO -> boxes -> YOLO gives the same text; boxes survive within the format's rounding."""
    images = _random_images(7, 200)
    labels = LabelSpace(LABELS)
    writer = YoloWriter(DirectorySink(tmp_path / "first"), labels, ExportStats())
    for image in images:
        writer.add(image)
    writer.close()
    again = YoloWriter(DirectorySink(tmp_path / "second"), LabelSpace(LABELS), ExportStats())
    for image in images:
        text = (tmp_path / f"first/labels/{ident(image.source_ref)}.txt").read_text()
        boxes = read_yolo_boxes(text, image.width, image.height, LABELS)
        for original, back in zip(image.boxes, boxes, strict=True):
            assert back.label == original.label
            assert back.left == pytest.approx(original.left, abs=image.width * 1e-6)
            assert back.height == pytest.approx(original.height, abs=image.height * 1e-6)
        again.add(LabeledImage(image.line_number, image.source_ref, image.width, image.height, 3, tuple(boxes)))
    again.close()
    for path in (tmp_path / "first").rglob("*.txt"):
        assert path.read_text() == (tmp_path / "second" / path.relative_to(tmp_path / "first")).read_text()


def test_coco_round_trip(tmp_path: Path) -> None:
    images = _random_images(11, 200)
    first = CocoWriter(tmp_path / "first.json", LabelSpace(LABELS))
    for image in images:
        first.add(image)
    first.close()
    document = json.loads((tmp_path / "first.json").read_text())
    boxes = read_coco_boxes(document)
    assert boxes == {image_name(image.source_ref).file_name: list(image.boxes) for image in images}
    second = CocoWriter(tmp_path / "second.json", LabelSpace(LABELS))
    for image in images:
        second.add(
            LabeledImage(
                image.line_number,
                image.source_ref,
                image.width,
                image.height,
                3,
                tuple(boxes[image_name(image.source_ref).file_name]),
            )
        )
    second.close()
    assert json.loads((tmp_path / "second.json").read_text()) == document


def test_data_yaml_reads_as_ultralytics_reads_it(tmp_path: Path) -> None:
    """Ultralytics loads data.yaml with yaml.safe_load and takes `names` as an id -> name mapping."""
    import yaml

    run_export(tmp_path, "chained.manifest", attribute=None, formats=("yolo",))
    data = yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())
    assert data == {
        "train": "train.txt",
        "val": "train.txt",  # one image: nothing fell into the validation split
        "nc": 3,
        "names": {0: "Dog", 1: "Cat", 2: "Bird"},
    }
    # Ultralytics' rule (data/utils.py check_det_dataset): root = path, else data.yaml's folder; here no path, so
    # the root is the folder data.yaml is in, wherever it was moved. A list file's "./" lines are read against the
    # list's own folder, and each image's labels are found by swapping /images/ for /labels/ and the suffix for
    # .txt (img2label_paths).
    root = (tmp_path / "yolo/data.yaml").parent
    [entry] = (root / data["train"]).read_text().splitlines()
    image = root / entry.removeprefix("./")
    label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
    assert label.is_file() and label.read_text().count("\n") == 2


@given(
    st.lists(
        st.sampled_from(["..", ".", "", "a", ".b", "c.jpg", "é", "%2E", "x y", "a__b", "#?", "-", "D.JPEG"]),
        min_size=1,
        max_size=6,
    )
)
def test_an_image_id_is_one_safe_file_name(segments: list[str]) -> None:
    key = "images/" + "/".join(segments)
    name = image_name(f"s3://bucket/{key}")
    # One name in one folder, that no shell reads as an option and no file system as a step up or hidden.
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", name.id), name
    assert name.file_name.startswith(name.id) and re.fullmatch(r"(\.[a-z0-9]+)?", name.file_name[len(name.id) :])
    assert (
        name.id.endswith("-" + hashlib.sha256(key.encode()).hexdigest()[:10])
        or name.id == (hashlib.sha256(key.encode()).hexdigest()[:10])
    )


def test_keys_that_read_alike_get_different_ids() -> None:
    alike = [
        "images/a/b__c.jpg",
        "images/a__b/c.jpg",
        "images/a b/c.jpg",
        "images/a_b/c.jpg",
        "images/a/x.jpg",
        "images/b/x.jpg",
    ]
    ids = [image_name(f"s3://bucket/{key}").id for key in alike]
    assert len(set(ids)) == len(alike)
    assert ids[0].startswith("a__b__c-") and ids[1].startswith("a__b__c-")  # readable alike, told apart by the hash
    # The bucket is not part of the id: the same key exported from a copy of the bucket keeps its name.
    assert image_name("s3://other/images/a/x.jpg") == image_name("s3://bucket/images/a/x.jpg")
    # The id comes from the key verbatim: '#' and '?' are part of it, not a URL's fragment or query.
    assert image_name("s3://bucket/images/walk #1?.jpg").id != image_name("s3://bucket/images/walk .jpg").id


def test_several_annotators_are_consolidated_in_every_format_and_kept_apart_beside_coco(tmp_path: Path) -> None:
    from labeling_pipeline.exports.formats import ExportStats
    from labeling_pipeline.job_results import ANNOTATORS_COCO_FILE, write_exports

    # Two annotators agree on a dog (IoU 0.8), one of them also saw a cat the other did not; a third image was
    # answered by one person only; one annotator answered the second image with no box at all.
    pair = LabeledImage(
        1, "s3://b/images/a.png", 200, 100, 3,
        (Box("Dog", 10, 10, 50, 50, annotator="7"), Box("Dog", 15, 10, 50, 50, annotator="8"),
         Box("Cat", 120, 20, 30, 30, annotator="8")),
        annotators=("7", "8"),
    )  # fmt: skip
    empty_and_one = LabeledImage(
        2, "s3://b/images/b.png", 200, 100, 3, (Box("Cat", 0, 0, 40, 40, annotator="7"),), annotators=("7", "8")
    )
    alone = LabeledImage(3, "s3://b/images/c.png", 200, 100, 3, (Box("Dog", 1, 2, 3, 4, annotator="9"),))
    stats = write_exports([pair, empty_and_one, alone], tmp_path, ["Dog", "Cat"], "job", ExportStats())

    coco = json.loads((tmp_path / "coco.json").read_text())
    by_image = {image["id"]: image["source_ref"].rsplit("/", 1)[1] for image in coco["images"]}
    kept = sorted((by_image[a["image_id"]], a["category_id"], a["bbox"]) for a in coco["annotations"])
    # With two annotators a box one of them drew is kept (half of them), as the rule says.
    assert kept == [
        ("a.png", 1, [12.5, 10, 50, 50]),
        ("a.png", 2, [120, 20, 30, 30]),
        ("b.png", 2, [0, 0, 40, 40]),
        ("c.png", 1, [1, 2, 3, 4]),
    ]
    own = json.loads((tmp_path / ANNOTATORS_COCO_FILE).read_text())
    assert len(own["annotations"]) == 5 and {a["annotator"] for a in own["annotations"]} == {"7", "8", "9"}
    with tarfile.open(tmp_path / "yolo.tar.gz") as yolo:
        names = {PurePosixPath(name).name: name for name in yolo.getnames()}
        [a_labels] = [name for leaf, name in names.items() if leaf.startswith("a-") and leaf.endswith(".txt")]
        extracted = yolo.extractfile(a_labels)
        assert extracted is not None and len(extracted.read().decode().splitlines()) == 2
    summary = stats.summary("job")
    assert summary["boxes"] == 4 and summary["boxesPerLabel"] == {"Dog": 2, "Cat": 2}
    consolidation = summary["consolidation"]
    assert (consolidation["consolidatedImages"], consolidation["boxesDrawn"], consolidation["boxesKept"]) == (2, 4, 3)
    # a.png: F1 of one match among 1 + 2 boxes = 2/3; b.png: one drew a box, the other none: 0.
    assert consolidation["agreement"]["mean"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)


def test_one_annotator_an_image_changes_nothing_and_writes_no_second_file(tmp_path: Path) -> None:
    from labeling_pipeline.exports.formats import ExportStats
    from labeling_pipeline.job_results import ANNOTATORS_COCO_FILE, write_exports

    dog = Box("Dog", 10, 10, 50, 50, annotator="7")
    images = [
        LabeledImage(1, "s3://b/images/a.png", 200, 100, 3, (dog,), annotators=("7",)),
        LabeledImage(2, "s3://b/images/b.png", 200, 100, 3, (Box("Cat", 1, 1, 5, 5, 0.9),)),
    ]
    stats = write_exports(images, tmp_path, ["Dog", "Cat"], "job", ExportStats())
    assert not (tmp_path / ANNOTATORS_COCO_FILE).exists()
    assert "consolidation" not in stats.summary("job")
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert [a["bbox"] for a in coco["annotations"]] == [[10, 10, 50, 50], [1, 1, 5, 5]]
    assert coco["annotations"][0]["annotator"] == "7"
