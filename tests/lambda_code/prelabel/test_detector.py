"""The detector core: ONNX graphs built here in the tensor layouts real exporters write, run in onnxruntime.

One graph computes its box from its input (where the red pixels are), so the letterbox, the RGB order, the image
modes and EXIF orientation are proven along with the way back to image pixels; the others write constant outputs,
to prove how each layout is read (class map, score threshold, NMS, the cap, clipping, malformed outputs)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from labeling_pipeline.labels import Box
from labeling_pipeline.prelabel.detector import (
    Detections,
    DetectorError,
    DetectorSpec,
    OnnxDetector,
    class_wise_nms,
    decode,
    letterbox,
)

OPSET = 17
IR_VERSION = 9  # what onnxruntime reads; onnx's own default runs ahead of it
Dim = int | str

# --- graphs -------------------------------------------------------------------------------------------------------


def model_bytes(
    nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> bytes:
    graph = helper.make_graph(nodes, "detector", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def image_input(shape: Sequence[Dim] = (1, 3, "height", "width")) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, list(shape))


def constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name=f"{name}_value"))


def constant_model(outputs: dict[str, np.ndarray], input_shape: Sequence[Dim] = (1, 3, "height", "width")) -> bytes:
    """A detector that writes the same outputs whatever the image."""
    return model_bytes(
        [constant(name, value) for name, value in outputs.items()],
        [image_input(input_shape)],
        [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
            for name, value in outputs.items()
        ],
    )


def red_box_model(input_shape: Sequence[Dim], candidates: int = 50) -> bytes:
    """A "yolo" detector ([1, 4 + 2 classes, candidates]) whose first column is the extent of the input's red
    pixels (red channel above one half), class 0 at 0.9; the other columns are small boxes scored 0.01."""
    nodes = [
        constant("channel_red", np.array(0, dtype=np.int64)),
        constant("half", np.array(0.5, dtype=np.float32)),
        constant("one", np.array(1.0, dtype=np.float32)),
        constant("two", np.array(2.0, dtype=np.float32)),
        constant("class_scores", np.array([[0.9, 0.05]], dtype=np.float32)),
        constant("last_axis", np.array([2], dtype=np.int64)),
        constant(
            "other_columns",
            np.tile(np.array([5.0, 5.0, 4.0, 4.0, 0.01, 0.01], dtype=np.float32)[:, None], (1, candidates - 1))[None],
        ),
        helper.make_node("Gather", ["images", "channel_red"], ["red"], axis=1),  # [1, H, W]
        helper.make_node("Greater", ["red", "half"], ["is_red"]),
        helper.make_node("Cast", ["is_red"], ["red_mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["red_mask"], ["red_columns"], axes=[1], keepdims=0),  # [1, W]
        helper.make_node("ReduceMax", ["red_mask"], ["red_rows"], axes=[2], keepdims=0),  # [1, H]
    ]
    for side, profile in (("x", "red_columns"), ("y", "red_rows")):
        nodes += [
            helper.make_node("ArgMax", [profile], [f"first_{side}"], axis=1, keepdims=1),
            helper.make_node("ArgMax", [profile], [f"last_{side}"], axis=1, keepdims=1, select_last_index=1),
            helper.make_node("Cast", [f"first_{side}"], [f"start_{side}"], to=TensorProto.FLOAT),
            helper.make_node("Cast", [f"last_{side}"], [f"last_{side}_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", [f"last_{side}_float", "one"], [f"end_{side}"]),  # past the last red pixel
            helper.make_node("Sub", [f"end_{side}", f"start_{side}"], [f"size_{side}"]),
            helper.make_node("Add", [f"start_{side}", f"end_{side}"], [f"twice_centre_{side}"]),
            helper.make_node("Div", [f"twice_centre_{side}", "two"], [f"centre_{side}"]),
        ]
    nodes += [
        helper.make_node(
            "Concat", ["centre_x", "centre_y", "size_x", "size_y", "class_scores"], ["found_column"], axis=1
        ),  # [1, 6]
        helper.make_node("Unsqueeze", ["found_column", "last_axis"], ["found"]),  # [1, 6, 1]
        helper.make_node("Concat", ["found", "other_columns"], ["output0"], axis=2),
    ]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, candidates])
    return model_bytes(nodes, [image_input(input_shape)], [output])


# --- images -------------------------------------------------------------------------------------------------------


def picture(
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    color: tuple[int, int, int] = (255, 255, 255),
    decoy: tuple[int, int, int, int] | None = None,
    background: int = 0,
) -> Image.Image:
    """A gray background (black by default), with one rectangle (left, top, right, bottom) in color, and
    optionally a blue one elsewhere."""
    pixels = np.full((size[1], size[0], 3), background, dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = color
    if decoy is not None:
        left, top, right, bottom = decoy
        pixels[top:bottom, left:right] = (0, 0, 255)
    return Image.fromarray(pixels)


def sixteen_bit(image: Image.Image) -> Image.Image:
    levels = np.asarray(image.convert("L")).astype(np.uint16) * 257
    converted = Image.fromarray(levels)
    assert converted.mode == "I;16"
    return converted


def exif_rotated_jpeg(image: Image.Image, folder: Path) -> Image.Image:
    """A JPEG stored on its side, with the EXIF orientation (6: turn 90 degrees clockwise) that shows it upright."""
    path = folder / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    image.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    opened = Image.open(path)
    assert opened.size == (image.height, image.width)
    return opened


# --- helpers ------------------------------------------------------------------------------------------------------

PEOPLE_AND_CARS = {0: "Person", 1: "Car"}


def spec(layout: Any = "yolo", **changes: Any) -> DetectorSpec:
    settings_: dict[str, Any] = {"input_size": 640, "class_map": PEOPLE_AND_CARS, "min_score": 0.25, **changes}
    return DetectorSpec(layout, **settings_)


def assert_boxes(actual: Sequence[Box], expected: Sequence[Box], tolerance: float = 1e-4) -> None:
    assert [box.label for box in actual] == [box.label for box in expected]
    for found, wanted in zip(actual, expected, strict=True):
        assert found[1:5] == pytest.approx(wanted[1:5], abs=tolerance), (found, wanted)
        assert found.confidence == pytest.approx(wanted.confidence, abs=1e-6)


def yolo_output(columns: Sequence[tuple[float, ...]], classes: int = 3, candidates: int = 10) -> np.ndarray:
    """[1, 4 + classes, candidates] from (x1, y1, x2, y2, class, score) columns; the rest score nothing."""
    output = np.zeros((1, 4 + classes, candidates), dtype=np.float32)
    output[0, :4, :] = np.array([[5.0], [5.0], [4.0], [4.0]])
    for index, (x1, y1, x2, y2, class_id, score) in enumerate(columns):
        output[0, :4, index] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        output[0, 4 + int(class_id), index] = score
    return output


# --- the input: letterbox, RGB, modes, orientation, size ------------------------------------------------------------

# At every scale below (0.8, 0.64, 0.4, 0.32, 0.384) the rectangles' edges fall on whole input pixels, so the box
# found is the rectangle, not a pixel more or less.
RED_RECTANGLES = [
    ((800, 600), (100, 150, 300, 400)),  # landscape: padded above and below in a square input
    ((450, 1000), (125, 250, 375, 750)),  # portrait: padded left and right
]


def expected_red_box(box: tuple[int, int, int, int]) -> Box:
    left, top, right, bottom = box
    return Box("Person", left, top, right - left, bottom - top, 0.9)


@pytest.mark.parametrize(("image_size", "rectangle"), RED_RECTANGLES)
@pytest.mark.parametrize(
    ("input_shape", "input_size"),
    [
        ((1, 3, "height", "width"), (640, 640)),  # dynamic: the setting's size
        ((1, 3, 320, 320), (320, 320)),  # fixed: the model's own, though the setting says 640
        ((1, 3, 384, 640), (640, 384)),  # fixed and not square (imgsz=(384, 640))
    ],
)
def test_the_box_the_model_finds_in_its_input_is_the_rectangle_in_image_pixels(
    image_size: tuple[int, int],
    rectangle: tuple[int, int, int, int],
    input_shape: tuple[Dim, ...],
    input_size: tuple[int, int],
) -> None:
    detector = OnnxDetector(red_box_model(input_shape), spec(input_size=640))
    assert detector.input_size == input_size
    # A blue decoy: a model fed BGR would find it instead.
    image = picture(image_size, rectangle, color=(255, 0, 0), decoy=(0, 0, 40, 40))
    detections = detector.detect(image)
    assert_boxes(detections.boxes, [expected_red_box(rectangle)], tolerance=1.0)
    assert (detections.dropped_unmapped, detections.dropped_low_score, detections.dropped_outside_image) == (0, 49, 0)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda image, _: image.convert("L"), id="L"),
        pytest.param(lambda image, _: image.convert("RGBA"), id="RGBA"),
        pytest.param(lambda image, _: image.convert("P"), id="P"),
        pytest.param(lambda image, _: image.convert("CMYK"), id="CMYK"),
        pytest.param(lambda image, _: sixteen_bit(image), id="I;16"),
        pytest.param(exif_rotated_jpeg, id="EXIF-rotated JPEG"),
    ],
)
@pytest.mark.parametrize(("image_size", "rectangle"), RED_RECTANGLES)
def test_every_image_mode_and_orientation_gives_the_box_of_the_rgb_original(
    convert: Any, image_size: tuple[int, int], rectangle: tuple[int, int, int, int], tmp_path: Path
) -> None:
    detector = OnnxDetector(red_box_model((1, 3, 640, 640)), spec())
    # Dark gray rather than black: 16-bit levels clipped to 8 bits instead of scaled would turn it all bright.
    original = picture(image_size, rectangle, background=60)
    expected = detector.detect(original).boxes
    assert_boxes(expected, [expected_red_box(rectangle)], tolerance=1.0)
    assert_boxes(detector.detect(convert(original, tmp_path)).boxes, expected, tolerance=1.0)


def test_the_letterbox_is_ultralytics_gray_padding_around_rgb_in_0_to_1() -> None:
    red = Image.new("RGB", (800, 600), (255, 0, 0))
    letterboxed = letterbox(red, (640, 640))
    assert letterboxed.tensor.shape == (1, 3, 640, 640)
    assert letterboxed.tensor.dtype == np.float32
    assert (letterboxed.scale, letterboxed.pad_x, letterboxed.pad_y, letterboxed.image_size) == (0.8, 0, 80, (800, 600))
    assert letterboxed.tensor[0, :, 0, 320].tolist() == pytest.approx([114 / 255] * 3)  # padding above
    assert letterboxed.tensor[0, :, 639, 320].tolist() == pytest.approx([114 / 255] * 3)  # padding below
    assert letterboxed.tensor[0, :, 320, 320].tolist() == [1.0, 0.0, 0.0]  # the image, red first


def test_an_odd_padding_rounds_as_ultralytics_does() -> None:
    # 640 - 639 = 1 pixel of padding: Ultralytics puts it below (top = round(0.5 - 0.1) = 0).
    letterboxed = letterbox(Image.new("RGB", (1000, 999)), (640, 640))
    assert (letterboxed.pad_x, letterboxed.pad_y) == (0, 0)
    assert letterboxed.tensor[0, :, 639, 0].tolist() == pytest.approx([114 / 255] * 3)


def test_onnxruntime_is_not_imported_to_read_outputs() -> None:
    lambda_root = Path(__file__).resolve().parents[3] / "lambda"
    probe = "import sys, labeling_pipeline.prelabel.detector; print('onnxruntime' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=lambda_root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- "yolo": class map, threshold, NMS, cap, clipping --------------------------------------------------------------

YOLO_COLUMNS = [
    (100, 100, 200, 200, 0, 0.9),  # Person
    (110, 110, 210, 210, 0, 0.8),  # another Person over the first (IoU 0.68): suppressed
    (110, 110, 210, 210, 1, 0.7),  # a Car in the same place: kept, NMS is within a class
    (300, 300, 400, 400, 2, 0.95),  # class 2 is not in the class map
    (400, 100, 450, 150, 0, 0.2),  # below min_score
    (600, 500, 700, 600, 1, 0.6),  # past the right edge: clipped
]


def test_yolo_keeps_the_best_box_of_each_class_and_the_mapped_classes_only() -> None:
    detector = OnnxDetector(constant_model({"output0": yolo_output(YOLO_COLUMNS)}), spec())
    detections = detector.detect(Image.new("RGB", (640, 640)))
    assert_boxes(
        detections.boxes,
        [
            Box("Person", 100, 100, 100, 100, 0.9),
            Box("Car", 110, 110, 100, 100, 0.7),
            Box("Car", 600, 500, 40, 100, 0.6),
        ],
    )
    # 5 of the 10 columns score at least 0.25; of what NMS keeps, one is of class 2.
    assert (detections.dropped_unmapped, detections.dropped_low_score, detections.dropped_outside_image) == (1, 5, 0)


def test_yolo_keeps_the_best_max_detections() -> None:
    detector = OnnxDetector(constant_model({"output0": yolo_output(YOLO_COLUMNS)}), spec(max_detections=2))
    assert_boxes(
        detector.detect(Image.new("RGB", (640, 640))).boxes,
        [Box("Person", 100, 100, 100, 100, 0.9), Box("Car", 110, 110, 100, 100, 0.7)],
    )


def test_yolo_iou_threshold_decides_what_overlaps_too_much() -> None:
    # The two Persons overlap by an IoU of 0.68: a threshold above that keeps both.
    detector = OnnxDetector(constant_model({"output0": yolo_output(YOLO_COLUMNS)}), spec(iou_threshold=0.7))
    labels = [(box.label, box.confidence) for box in detector.detect(Image.new("RGB", (640, 640))).boxes]
    assert labels == [
        ("Person", pytest.approx(0.9)),
        ("Person", pytest.approx(0.8)),
        ("Car", pytest.approx(0.7)),
        ("Car", pytest.approx(0.6)),
    ]


def test_yolo_boxes_map_back_through_the_padding_and_those_in_it_are_dropped() -> None:
    # A 640x320 image fills the 640 input's width at scale 1, padded by 160 above.
    columns = [(100, 200, 200, 300, 0, 0.9), (100, 10, 200, 100, 0, 0.8)]
    detector = OnnxDetector(constant_model({"output0": yolo_output(columns)}), spec())
    detections = detector.detect(Image.new("RGB", (640, 320)))
    assert_boxes(detections.boxes, [Box("Person", 100, 40, 100, 100, 0.9)])
    assert detections.dropped_outside_image == 1


# --- "yolo-nms" ---------------------------------------------------------------------------------------------------

YOLO_NMS_ROWS = np.zeros((1, 8, 6), dtype=np.float32)
YOLO_NMS_ROWS[0, :5] = [
    (100, 100, 200, 200, 0.9, 0),
    (110, 110, 210, 210, 0.8, 0),  # overlaps the first, but the model has suppressed already: kept
    (300, 300, 400, 400, 0.95, 2),  # not in the class map
    (400, 100, 450, 150, 0.1, 1),  # below min_score
    (600, 500, 700, 600, 0.6, 1),  # past the right edge: clipped
]  # rows 5 to 7: Ultralytics' zero padding


@pytest.mark.parametrize(("min_score", "low_score"), [(0.25, 1), (0.0, 0)])
def test_yolo_nms_reads_the_rows_as_they_are_and_skips_the_zero_padding(min_score: float, low_score: int) -> None:
    detector = OnnxDetector(constant_model({"output0": YOLO_NMS_ROWS}), spec("yolo-nms", min_score=min_score))
    detections = detector.detect(Image.new("RGB", (640, 640)))
    expected = [
        Box("Person", 100, 100, 100, 100, 0.9),
        Box("Person", 110, 110, 100, 100, 0.8),
        Box("Car", 600, 500, 40, 100, 0.6),
    ]
    if min_score == 0.0:
        expected.append(Box("Car", 400, 100, 50, 50, 0.1))
    assert_boxes(detections.boxes, expected)
    assert (detections.dropped_unmapped, detections.dropped_low_score) == (1, low_score)


def test_yolo_nms_keeps_the_best_max_detections() -> None:
    detector = OnnxDetector(constant_model({"output0": YOLO_NMS_ROWS}), spec("yolo-nms", max_detections=1))
    assert_boxes(detector.detect(Image.new("RGB", (640, 640))).boxes, [Box("Person", 100, 100, 100, 100, 0.9)])


# --- "boxes-scores-labels" ----------------------------------------------------------------------------------------

BOXES = np.array([[100, 100, 200, 200], [300, 300, 400, 400], [600, 500, 700, 600], [10, 10, 20, 20]], np.float32)
SCORES = np.array([0.9, 0.95, 0.6, 0.1], dtype=np.float32)
LABELS = np.array([0, 2, 1, 0], dtype=np.int64)


@pytest.mark.parametrize("batch", [True, False], ids=["with batch", "without batch"])
@pytest.mark.parametrize("label_type", [np.int64, np.int32, np.float32], ids=["int64", "int32", "float32"])
@pytest.mark.parametrize(
    ("names", "order"),
    [
        (("boxes", "scores", "labels"), ("boxes", "scores", "labels")),
        (("labels", "det_boxes", "det_scores"), ("labels", "boxes", "scores")),  # found by name in any order
        (("pred_boxes", "pred_scores", "pred_classes"), ("boxes", "scores", "labels")),
        (("output0", "output1", "output2"), ("boxes", "scores", "labels")),  # no names: in this order
    ],
)
def test_boxes_scores_labels_by_name_or_order_with_or_without_a_batch(
    batch: bool, label_type: type, names: tuple[str, str, str], order: tuple[str, str, str]
) -> None:
    arrays = {"boxes": BOXES, "scores": SCORES, "labels": LABELS.astype(label_type)}
    outputs = {name: arrays[part][None] if batch else arrays[part] for name, part in zip(names, order, strict=True)}
    detector = OnnxDetector(constant_model(outputs), spec("boxes-scores-labels"))
    detections = detector.detect(Image.new("RGB", (640, 640)))
    assert_boxes(detections.boxes, [Box("Person", 100, 100, 100, 100, 0.9), Box("Car", 600, 500, 40, 100, 0.6)])
    assert (detections.dropped_unmapped, detections.dropped_low_score) == (1, 1)


def test_boxes_scores_labels_unnamed_in_torchvisions_order() -> None:
    # torchvision's detection models return boxes, labels, scores: the integer output is the labels.
    outputs: dict[str, np.ndarray] = {"3040": BOXES, "3041": LABELS, "3042": SCORES}
    detector = OnnxDetector(constant_model(outputs), spec("boxes-scores-labels"))
    assert [box.label for box in detector.detect(Image.new("RGB", (640, 640))).boxes] == ["Person", "Car"]


def test_decode_reads_outputs_in_the_models_order_without_names() -> None:
    letterboxed = letterbox(Image.new("RGB", (640, 640)), (640, 640))
    detections = decode([BOXES, SCORES, LABELS], spec("boxes-scores-labels"), letterboxed)
    assert_boxes(detections.boxes, [Box("Person", 100, 100, 100, 100, 0.9), Box("Car", 600, 500, 40, 100, 0.6)])
    assert decode([BOXES[:0], SCORES[:0], LABELS[:0]], spec("boxes-scores-labels"), letterboxed) == Detections(
        (), 0, 0, 0
    )


# --- malformed models and outputs ---------------------------------------------------------------------------------

NAN_YOLO = yolo_output(YOLO_COLUMNS)
NAN_YOLO[0, 0, 3] = np.nan
NAN_BOXES = BOXES.copy()
NAN_BOXES[1, 2] = np.nan


@pytest.mark.parametrize(
    ("layout", "outputs", "message"),
    [
        ("yolo", {"output0": np.zeros((84, 8400), np.float32)}, r"'yolo' expects one output of shape .*\[84, 8400\]"),
        ("yolo", {"output0": np.zeros((2, 84, 10), np.float32)}, r"'yolo' expects .*\[2, 84, 10\]"),
        ("yolo", {"output0": np.zeros((1, 4, 10), np.float32)}, r"'yolo' expects .*\[1, 4, 10\]"),
        ("yolo", {"output0": NAN_YOLO}, r"'yolo': .*NaN.*output0 \[1, 7, 10\]"),
        ("yolo", {"output0": np.zeros((1, 5, 10), np.float32)}, r"class ids \[1\].*has 1 classes"),
        (
            "yolo",
            {"output0": np.zeros((1, 116, 10), np.float32), "output1": np.zeros((1, 32, 4, 4), np.float32)},
            r"'yolo' reads a detection model's one output.*has 2: output0 \[1, 116, 10\].*output1 \[1, 32, 4, 4\]",
        ),
        ("yolo-nms", {"output0": np.zeros((1, 300, 7), np.float32)}, r"'yolo-nms' expects .*\[1, 300, 7\]"),
        ("yolo-nms", {"output0": np.zeros((1, 84, 8400), np.float32)}, r"'yolo-nms' expects .*\[1, 84, 8400\]"),
        ("yolo-nms", {"output0": np.zeros((300, 6), np.float32)}, r"'yolo-nms' expects .*\[300, 6\]"),
        (
            "yolo-nms",
            {"output0": np.array([[[1, 1, 5, 5, 0.9, 0.5]]], np.float32)},
            r"'yolo-nms': class ids must be whole numbers",
        ),
        (
            "boxes-scores-labels",
            {"boxes": BOXES, "scores": SCORES[:3], "labels": LABELS},
            r"'boxes-scores-labels' expects .*boxes \[4, 4\].*scores \[3\].*labels \[4\]",
        ),
        (
            "boxes-scores-labels",
            {"boxes": BOXES[:, :3], "scores": SCORES, "labels": LABELS},
            r"'boxes-scores-labels' expects .*boxes \[4, 3\]",
        ),
        (
            "boxes-scores-labels",
            {"boxes": NAN_BOXES, "scores": SCORES, "labels": LABELS},
            r"'boxes-scores-labels': .*NaN",
        ),
        (
            "boxes-scores-labels",
            {"boxes": BOXES, "scores": SCORES, "labels": LABELS.astype(np.float32) + 0.5},
            r"class ids must be whole numbers",
        ),
        ("boxes-scores-labels", {"output0": np.zeros((1, 84, 8400), np.float32)}, r"reads three outputs.*has 1"),
    ],
)
def test_malformed_outputs_are_refused_naming_the_layout_and_the_shapes(
    layout: str, outputs: dict[str, np.ndarray], message: str
) -> None:
    detector = OnnxDetector(constant_model(outputs), spec(layout))
    with pytest.raises(DetectorError, match=message):
        detector.detect(Image.new("RGB", (640, 640)))


def test_a_model_with_a_second_input_is_refused() -> None:
    # RT-DETR's own export takes the original size as a second input and answers in its pixels.
    sizes = helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, [1, 2])
    output = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4])
    model = model_bytes([constant("boxes", np.zeros((1, 1, 4), np.float32))], [image_input(), sizes], [output])
    with pytest.raises(DetectorError, match=r"takes 2: images .*orig_target_sizes \[1, 2\]"):
        OnnxDetector(model, spec("boxes-scores-labels"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layout": "ssd"}, "layout must be one of yolo, yolo-nms, boxes-scores-labels"),
        ({"min_score": 1.5}, "min_score must be between 0 and 1"),
        ({"iou_threshold": -0.1}, "iou_threshold must be between 0 and 1"),
        ({"max_detections": 0}, "max_detections must be at least 1"),
        ({"input_size": 0}, "input_size must be a positive"),
        ({"class_map": {}}, "class_map must map at least one"),
        ({"class_map": {"15": "Cat"}}, "class_map maps class ids"),
    ],
)
def test_a_spec_that_cannot_work_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**changes)


def test_the_spec_keeps_its_own_class_map() -> None:
    class_map = {0: "Person"}
    detector_spec = spec(class_map=class_map)
    class_map[1] = "Car"
    assert dict(detector_spec.class_map) == {0: "Person"}


# --- NMS against a brute-force reference --------------------------------------------------------------------------


def reference_nms(
    boxes: Sequence[tuple[float, ...]], scores: list[float], classes: list[int], threshold: float
) -> list[int]:
    """Greedy NMS spelled out: best score first (earlier box on ties), a box stays unless a kept box of its class
    overlaps it by an IoU above the threshold."""

    def area(box: tuple[float, ...]) -> float:
        return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)

    def iou(kept: tuple[float, ...], other: tuple[float, ...]) -> float:
        width = max(min(kept[2], other[2]) - max(kept[0], other[0]), 0.0)
        height = max(min(kept[3], other[3]) - max(kept[1], other[1]), 0.0)
        union = area(kept) + area(other) - width * height
        return width * height / union if union > 0.0 else 0.0

    kept: list[int] = []
    for index in sorted(range(len(boxes)), key=lambda position: (-scores[position], position)):
        if all(classes[other] != classes[index] or iou(boxes[other], boxes[index]) <= threshold for other in kept):
            kept.append(index)
    return kept


corner = st.integers(min_value=0, max_value=20).map(float)
extent = st.integers(min_value=0, max_value=12).map(float)
candidate = st.tuples(corner, corner, extent, extent, st.sampled_from([0.3, 0.5, 0.7, 0.9]), st.integers(0, 2))


@settings(max_examples=400, deadline=None)
@given(st.lists(candidate, max_size=25), st.sampled_from([0.0, 0.2, 0.45, 0.5, 0.7, 1.0]))
def test_nms_keeps_what_greedy_nms_spelled_out_keeps(
    candidates: list[tuple[float, float, float, float, float, int]], threshold: float
) -> None:
    boxes = [(x, y, x + width, y + height) for x, y, width, height, _, _ in candidates]
    scores = [score for *_, score, _ in candidates]
    classes = [class_id for *_, class_id in candidates]
    kept = class_wise_nms(
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(scores, dtype=np.float64),
        np.array(classes, dtype=np.int64),
        threshold,
    )
    assert kept.tolist() == reference_nms(boxes, scores, classes, threshold)
