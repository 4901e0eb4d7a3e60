"""Boxes an ONNX detector proposes for an image, in pixels of the image as a browser shows it.

The three output layouts, each as its exporter writes it:

- "yolo": Ultralytics' ONNX export of a YOLOv8 or YOLO11 detector with `nms=False` (the default). One output,
  [1, 4 + classes, candidates] (e.g. [1, 84, 8400]): rows 0-3 are each candidate's centre x, centre y, width and
  height in input pixels, the other rows its score for each class, already through a sigmoid (there is no
  objectness row). Read as Ultralytics' `non_max_suppression` reads it: each candidate's best class, the score
  filter, NMS within each class, the `max_detections` best.
- "yolo-nms": the same export with `nms=True`, and YOLOv10's end-to-end export. One output, [1, max_det, 6]: each
  row x1, y1, x2, y2, score, class id in input pixels, already suppressed; Ultralytics fills the rows after the
  last detection with zeros.
- "boxes-scores-labels": three outputs, boxes [N, 4] (x1, y1, x2, y2 in input pixels), scores [N] and class ids
  [N] (any integer or float type), each with or without a leading batch dimension of 1, already suppressed.

Every layout reads the same input: the image resized to fit the model's input with its aspect ratio kept, centred
on gray (114) padding, RGB scaled to 0..1, as Ultralytics' `LetterBox(auto=False, center=True)` makes it. Boxes
are mapped back by undoing that (minus the padding, divided by the scale) and clipped to the image.

Only `OnnxDetector` imports onnxruntime: reading outputs needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple, get_args

import numpy as np
from PIL import Image, ImageOps

from labeling_pipeline.labels import Box, clip_box

Layout = Literal["yolo", "yolo-nms", "boxes-scores-labels"]
LAYOUTS: tuple[str, ...] = get_args(Layout)

PAD_LEVEL = 114  # Ultralytics' letterbox gray, out of 255
# Ultralytics' own bound (`max_nms`) on the candidates that go into NMS: the best-scored ones.
MAX_NMS_CANDIDATES = 30_000
# Modes Pillow converts to 8 bits by clipping at 255 rather than scaling, which would turn most of a 16-bit image
# white. "I" is included because Pillow opened 16-bit grayscale PNGs as "I" before it had "I;16" for them.
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class DetectorError(ValueError):
    """A model or an output the detector cannot read; the message names the layout and the shapes it saw."""


@dataclass(frozen=True)
class DetectorSpec:
    """How to read a detector.

    `input_size` is the side of the square input used when the model's input has no fixed height and width (an
    export with `dynamic=True`); a fixed input shape wins (see `OnnxDetector`). `class_map` maps the model's class
    ids to the pipeline's labels; detections of other classes are dropped. Detections scored below `min_score`
    are dropped. `iou_threshold` is for the "yolo" layout's NMS: 0.45 is the default of Ultralytics'
    `non_max_suppression` (its predict mode passes 0.7). `max_detections` is the most boxes kept per image.
    """

    layout: Layout
    input_size: int
    class_map: Mapping[int, str]
    min_score: float
    iou_threshold: float = 0.45
    max_detections: int = 300

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be a positive number of pixels, got {self.input_size}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {self.min_score}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be between 0 and 1, got {self.iou_threshold}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1, got {self.max_detections}")
        if not self.class_map:
            raise ValueError("class_map must map at least one of the model's class ids to a label")
        for class_id, label in self.class_map.items():
            if not isinstance(class_id, int) or isinstance(class_id, bool) or not isinstance(label, str) or not label:
                raise ValueError(f"class_map maps class ids (int) to labels (str), got {class_id!r}: {label!r}")
        # A read-only copy: the caller's dict changing later must not change what a running detector keeps.
        object.__setattr__(self, "class_map", MappingProxyType(dict(self.class_map)))


class Letterboxed(NamedTuple):
    """A model input, and what maps its pixels back to the image's."""

    tensor: np.ndarray  # float32 [1, 3, height, width], RGB in 0..1
    scale: float  # input pixels per image pixel
    pad_x: int  # padding left of the image, in input pixels
    pad_y: int  # padding above the image
    # (width, height) of the image as shown, EXIF orientation applied: the size the boxes are clipped to, which
    # differs from the stored size for a photo taken on its side.
    image_size: tuple[int, int]


