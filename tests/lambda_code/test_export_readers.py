"""The exports loaded by the readers that training code uses: pycocotools for COCO, and supervision's
DetectionDataset for COCO, YOLO and Pascal VOC, each in one call on the flat layout, with same-named images
in two folders and boxes clipped at every edge. Every box must come back where the output manifest put it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image
from pycocotools.coco import COCO

from labeling_pipeline.backends.ground_truth.results import read_output_manifest
from labeling_pipeline.exports.formats import IMAGE_FOLDERS, ExportStats, LabelSpace, export, image_name, make_writers

LABELS = ["Dog", "Cat"]
BUCKET = "s3://example-bucket/"
# key -> (width, height, boxes as (label, left, top, width, height) in the manifest, before clipping)
IMAGES: dict[str, tuple[int, int, list[tuple[str, int, int, int, int]]]] = {
    "images/farm/a/x.jpg": (320, 200, [("Dog", -15, 40, 60, 50)]),  # spills past the left edge
    "images/farm/b/x.jpg": (320, 200, [("Cat", 100, -8, 40, 30)]),  # same file name, other folder; past the top
    "images/farm/wide shot.png": (400, 240, [("Dog", 350, 60, 80, 40), ("Cat", 20, 200, 30, 70)]),  # right; bottom
    "images/farm/corner.JPG": (200, 300, [("Cat", -10, -10, 30, 40), ("Dog", 180, 280, 50, 50)]),  # both corners
    "images/farm/empty.jpg": (240, 160, []),  # a background image
    "images/farm/whole.png": (160, 120, [("Dog", 0, 0, 160, 120)]),  # exactly the whole image
}
FAILED_KEY = "images/farm/broken.jpg"


def _clipped(width: int, height: int, box: tuple[str, int, int, int, int]) -> tuple[str, list[float]]:
    label, left, top, box_width, box_height = box
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + box_width, width), min(top + box_height, height)
    return label, [x1, y1, x2, y2]


def _manifest_line(key: str) -> str:
    width, height, boxes = IMAGES[key]
    return json.dumps(
        {
            "source-ref": BUCKET + key,
            "labels": {
                "annotations": [
                    {"class_id": LABELS.index(label), "left": left, "top": top, "width": w, "height": h}
                    for label, left, top, w, h in boxes
                ],
                "image_size": [{"width": width, "height": height, "depth": 3}],
            },
            "labels-metadata": {
                "class-map": {"0": "Dog", "1": "Cat"},
                "type": "groundtruth/object-detection",
                "job-name": "labeling-job/readers",
                "human-annotated": "yes",
            },
        }
    )


def _failed_line() -> str:
    return json.dumps(
        {"source-ref": BUCKET + FAILED_KEY, "labels-metadata": {"failure-reason": "ClientError: cannot load"}}
    )


def _expected() -> dict[str, tuple[list[str], np.ndarray]]:
    """Per exported file name: the class names and xyxy boxes the readers must return."""
    expected = {}
    for key, (width, height, boxes) in IMAGES.items():
        clipped = [_clipped(width, height, box) for box in boxes]
        xyxy = np.array([corners for _, corners in clipped], dtype=float).reshape(-1, 4)
        expected[image_name(BUCKET + key).file_name] = ([label for label, _ in clipped], xyxy)
    return expected


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All three formats written once, then the images placed where each layout wants them (what
    `bbox-labeling export --with-images` does)."""
    root = tmp_path_factory.mktemp("readers")
    pictures = root / "pictures"
    pictures.mkdir()
    for key, (width, height, _) in IMAGES.items():
        file_name = image_name(BUCKET + key).file_name
        Image.new("RGB", (width, height), (90, 120, 160)).save(
            pictures / file_name, "PNG" if file_name.endswith(".png") else "JPEG"
        )
    labels, stats = LabelSpace(LABELS), ExportStats()
    writers = make_writers(["coco", "yolo", "voc"], root, labels, stats, archive=False)
    lines = [_manifest_line(key) for key in IMAGES] + [_failed_line()]
    export(read_output_manifest(lines, "labels", stats.read), writers, stats, labels)
    for fmt, folder in IMAGE_FOLDERS.items():
        shutil.copytree(pictures, root / fmt / folder)
    return root


def _by_file_name(dataset: sv.DetectionDataset) -> dict[str, tuple[list[str], np.ndarray]]:
    found = {}
    for path, _, detections in dataset:
        assert detections.class_id is not None
        names = [dataset.classes[class_id] for class_id in detections.class_id]
        found[Path(path).name] = (names, detections.xyxy.astype(float))
    return found


