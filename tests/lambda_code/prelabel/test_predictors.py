"""The predictors: an ONNX detector built in code (test_detector's red-box graph) run on real image files, and a
SageMaker AI endpoint whose requests botocore's Stubber checks against the sagemaker-runtime service model."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws
from PIL import Image, ImageOps

from labeling_pipeline.labels import Box
from labeling_pipeline.prelabel.predictors import (
    ENDPOINT_CLIENT_CONFIG,
    EndpointPredictor,
    OnnxPredictor,
    Prediction,
    PredictionError,
    header_size,
    image_mime,
    shown_size,
)
from labeling_pipeline.prelabel.settings import PrelabelSettings
from tests.lambda_code.prelabel.test_detector import constant_model, exif_rotated_jpeg, picture, red_box_model

REGION = "us-east-1"
MODEL_BUCKET = "detector-models-example"
MODEL_KEY = "detectors/red-box.onnx"
ENDPOINT = "detector-prod-1"
RED = (255, 0, 0)
# Tall enough that the box's rows are whole input pixels at 640 (scale 0.8).
IMAGE_SIZE = (800, 600)
CANDIDATES = 50  # the red-box model's columns: one found box, 49 scored 0.01


# --- shared with test_stage.py --------------------------------------------------------------------------------------


def prelabel_settings(**changes: Any) -> PrelabelSettings:
    raw: dict[str, Any] = {
        "modelUri": f"s3://{MODEL_BUCKET}/{MODEL_KEY}",
        "classMap": {"0": "Dog", "1": "Cat"},
        "modelVersion": "red-box-v1",
        "holdOutPercent": 0,
        **changes,
    }
    return PrelabelSettings.model_validate({key: value for key, value in raw.items() if value is not None})


@cache
def red_box_onnx() -> bytes:
    """A "yolo" detector that finds the red rectangle: class 0 (Dog) at 0.9."""
    return red_box_model((1, 3, "height", "width"), candidates=CANDIDATES)


def png_bytes(box: tuple[int, int, int, int], size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    """A black PNG with a red rectangle (left, top, right, bottom)."""
    buffer = io.BytesIO()
    picture(size, box, color=RED).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(box: tuple[int, int, int, int], size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    buffer = io.BytesIO()
    picture(size, box, color=RED).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def half(data: bytes) -> bytes:
    """A file cut short, as an interrupted upload leaves it."""
    return data[: len(data) // 2]


def dog(left: float, top: float, right: float, bottom: float, score: float = 0.9) -> Box:
    return Box("Dog", left, top, right - left, bottom - top, score)


def assert_same_boxes(actual: tuple[Box, ...], expected: list[Box], tolerance: float = 1e-3) -> None:
    assert [box.label for box in actual] == [box.label for box in expected], actual
    for found, wanted in zip(actual, expected, strict=True):
        assert found[1:5] == pytest.approx(wanted[1:5], abs=tolerance), (found, wanted)
        assert found.confidence == pytest.approx(wanted.confidence, abs=1e-6)


def onnx_predictor() -> OnnxPredictor:
    return OnnxPredictor.from_model(red_box_onnx(), prelabel_settings())


# --- images ---------------------------------------------------------------------------------------------------------


def test_sizes_as_shown_match_exif_transpose(tmp_path: Path) -> None:
    sideways = exif_rotated_jpeg(picture(IMAGE_SIZE, (100, 150, 300, 400), color=RED), tmp_path)
    assert sideways.size == (600, 800)  # stored on its side
    assert shown_size(sideways) == ImageOps.exif_transpose(sideways).size == IMAGE_SIZE
    data = (tmp_path / "sideways.jpg").read_bytes()
    assert header_size(data[:4096]) == IMAGE_SIZE
    assert header_size(png_bytes((0, 0, 1, 1))[:64]) == IMAGE_SIZE
    assert header_size(b"not an image at all") == (0, 0)
    assert header_size(b"") == (0, 0)
    assert image_mime(data) == "image/jpeg" and image_mime(png_bytes((0, 0, 1, 1))) == "image/png"
    assert image_mime(b"GIF89a....") is None


# --- ONNX -----------------------------------------------------------------------------------------------------------


def test_onnx_predictor_finds_the_box_in_image_pixels() -> None:
    prediction = onnx_predictor().predict(png_bytes((100, 150, 300, 400)))
    assert (prediction.image_width, prediction.image_height) == IMAGE_SIZE
    assert_same_boxes(prediction.boxes, [dog(100, 150, 300, 400)])
    assert prediction.dropped == {"lowScore": CANDIDATES - 1, "unmappedClass": 0, "outsideImage": 0}


def test_onnx_predictor_boxes_an_exif_rotated_photo_as_shown(tmp_path: Path) -> None:
    exif_rotated_jpeg(picture(IMAGE_SIZE, (100, 150, 300, 400), color=RED), tmp_path)
    prediction = onnx_predictor().predict((tmp_path / "sideways.jpg").read_bytes())
    assert (prediction.image_width, prediction.image_height) == IMAGE_SIZE
    # JPEG blurs the rectangle's edges by a pixel or so.
    assert_same_boxes(prediction.boxes, [dog(100, 150, 300, 400)], tolerance=3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the image file is empty"),
        (b"plain text, not a picture", "not a readable image (UnidentifiedImageError"),
        (half(png_bytes((100, 150, 300, 400))), "not a readable image (OSError"),
        (half(jpeg_bytes((100, 150, 300, 400))), "not a readable image (OSError"),
    ],
    ids=["empty", "text", "truncated-png", "truncated-jpeg"],
)
def test_unreadable_images_raise_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(PredictionError) as raised:
        onnx_predictor().predict(data)
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_model_whose_outputs_do_not_fit_the_layout_is_a_prediction_error() -> None:
    import numpy as np

    two_outputs = {"boxes": np.zeros((1, 4), dtype=np.float32), "scores": np.zeros((1,), dtype=np.float32)}
    predictor = OnnxPredictor.from_model(constant_model(two_outputs), prelabel_settings())
    with pytest.raises(PredictionError, match=r"'yolo' reads a detection model's one output .* this model has 2"):
        predictor.predict(png_bytes((100, 150, 300, 400)))


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=MODEL_BUCKET)
        yield client


def test_onnx_predictor_reads_its_model_from_s3(s3: Any) -> None:
    s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=red_box_onnx())
    predictor = OnnxPredictor.from_s3(s3, prelabel_settings())
    assert_same_boxes(predictor.predict(png_bytes((100, 150, 300, 400))).boxes, [dog(100, 150, 300, 400)])


def test_a_missing_or_broken_model_is_a_clear_error(s3: Any) -> None:
    with pytest.raises(PredictionError, match=rf"cannot read the model s3://{MODEL_BUCKET}/{MODEL_KEY}: NoSuchKey"):
        OnnxPredictor.from_s3(s3, prelabel_settings())
    s3.put_object(Bucket=MODEL_BUCKET, Key=MODEL_KEY, Body=b"PK\x03\x04 a zip, not ONNX")
    with pytest.raises(PredictionError, match=r"red-box.onnx is not a model onnxruntime can load"):
        OnnxPredictor.from_s3(s3, prelabel_settings())


# --- the SageMaker AI endpoint ----------------------------------------------------------------------------------------


def endpoint_settings(**changes: Any) -> PrelabelSettings:
    return prelabel_settings(modelUri=None, endpointName=ENDPOINT, **changes)


@pytest.fixture
def runtime() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sagemaker-runtime", region_name=REGION, config=ENDPOINT_CLIENT_CONFIG)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def answer(stubber: Stubber, document: Any, sent: bytes, content_type: str = "image/png") -> None:
    """The endpoint's answer to exactly this request; Stubber checks the request against the service model too."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {"EndpointName": ENDPOINT, "ContentType": content_type, "Accept": "application/json", "Body": sent},
    )