class Detections(NamedTuple):
    boxes: tuple[Box, ...]  # best score first; `confidence` is the model's score
    dropped_unmapped: int  # detections of classes not in the class map ("yolo": counted after NMS)
    # Below min_score. For "yolo" these are raw candidates (thousands an image), not objects; padding rows of
    # "yolo-nms" are not counted.
    dropped_low_score: int
    dropped_outside_image: int  # nothing left of them once clipped to the image (e.g. wholly in the padding)


def letterbox(image: Image.Image, input_size: tuple[int, int]) -> Letterboxed:
    """The image as a model input of input_size (width, height): EXIF orientation applied (as a browser shows the
    image), converted to RGB from any mode, resized to fit with its aspect ratio kept, centred on gray padding.

    The sizes and padding round as Ultralytics' LetterBox does, so boxes map back as its `scale_boxes` maps them.
    Alpha is dropped rather than composited, as Ultralytics' loader (cv2.imread) drops it: the model sees the pixels
    it was trained on. Pillow's bilinear filter averages over the source pixels when it shrinks (cv2's does not);
    the boxes do not depend on it."""
    input_width, input_height = input_size
    rgb = _rgb(ImageOps.exif_transpose(image))
    width, height = rgb.size
    scale = min(input_width / width, input_height / height)
    resized_width, resized_height = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x = round((input_width - resized_width) / 2 - 0.1)
    pad_y = round((input_height - resized_height) / 2 - 0.1)
    if (resized_width, resized_height) != (width, height):
        rgb = rgb.resize((resized_width, resized_height), Image.Resampling.BILINEAR)
    canvas = np.full((input_height, input_width, 3), PAD_LEVEL, dtype=np.uint8)
    canvas[pad_y : pad_y + resized_height, pad_x : pad_x + resized_width] = np.asarray(rgb)
    tensor = canvas.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
    tensor /= 255.0
    return Letterboxed(tensor, scale, pad_x, pad_y, (width, height))


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        levels = np.asarray(image).astype(np.float64)
        eight_bit = np.rint(np.clip(levels, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(eight_bit).convert("RGB")
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        # Through RGBA: Pillow warns when a palette's transparency is dropped straight to RGB.
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise DetectorError(f"cannot convert a {image.mode} image to RGB: {error}") from error


def class_wise_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2) that greedy NMS keeps within each class, best score first (on equal
    scores, the earlier box). A box goes when a kept box of its class, scored higher, overlaps it by an IoU above
    iou_threshold, as in torchvision's `nms`, which Ultralytics calls."""
    # Hand-written: onnxruntime has NMS only as an op inside a graph, and torchvision is far too large for a Lambda zip.
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, corner].astype(np.float64) for corner in range(4))
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    kept: list[int] = []
    for class_id in np.unique(class_ids):
        remaining = order[class_ids[order] == class_id]
        while remaining.size:
            best, rest = remaining[0], remaining[1:]
            kept.append(int(best))
            overlap_width = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0)
            overlap_height = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0)
            overlap = overlap_width * overlap_height
            union = areas[best] + areas[rest] - overlap
            iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0.0)
            remaining = rest[iou <= iou_threshold]
    keep = np.array(kept, dtype=np.int64)
    return keep[np.lexsort((keep, -scores[keep]))]


def decode(
    outputs: Mapping[str, np.ndarray] | Sequence[np.ndarray], spec: DetectorSpec, letterboxed: Letterboxed
) -> Detections:
    """The boxes in a model's outputs, in pixels of the image `letterboxed` was made from. Outputs are by name
    (as `OnnxDetector` passes them) or in the model's order. Raises DetectorError on outputs that do not have the
    spec's layout."""
    named: list[tuple[str | None, np.ndarray]] = (
        [(name, np.asarray(array)) for name, array in outputs.items()]
        if isinstance(outputs, Mapping)
        else [(None, np.asarray(array)) for array in outputs]
    )
    if spec.layout == "yolo":
        boxes, scores, class_ids, low_score = _read_yolo(named, spec)
    elif spec.layout == "yolo-nms":
        boxes, scores, class_ids, low_score = _read_yolo_nms(named, spec)
    else:
        boxes, scores, class_ids, low_score = _read_boxes_scores_labels(named, spec)

    mapped = np.isin(class_ids, np.fromiter(spec.class_map, dtype=np.int64, count=len(spec.class_map)))
    boxes, scores, class_ids = boxes[mapped], scores[mapped], class_ids[mapped]
    order = np.argsort(-scores, kind="stable")
    scale, (image_width, image_height) = letterboxed.scale, letterboxed.image_size
    lefts = (boxes[:, 0] - letterboxed.pad_x) / scale
    tops = (boxes[:, 1] - letterboxed.pad_y) / scale
    widths = (boxes[:, 2] - boxes[:, 0]) / scale
    heights = (boxes[:, 3] - boxes[:, 1]) / scale
    found: list[Box] = []
    outside = 0
    for index in order.tolist():
        box = clip_box(
            spec.class_map[int(class_ids[index])],
            float(lefts[index]),
            float(tops[index]),
            float(widths[index]),
            float(heights[index]),
            float(scores[index]),
            image_width,
            image_height,
            None,
        )
        if box is None:
            outside += 1
        else:
            found.append(box)
    return Detections(tuple(found[: spec.max_detections]), int((~mapped).sum()), low_score, outside)


