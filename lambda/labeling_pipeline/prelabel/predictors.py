"""What the pre-label stage asks for an image's boxes: an ONNX detector in the function, or a SageMaker AI endpoint.

A `Predictor` takes an image file's bytes and returns a `Prediction`: boxes in pixels of the image as a browser
shows it (EXIF orientation applied), that image's width and height, and how many detections it left out and why
(`DROPPED_*`, as the proposals file keeps them). Anything that stops it (an image Pillow cannot decode, a model
that cannot be read, an endpoint that is down or answers nonsense) raises `PredictionError` with a message that
says what; the stage forwards the image without proposals.

`OnnxPredictor` runs `detector.OnnxDetector` on the decoded image; the model comes from `modelUri` in S3, read
once per container.

`EndpointPredictor` calls `InvokeEndpoint` on `endpointName` with the image's bytes, `ContentType` `image/jpeg`
or `image/png` (from the bytes, not the key's suffix) and `Accept: application/json`. An image the endpoint
would see in another orientation than a browser (an EXIF orientation other than 1), or in another format (GIF,
BMP, WebP), is sent re-encoded, upright and without the orientation tag, so that "the image sent" and "the image
as shown" are the same pixels whatever the endpoint's decoder does with EXIF. The endpoint answers JSON, one of:

- this pipeline's own contract, boxes in pixels of the image sent, one entry per detection in each list:
  `{"boxes": [[x1, y1, x2, y2], ...], "scores": [0.93, ...], "labels": [3, ...]}`. A label is a class id of
  `classMap` (an integer, or a float with no fraction), or a class name equal to one of the labels `classMap`
  maps to.
- the response of SageMaker JumpStart's object detection models, corners as fractions of the image's width and
  height: `{"normalized_boxes": [[x1, y1, x2, y2], ...], "classes": [3.0, ...], "scores": [0.93, ...]}`. With
  `Accept: application/json;verbose` JumpStart adds `labels`, the model's whole list of class names (indexed by
  class id): when present, a class whose name is one of `classMap`'s labels is taken too.

Then, as `detector.decode` does for an ONNX model: detections scored below `minScore` are dropped, then those of
classes `classMap` does not map; the rest, best score first, are clipped to the image (those with nothing left
are dropped) and the `maxDetections` best kept.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image, ImageOps

from labeling_pipeline.image_header import image_size
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.labels import Box, clip_box
from labeling_pipeline.prelabel.detector import DetectorError, DetectorSpec, OnnxDetector
from labeling_pipeline.prelabel.settings import PrelabelSettings

# The reasons a proposals file counts its dropped detections under (proposals.Proposal.dropped).
DROPPED_LOW_SCORE = "lowScore"
DROPPED_UNMAPPED = "unmappedClass"
DROPPED_OUTSIDE_IMAGE = "outsideImage"

ORIENTATION_TAG = 0x0112  # EXIF Orientation
# The orientations ImageOps.exif_transpose turns by a quarter (transpose, rotate 270, transverse, rotate 90):
# the image is shown with its width and height swapped.
QUARTER_TURNS = frozenset({5, 6, 7, 8})

JPEG, PNG = "image/jpeg", "image/png"
ACCEPT = "application/json"
# The quality an upright copy of a sideways JPEG is sent at: close to the original, and far from the 75 that
# Pillow would pick, which a detector's scores can notice.
JPEG_QUALITY = 95
# A model that is down should cost a few seconds of the batch, not the Lambda's whole time: botocore's defaults are
# a 60-second read timeout and, in its legacy mode, 5 attempts. A slow answer is bounded again by the stage.
ENDPOINT_CONNECT_TIMEOUT_SECONDS = 3
ENDPOINT_READ_TIMEOUT_SECONDS = 15
ENDPOINT_MAX_ATTEMPTS = 2
ENDPOINT_CLIENT_CONFIG = Config(
    connect_timeout=ENDPOINT_CONNECT_TIMEOUT_SECONDS,
    read_timeout=ENDPOINT_READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": ENDPOINT_MAX_ATTEMPTS},
)
MESSAGE_EXCERPT = 200  # characters of an unexpected answer quoted in an error


class PredictionError(Exception):
    """No boxes for this image, and why (the image, the model or the endpoint's answer)."""


@dataclass(frozen=True)
class Prediction:
    boxes: tuple[Box, ...]  # best score first, the score in `confidence`, in pixels of the image as shown
    image_width: int  # the image as shown (EXIF orientation applied)
    image_height: int
    dropped: dict[str, int] = field(default_factory=dict)  # DROPPED_* -> count


class Predictor(Protocol):
    def predict(self, image_bytes: bytes) -> Prediction: ...


def detector_spec(settings: PrelabelSettings) -> DetectorSpec:
    return DetectorSpec(
        settings.output_layout,
        settings.input_size,
        settings.model_classes(),
        settings.min_score,
        settings.iou_threshold,
        settings.max_detections,
    )


# --- images -------------------------------------------------------------------------------------------------------


def open_image(data: bytes) -> Image.Image:
    """The image decoded in full: a file cut short fails here, not halfway through a model."""
    if not data:
        raise PredictionError("the image file is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.DecompressionBombError as error:
        raise PredictionError(f"the image is too large to decode: {error}") from error
    except Exception as error:
        # Pillow's decoders signal a broken file with many types (UnidentifiedImageError, OSError for a truncated
        # file, SyntaxError, ValueError, struct.error, EOFError): each means the same here.
        raise PredictionError(f"not a readable image ({type(error).__name__}: {error})") from error
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:
        # Pillow reads a PNG's eXIf chunk by decoding the image; a broken or cut one has no orientation to give.
        return 1
    return value if isinstance(value, int) else 1


def shown_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as a browser shows it: the size ImageOps.exif_transpose gives, without the copy."""
    width, height = image.size
    return (height, width) if _orientation(image) in QUARTER_TURNS else (width, height)


def header_size(header: bytes) -> tuple[int, int]:
    """(width, height) as shown from an image file's first bytes, (0, 0) when they do not say."""
    try:
        with Image.open(io.BytesIO(header)) as image:
            return shown_size(image)
    except Exception:
        # Pillow refuses some headers it cannot finish parsing; the hand-written reader only needs the sizes.
        return image_size(header) or (0, 0)


def image_mime(data: bytes) -> str | None:
    """image/jpeg or image/png by the file's first bytes, None for any other file."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    return None


# --- ONNX -----------------------------------------------------------------------------------------------------------


class OnnxPredictor:
    """An ONNX detector run in the function (onnxruntime, CPU)."""

    def __init__(self, detector: OnnxDetector) -> None:
        self.detector = detector

    @classmethod
    def from_model(cls, model: bytes, settings: PrelabelSettings, where: str = "the model") -> OnnxPredictor:
        try:
            return cls(OnnxDetector(model, detector_spec(settings)))
        except DetectorError as error:
            raise PredictionError(f"{where}: {error}") from error
        except Exception as error:
            # onnxruntime's own exception types (InvalidProtobuf, Fail, ...) for a file that is not an ONNX model.
            reason = f"{type(error).__name__}: {error}"
            raise PredictionError(f"{where} is not a model onnxruntime can load ({reason})") from error

    @classmethod
    def from_s3(cls, s3_client: Any, settings: PrelabelSettings) -> OnnxPredictor:
        if settings.model_uri is None:
            raise PredictionError("labeling.prelabel has no modelUri")
        bucket, key = split_s3_uri(settings.model_uri)
        try:
            model = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise PredictionError(f"cannot read the model {settings.model_uri}: {code}: {error}") from error
        except BotoCoreError as error:
            raise PredictionError(f"cannot read the model {settings.model_uri}: {error}") from error
        return cls.from_model(model, settings, settings.model_uri)

    def predict(self, image_bytes: bytes) -> Prediction:
        image = open_image(image_bytes)
        try:
            detections = self.detector.detect(image)
        except DetectorError as error:
            raise PredictionError(str(error)) from error
        width, height = shown_size(image)
        return Prediction(
            detections.boxes,
            width,
            height,
            {
                DROPPED_LOW_SCORE: detections.dropped_low_score,
                DROPPED_UNMAPPED: detections.dropped_unmapped,
                DROPPED_OUTSIDE_IMAGE: detections.dropped_outside_image,
            },
        )


# --- SageMaker AI endpoint --------------------------------------------------------------------------------------------


class EndpointPredictor:
    """An existing SageMaker AI real-time endpoint, called through `sagemaker-runtime` (see the module's contract)."""

    def __init__(
        self,
        runtime_client: Any,
        endpoint_name: str,
        class_map: Mapping[int, str],
        min_score: float,
        max_detections: int,
    ) -> None:
        self._client = runtime_client
        self.endpoint_name = endpoint_name
        self._class_map = dict(class_map)
        self._labels = frozenset(class_map.values())
        self._min_score = min_score
        self._max_detections = max_detections

    @classmethod
    def from_settings(cls, settings: PrelabelSettings, runtime_client: Any) -> EndpointPredictor:
        if settings.endpoint_name is None:
            raise PredictionError("labeling.prelabel has no endpointName")
        classes = settings.model_classes()
        return cls(runtime_client, settings.endpoint_name, classes, settings.min_score, settings.max_detections)

    def predict(self, image_bytes: bytes) -> Prediction:
        payload, content_type, (width, height) = self.payload(image_bytes)
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=content_type, Accept=ACCEPT, Body=payload
            )
            body = response["Body"].read()
        except ClientError as error:
            # ModelError is the model's own failure (its status and message are in the error); ValidationError an
            # endpoint that does not exist or is not InService.
            code = error.response.get("Error", {}).get("Code", "")
            raise PredictionError(f"endpoint {self.endpoint_name}: {code}: {error}") from error
        except BotoCoreError as error:
            raise PredictionError(f"endpoint {self.endpoint_name}: {type(error).__name__}: {error}") from error
        return self.read_response(body, width, height)

    @staticmethod
    def payload(image_bytes: bytes) -> tuple[bytes, str, tuple[int, int]]:
        """What to send, its content type and the size of the image sent (which is the image as shown)."""
        image = open_image(image_bytes)
        mime = image_mime(image_bytes)
        if mime is not None and _orientation(image) == 1:
            return image_bytes, mime, image.size
        upright = ImageOps.exif_transpose(image)
        buffer = io.BytesIO()
        if mime == JPEG:
            if upright.mode not in ("L", "RGB", "CMYK"):
                upright = upright.convert("RGB")
            upright.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        else:
            if upright.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
                upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
            upright.save(buffer, format="PNG")
            mime = PNG
        return buffer.getvalue(), mime, upright.size

    def read_response(self, body: bytes, width: int, height: int) -> Prediction:
        """The boxes in an endpoint's answer for an image of width x height (see the module's contract)."""
        where = f"endpoint {self.endpoint_name}"
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise PredictionError(f"{where} did not answer JSON: {_excerpt(body)}") from None
        if not isinstance(document, dict):
            raise PredictionError(f"{where} answered a JSON {type(document).__name__}, not an object: {_excerpt(body)}")
        names: Sequence[Any] | None = None
        # JumpStart's keys as its own example reads them: aws/amazon-sagemaker-examples,
        # introduction_to_amazon_algorithms/jumpstart_object_detection/Amazon_JumpStart_Object_Detection.ipynb,
        # `parse_response` (normalized_boxes, classes, scores; labels with ";verbose"), the corners drawn as
        # fractions of the image's width and height.
        if "normalized_boxes" in document:
            corners = _corner_list(document["normalized_boxes"], "normalized_boxes", where)
            corners = [(x1 * width, y1 * height, x2 * width, y2 * height) for x1, y1, x2, y2 in corners]
            classes = _list(document.get("classes"), "classes", where)
            table = document.get("labels")
            if isinstance(table, list) and all(isinstance(name, str) for name in table):
                names = table
        elif "boxes" in document:
            corners = _corner_list(document["boxes"], "boxes", where)
            classes = _list(document.get("labels"), "labels", where)
        else:
            raise PredictionError(
                f"{where} answered neither 'boxes' (pixels) nor 'normalized_boxes' (JumpStart); keys: "
                f"{sorted(map(str, document))[:10]}"
            )
        scores = [_number(score, "scores", where) for score in _list(document.get("scores"), "scores", where)]
        if not len(corners) == len(scores) == len(classes):
            raise PredictionError(
                f"{where} answered {len(corners)} boxes, {len(scores)} scores and {len(classes)} classes: one of each "
                "per detection"
            )

        low_score = unmapped = outside = 0
        kept: list[tuple[float, str, tuple[float, float, float, float]]] = []
        for box, score, value in zip(corners, scores, classes, strict=True):
            if score < self._min_score:
                low_score += 1
                continue
            label = self._label(value, names, where)
            if label is None:
                unmapped += 1
                continue
            kept.append((score, label, box))
        kept.sort(key=lambda detection: -detection[0])  # stable: equal scores keep the endpoint's order
        found: list[Box] = []
        for score, label, (x1, y1, x2, y2) in kept:
            clipped = clip_box(label, x1, y1, x2 - x1, y2 - y1, score, width, height, None)
            if clipped is None:
                outside += 1
            else:
                found.append(clipped)
        return Prediction(
            tuple(found[: self._max_detections]),
            width,
            height,
            {DROPPED_LOW_SCORE: low_score, DROPPED_UNMAPPED: unmapped, DROPPED_OUTSIDE_IMAGE: outside},
        )

    def _label(self, value: Any, names: Sequence[Any] | None, where: str) -> str | None:
        if isinstance(value, str):
            return value if value in self._labels else None
        number = _number(value, "classes", where)
        if not number.is_integer():
            raise PredictionError(f"{where}: a class id must be a whole number, got {value!r}")
        class_id = int(number)
        if class_id in self._class_map:
            return self._class_map[class_id]
        if names is not None and 0 <= class_id < len(names) and names[class_id] in self._labels:
            return str(names[class_id])
        return None


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return repr(text[:MESSAGE_EXCERPT]) if text else "an empty body"


def _list(value: Any, name: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PredictionError(f"{where}: '{name}' must be a list, one entry per detection; got {_excerpt(str(value))}")
    return value


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PredictionError(f"{where}: '{name}' holds {value!r}, not a finite number")
    return float(value)


def _corner_list(value: Any, name: str, where: str) -> list[tuple[float, float, float, float]]:
    corners = []
    for box in _list(value, name, where):
        if not isinstance(box, list) or len(box) != 4:
            raise PredictionError(f"{where}: each of '{name}' must be [x1, y1, x2, y2], got {_excerpt(str(box))}")
        x1, y1, x2, y2 = (_number(corner, name, where) for corner in box)
        corners.append((x1, y1, x2, y2))
    return corners