def test_the_endpoint_client_gives_up_quickly() -> None:
    client = boto3.client("sagemaker-runtime", region_name=REGION, config=ENDPOINT_CLIENT_CONFIG)
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 15)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_endpoint_answer_in_pixels(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    image = png_bytes((100, 150, 300, 400))
    answer(
        stubber,
        {
            "boxes": [[10, 20, 110, 220], [-50, 500, 100, 700], [300, 300, 400, 400], [5, 5, 50, 50], [1, 1, 2, 2]],
            "scores": [0.5, 0.95, 0.1, 0.7, 0.8],
            "labels": [0, 1.0, 0, 7, "Cat"],
        },
        image,
    )
    prediction = EndpointPredictor.from_settings(endpoint_settings(), client).predict(image)
    assert (prediction.image_width, prediction.image_height) == IMAGE_SIZE
    assert_same_boxes(
        prediction.boxes,
        [
            Box("Cat", 0, 500, 100, 100, 0.95),  # clipped to the image (it spilled left and below)
            Box("Cat", 1, 1, 1, 1, 0.8),  # a class name equal to a mapped label
            Box("Dog", 10, 20, 100, 200, 0.5),
        ],
    )
    assert prediction.dropped == {"lowScore": 1, "unmappedClass": 1, "outsideImage": 0}


def test_endpoint_answer_from_jumpstart(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    image = jpeg_bytes((100, 150, 300, 400))
    answer(
        stubber,
        {
            "normalized_boxes": [[0.125, 0.25, 0.375, 0.6666666], [0.5, 0.5, 1.2, 1.0], [0.0, 0.0, 0.1, 0.1]],
            "classes": [0.0, 5.0, 9.0],
            "scores": [0.9, 0.6, 0.99],
            # ";verbose" adds the model's class names: class 5 is named as one of the mapped labels.
            "labels": ["dog", "person", "car", "bus", "train", "Cat", "boat", "x", "y", "z"],
        },
        image,
        content_type="image/jpeg",
    )
    prediction = EndpointPredictor.from_settings(endpoint_settings(), client).predict(image)
    assert_same_boxes(
        prediction.boxes,
        [dog(100, 150, 300, 399.99996), Box("Cat", 400, 300, 400, 300, 0.6)],
    )
    assert prediction.dropped == {"lowScore": 0, "unmappedClass": 1, "outsideImage": 0}


def test_endpoint_caps_and_drops_what_is_outside(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    image = png_bytes((100, 150, 300, 400))
    answer(
        stubber,
        {"boxes": [[900, 0, 950, 10], [0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 30, 30]], "scores": [0.99, 0.3, 0.5, 0.4]}
        | {"labels": [0, 0, 0, 0]},
        image,
    )
    prediction = EndpointPredictor.from_settings(endpoint_settings(maxDetections=2), client).predict(image)
    assert_same_boxes(prediction.boxes, [dog(0, 0, 20, 20, 0.5), dog(0, 0, 30, 30, 0.4)])
    assert prediction.dropped == {"lowScore": 0, "unmappedClass": 0, "outsideImage": 1}


def test_endpoint_gets_sideways_photos_upright_and_other_formats_as_png(
    runtime: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stubber = runtime
    exif_rotated_jpeg(picture(IMAGE_SIZE, (100, 150, 300, 400), color=RED), tmp_path)
    sideways = (tmp_path / "sideways.jpg").read_bytes()
    sent, content_type, size = EndpointPredictor.payload(sideways)
    assert (content_type, size) == ("image/jpeg", IMAGE_SIZE)
    with Image.open(io.BytesIO(sent)) as upright:
        assert upright.size == IMAGE_SIZE and upright.getexif().get(0x0112) is None
    answer(stubber, {"boxes": [[100, 150, 300, 400]], "scores": [0.9], "labels": [0]}, sent, "image/jpeg")
    prediction = EndpointPredictor.from_settings(endpoint_settings(), client).predict(sideways)
    assert_same_boxes(prediction.boxes, [dog(100, 150, 300, 400)])

    buffer = io.BytesIO()
    picture((40, 30), (1, 1, 5, 5), color=RED).save(buffer, format="GIF")
    sent, content_type, size = EndpointPredictor.payload(buffer.getvalue())
    assert (content_type, size, sent[:4]) == ("image/png", (40, 30), b"\x89PNG")

    plain = png_bytes((1, 1, 5, 5))
    assert EndpointPredictor.payload(plain) == (plain, "image/png", IMAGE_SIZE)  # sent as it is


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "did not answer JSON: '<html>502 Bad Gateway</html>'"),
        (b"", "did not answer JSON: an empty body"),
        ([[1, 2, 3, 4]], "answered a JSON list, not an object"),
        (
            {"detections": []},
            "answered neither 'boxes' (pixels) nor 'normalized_boxes' (JumpStart); keys: ['detections']",
        ),
        ({"boxes": [[1, 2, 3, 4]], "scores": [0.9]}, "'labels' must be a list"),
        ({"boxes": [[1, 2, 3, 4]], "scores": [0.9, 0.8], "labels": [0]}, "answered 1 boxes, 2 scores and 1 classes"),
        ({"boxes": [[1, 2, 3]], "scores": [0.9], "labels": [0]}, "each of 'boxes' must be [x1, y1, x2, y2]"),
        ({"boxes": [[1, 2, 3, "4"]], "scores": [0.9], "labels": [0]}, "'boxes' holds '4', not a finite number"),
        (b'{"boxes": [[1, 2, 3, 4]], "scores": [NaN], "labels": [0]}', "'scores' holds nan, not a finite number"),
        ({"boxes": [[1, 2, 3, 4]], "scores": [0.9], "labels": [0.5]}, "a class id must be a whole number, got 0.5"),
        ({"boxes": [[1, 2, 3, 4]], "scores": [0.9], "labels": [True]}, "'classes' holds True, not a finite number"),
        ({"normalized_boxes": [[0, 0, 1, 1]], "scores": [0.9]}, "'classes' must be a list"),
    ],
)
def test_a_malformed_answer_is_a_clear_error(runtime: tuple[Any, Stubber], document: Any, message: str) -> None:
    client, stubber = runtime
    image = png_bytes((100, 150, 300, 400))
    answer(stubber, document, image)
    with pytest.raises(PredictionError) as raised:
        EndpointPredictor.from_settings(endpoint_settings(), client).predict(image)
    assert str(raised.value).startswith(f"endpoint {ENDPOINT}"), str(raised.value)
    assert message in str(raised.value)


def test_the_model_failing_is_a_prediction_error(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received server error (500) from primary with message 'CUDA out of memory'",
        http_status_code=424,
    )
    with pytest.raises(PredictionError, match=r"endpoint detector-prod-1: ModelError: .*CUDA out of memory"):
        EndpointPredictor.from_settings(endpoint_settings(), client).predict(png_bytes((1, 1, 5, 5)))


def test_a_slow_endpoint_is_tried_twice_then_a_prediction_error() -> None:
    client = boto3.client("sagemaker-runtime", region_name=REGION, config=ENDPOINT_CLIENT_CONFIG)
    attempts: list[float] = []

    def time_out(request: Any, **_: Any) -> None:
        attempts.append(time.monotonic())
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", time_out)
    with pytest.raises(PredictionError, match=r"endpoint detector-prod-1: ReadTimeoutError: Read timeout on endpoint"):
        EndpointPredictor.from_settings(endpoint_settings(), client).predict(png_bytes((1, 1, 5, 5)))
    assert len(attempts) == 2


def test_non_images_never_reach_the_endpoint(runtime: tuple[Any, Stubber]) -> None:
    client, _stubber = runtime  # no response queued: a call would fail the test
    predictor = EndpointPredictor.from_settings(endpoint_settings(), client)
    for data in (b"", b"%PDF-1.7", png_bytes((1, 1, 5, 5))[:200]):
        with pytest.raises(PredictionError, match=r"the image file is empty|not a readable image"):
            predictor.predict(data)


def test_prediction_is_a_value() -> None:
    # Proposal files are built from it field by field: it must not share its dict with the caller.
    first, second = Prediction((), 1, 1), Prediction((), 1, 1)
    assert first.dropped is not second.dropped