_Read = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # boxes (x1, y1, x2, y2), scores, class ids, low-score count


def _read_yolo(named: list[tuple[str | None, np.ndarray]], spec: DetectorSpec) -> _Read:
    output = _single_output(named, spec, "[1, 4 + classes, candidates]")
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
        raise _shape_error(spec, "one output of shape [1, 4 + classes, candidates], e.g. [1, 84, 8400]", named)
    class_count = output.shape[1] - 4
    if beyond := sorted(class_id for class_id in spec.class_map if not 0 <= class_id < class_count):
        raise DetectorError(
            f"class_map names class ids {beyond}, but the {spec.layout!r} output {_shapes(named)} has "
            f"{class_count} classes (ids 0 to {class_count - 1})"
        )
    _require_finite(output, spec, named)
    predictions = output[0]
    class_scores = predictions[4:]
    best_classes = class_scores.argmax(axis=0)
    best_scores = np.take_along_axis(class_scores, best_classes[np.newaxis], axis=0)[0].astype(np.float64)
    candidates = np.flatnonzero(best_scores >= spec.min_score)
    low_score = predictions.shape[1] - candidates.size
    if candidates.size > MAX_NMS_CANDIDATES:
        candidates = candidates[np.argsort(-best_scores[candidates], kind="stable")[:MAX_NMS_CANDIDATES]]
    centre_x, centre_y, width, height = predictions[:4, candidates].astype(np.float64)
    boxes = np.stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2], axis=1)
    scores, class_ids = best_scores[candidates], best_classes[candidates].astype(np.int64)
    keep = class_wise_nms(boxes, scores, class_ids, spec.iou_threshold)
    return boxes[keep], scores[keep], class_ids[keep], low_score


def _read_yolo_nms(named: list[tuple[str | None, np.ndarray]], spec: DetectorSpec) -> _Read:
    output = _single_output(named, spec, "[1, max_det, 6]")
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[2] != 6:
        raise _shape_error(spec, "one output of shape [1, max_det, 6] (x1, y1, x2, y2, score, class)", named)
    _require_finite(output, spec, named)
    rows = output[0].astype(np.float64)
    rows = rows[rows.any(axis=1)]  # all-zero rows are padding after the last detection
    class_ids = _class_ids(rows[:, 5], spec, named)
    above = rows[:, 4] >= spec.min_score
    return rows[above, :4], rows[above, 4], class_ids[above], int((~above).sum())


def _read_boxes_scores_labels(named: list[tuple[str | None, np.ndarray]], spec: DetectorSpec) -> _Read:
    boxes, scores, labels = _three_outputs(named, spec)
    if (
        boxes.ndim == 3
        and scores.ndim == 2
        and labels.ndim == 2
        and boxes.shape[0] == scores.shape[0] == labels.shape[0] == 1
    ):
        boxes, scores, labels = boxes[0], scores[0], labels[0]
    count = boxes.shape[0] if boxes.ndim == 2 else -1
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (count,) or labels.shape != (count,):
        raise _shape_error(
            spec, "boxes [N, 4], scores [N] and labels [N], each with or without a batch dimension of 1", named
        )
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DetectorError(f"{spec.layout!r}: labels must be class ids (integers or floats), got {labels.dtype}")
    _require_finite(boxes, spec, named)
    _require_finite(scores, spec, named)
    class_ids = _class_ids(labels, spec, named)
    scores = scores.astype(np.float64)
    above = scores >= spec.min_score
    return boxes[above].astype(np.float64), scores[above], class_ids[above], int((~above).sum())