def _assert_same(found: dict[str, tuple[list[str], np.ndarray]], tolerance: float) -> None:
    expected = _expected()
    assert sorted(found) == sorted(expected)
    for file_name, (names, xyxy) in expected.items():
        assert found[file_name][0] == names, file_name
        np.testing.assert_allclose(found[file_name][1], xyxy, atol=tolerance, err_msg=file_name)


def test_every_id_is_flat_and_the_same_file_name_in_two_folders_stays_apart() -> None:
    names = [image_name(BUCKET + key) for key in IMAGES]
    assert len({name.id for name in names}) == len(IMAGES)
    assert all("/" not in name.file_name and not name.file_name.startswith(".") for name in names)
    assert image_name(BUCKET + "images/farm/a/x.jpg").id.startswith("farm__a__x-")
    assert image_name(BUCKET + "images/farm/corner.JPG").file_name.endswith(".jpg")


def test_pycocotools_reads_every_image_and_box(exported: Path) -> None:
    coco = COCO(str(exported / "coco.json"))
    assert sorted(coco.getCatIds()) == [1, 2]
    found = {}
    for image in coco.loadImgs(coco.getImgIds()):
        assert (exported / "yolo" / "images" / image["file_name"]).is_file()
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        names = [coco.loadCats(annotation["category_id"])[0]["name"] for annotation in annotations]
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)], dtype=float)
        found[image["file_name"]] = (names, xyxy.reshape(-1, 4))
        assert image["source_ref"].startswith(BUCKET + "images/farm/")  # the key itself stays in the file
    _assert_same(found, tolerance=0)


def test_supervision_reads_coco_in_one_call(exported: Path) -> None:
    dataset = sv.DetectionDataset.from_coco(str(exported / "yolo" / "images"), str(exported / "coco.json"))
    _assert_same(_by_file_name(dataset), tolerance=0)


def test_supervision_reads_yolo_in_one_call(exported: Path) -> None:
    root = exported / "yolo"
    dataset = sv.DetectionDataset.from_yolo(str(root / "images"), str(root / "labels"), str(root / "data.yaml"))
    assert dataset.classes == LABELS
    # six decimals of the image size: under a thousandth of a pixel here
    _assert_same(_by_file_name(dataset), tolerance=1e-3)


def test_supervision_reads_pascal_voc_in_one_call_with_devkit_coordinates(exported: Path) -> None:
    root = exported / "voc"
    dataset = sv.DetectionDataset.from_pascal_voc(str(root / "JPEGImages"), str(root / "Annotations"))
    # supervision reads the devkit's 1-based xmin/ymin and shifts them back: a box clipped at the left or
    # top edge reads as 0, not -1, and one at the right or bottom edge ends on the image's width or height.
    _assert_same(_by_file_name(dataset), tolerance=0)


def test_voc_split_lists_name_every_labeled_image_as_the_devkit_reads_them(exported: Path) -> None:
    main = exported / "voc" / "ImageSets" / "Main"
    trainval = main.joinpath("trainval.txt").read_text().split()
    train, val = main.joinpath("train.txt").read_text().split(), main.joinpath("val.txt").read_text().split()
    assert sorted(trainval) == sorted(image_name(BUCKET + key).id for key in IMAGES)  # the failed one is not listed
    assert sorted(train + val) == sorted(trainval) and not set(train) & set(val)
    for file_id in trainval:  # the devkit's (and detectron2's) paths from an id
        assert (exported / "voc" / "Annotations" / f"{file_id}.xml").is_file()
        assert len(list((exported / "voc" / "JPEGImages").glob(f"{file_id}.*"))) == 1


def test_yolo_lists_resolve_to_the_images_as_ultralytics_resolves_them(exported: Path) -> None:
    root = exported / "yolo"
    listed = root.joinpath("train.txt").read_text().split() + root.joinpath("val.txt").read_text().split()
    assert len(listed) == len(IMAGES)
    for entry in listed:
        picture = root / entry.removeprefix("./")  # "./" is the list file's folder
        assert picture.is_file()
        assert Path(str(picture).replace("/images/", "/labels/")).with_suffix(".txt").is_file()


def test_the_split_is_stable_and_holds_about_a_tenth() -> None:
    splits = [image_name(f"{BUCKET}images/set/{index:05d}.jpg").split for index in range(5_000)]
    assert 0.08 < splits.count("val") / len(splits) < 0.12
    # Derived from the key alone: the same image keeps its split in every export, however the set grows.
    assert [image_name(f"{BUCKET}images/set/{index:05d}.jpg").split for index in range(5_000)] == splits