def _single_output(named: list[tuple[str | None, np.ndarray]], spec: DetectorSpec, shape: str) -> np.ndarray:
    if len(named) != 1:
        raise DetectorError(
            f"{spec.layout!r} reads a detection model's one output {shape}; this model has {len(named)}: "
            f"{_shapes(named)} (a segmentation or other export, or another layout?)"
        )
    return named[0][1]


def _three_outputs(
    named: list[tuple[str | None, np.ndarray]], spec: DetectorSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(named) != 3:
        raise DetectorError(
            f"{spec.layout!r} reads three outputs (boxes, scores, labels); "
            f"this model has {len(named)}: {_shapes(named)}"
        )
    by_name: dict[str, np.ndarray] = {}
    for part, words in (("boxes", ("box",)), ("scores", ("score",)), ("labels", ("label", "class"))):
        matches = [array for name, array in named if name and any(word in name.lower() for word in words)]
        if len(matches) == 1:
            by_name[part] = matches[0]
    if len(by_name) == 3 and len({id(array) for array in by_name.values()}) == 3:
        return by_name["boxes"], by_name["scores"], by_name["labels"]
    boxes, scores, labels = (array for _, array in named)
    # Unnamed in torchvision's order (boxes, labels, scores): the class ids are the integer output.
    if np.issubdtype(scores.dtype, np.integer) and np.issubdtype(labels.dtype, np.floating):
        scores, labels = labels, scores
    return boxes, scores, labels


def _class_ids(values: np.ndarray, spec: DetectorSpec, named: list[tuple[str | None, np.ndarray]]) -> np.ndarray:
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if not np.isfinite(values).all() or (values != np.rint(values)).any():
        raise DetectorError(f"{spec.layout!r}: class ids must be whole numbers; outputs seen: {_shapes(named)}")
    return values.astype(np.int64)


def _require_finite(array: np.ndarray, spec: DetectorSpec, named: list[tuple[str | None, np.ndarray]]) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DetectorError(
            f"{spec.layout!r}: the model's output holds NaN or infinite values; outputs seen: {_shapes(named)}"
        )


def _shape_error(spec: DetectorSpec, expected: str, named: list[tuple[str | None, np.ndarray]]) -> DetectorError:
    return DetectorError(f"{spec.layout!r} expects {expected}; outputs seen: {_shapes(named)}")


def _shapes(named: list[tuple[str | None, np.ndarray]]) -> str:
    return ", ".join(
        f"{name or f'#{position}'} {list(array.shape)} {array.dtype}" for position, (name, array) in enumerate(named)
    )


class OnnxDetector:
    """One onnxruntime session (CPU) of an ONNX detector, and the spec to read its outputs with.

    The input size is the model's own when its input has a fixed height and width (Ultralytics fixes them unless
    exported with `dynamic=True`; a non-square imgsz is kept as it is), read from the session; otherwise the
    spec's `input_size`, square. A float16 model (exported with `half=True`) gets a float16 input."""

    def __init__(self, model: bytes | str | Path, spec: DetectorSpec) -> None:
        import onnxruntime  # type: ignore[import-untyped]  # here, so that reading outputs (decode) does not need it

        self.spec = spec
        self._session = onnxruntime.InferenceSession(
            model if isinstance(model, bytes) else str(model), providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            described = ", ".join(f"{each.name} {each.shape}" for each in inputs)
            raise DetectorError(f"the detector feeds one image input; this model takes {len(inputs)}: {described}")
        image_input = inputs[0]
        shape = list(image_input.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise DetectorError(
                f"the model's input {image_input.name} {shape} is not an image batch [1, 3, height, width]"
            )
        if image_input.type not in ("tensor(float)", "tensor(float16)"):
            raise DetectorError(f"the model's input {image_input.name} is {image_input.type}, not float or float16")
        height, width = shape[2], shape[3]
        fixed = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
        self.input_size: tuple[int, int] = (width, height) if fixed else (spec.input_size, spec.input_size)
        self._input_name = image_input.name
        self._input_type = np.float16 if image_input.type == "tensor(float16)" else np.float32
        self._output_names = [output.name for output in self._session.get_outputs()]

    def detect(self, image: Image.Image) -> Detections:
        letterboxed = letterbox(image, self.input_size)
        tensor = letterboxed.tensor.astype(self._input_type, copy=False)
        results = self._session.run(self._output_names, {self._input_name: tensor})
        return decode(dict(zip(self._output_names, results, strict=True)), self.spec, letterboxed)
