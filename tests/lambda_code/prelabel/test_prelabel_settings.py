"""`labeling.prelabel`: its defaults, and a clear message for every way to get it wrong; the hold-out."""

from __future__ import annotations

from typing import Any

import pytest

from labeling_pipeline.prelabel.holdout import held_out
from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.settings import SettingsError, SettingsModel, validate


class Deployment(SettingsModel):
    """The setting as it sits in the configuration: `labeling.prelabel`."""

    prelabel: PrelabelSettings


MINIMAL = {
    "modelUri": "s3://models-123456789012/detectors/yolo11n.onnx",
    "classMap": {"15": "Cat", "16": "Dog"},
    "modelVersion": "yolo11n-coco",
}


def prelabel(**changes: Any) -> PrelabelSettings:
    raw = {**MINIMAL, **changes}
    return validate(Deployment, {"prelabel": {key: value for key, value in raw.items() if value is not None}}).prelabel


def test_the_defaults() -> None:
    settings = prelabel()
    assert (settings.output_layout, settings.input_size, settings.min_score, settings.iou_threshold) == (
        "yolo",
        640,
        0.25,
        0.45,
    )
    assert (settings.max_detections, settings.hold_out_percent, settings.endpoint_name) == (300, 10, None)
    assert settings.model_classes() == {15: "Cat", 16: "Dog"}
    assert settings.unknown_labels(("Dog", "Cat")) == [] and settings.unknown_labels(("Dog",)) == ["Cat"]
    assert prelabel(modelUri=None, endpointName="detector-prod-1").endpoint_name == "detector-prod-1"
    assert prelabel(minScore=1).min_score == 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"modelUri": None},
            "labeling.prelabel: give either modelUri (an ONNX detector in S3) or endpointName, not both",
        ),
        ({"endpointName": "detector"}, "labeling.prelabel: give either modelUri"),
        (
            {"modelUri": "https://example.com/model.onnx"},
            "labeling.prelabel.modelUri: 'https://example.com/model.onnx' must be an s3://bucket/key URI",
        ),
        (
            {"modelUri": "s3://models-123456789012/yolo11n.pt"},
            "must name an .onnx file (export the detector to ONNX first)",
        ),
        (
            {"modelUri": None, "endpointName": "bad name"},
            "labeling.prelabel.endpointName: 'bad name' is not a SageMaker endpoint name",
        ),
        (
            {"outputLayout": "yolov5"},
            "labeling.prelabel.outputLayout: must be one of 'yolo', 'yolo-nms' or 'boxes-scores-labels', got 'yolov5'",
        ),
        ({"inputSize": 16}, "labeling.prelabel.inputSize: must be between 32 and 4096, got 16"),
        ({"inputSize": "640"}, "labeling.prelabel.inputSize: must be a whole number, got '640'"),
        ({"minScore": 1.5}, "labeling.prelabel.minScore: must be between 0 and 1, got 1.5"),
        ({"minScore": "0.3"}, "labeling.prelabel.minScore: must be a number, got '0.3'"),
        ({"minScore": True}, "labeling.prelabel.minScore: must be a number, got True"),
        ({"classMap": {}}, "labeling.prelabel.classMap: must map at least one of the model's class ids to a label"),
        (
            {"classMap": {"cat": "Cat"}},
            "labeling.prelabel.classMap: keys are the model's class ids (0, 1, ...), got 'cat'",
        ),
        ({"classMap": ["Cat"]}, "labeling.prelabel.classMap: must be an object, got ['Cat']"),
        ({"classMap": None}, "labeling.prelabel.classMap: is required"),
        ({"modelVersion": None}, "labeling.prelabel.modelVersion: is required"),
        ({"modelVersion": "yolo 11"}, "labeling.prelabel.modelVersion: 'yolo 11' must be 1 to 64 letters, digits"),
        ({"holdOutPercent": 60}, "labeling.prelabel.holdOutPercent: must be between 0 and 50, got 60"),
        ({"maxDetections": 0}, "labeling.prelabel.maxDetections: must be between 1 and 1000, got 0"),
        ({"threshold": 0.3}, "labeling.prelabel: unknown setting(s)"),
    ],
)
def test_every_mistake_says_where_and_what(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        prelabel(**changes)
    assert message in str(raised.value), str(raised.value)


def test_the_hold_out_is_a_stable_share_that_a_new_version_draws_again() -> None:
    refs = [(f"s3://bucket/images/set/{index}.jpg", f"v{index % 7}") for index in range(20_000)]
    chosen = [held_out(ref, version, 10) for ref, version in refs]
    assert 0.09 < sum(chosen) / len(chosen) < 0.11
    assert chosen == [held_out(ref, version, 10) for ref, version in refs]  # a retry agrees
    assert not any(held_out(ref, version, 0) for ref, version in refs[:1000])
    # The 10 % are among the 20 %: raising the share keeps the images already held out.
    assert all(held_out(ref, version, 20) for (ref, version), out in zip(refs, chosen, strict=True) if out)
    versions = [held_out("s3://bucket/images/a.jpg", f"version-{index}", 50) for index in range(400)]
    assert 150 < sum(versions) < 250


@pytest.mark.parametrize(
    ("prelabel_value", "message"),
    [
        ({**MINIMAL, "classMap": {"0": "Person"}}, "labeling.prelabel.classMap: maps classes to 'Person', which"),
        ({**MINIMAL, "minScore": "0.3"}, "labeling.prelabel.minScore: must be a number, got '0.3'"),
        ({**MINIMAL, "threshold": 0.3}, "labeling.prelabel: unknown setting(s) threshold"),
        ({"classMap": {"0": "Dog"}, "modelVersion": "v1"}, "either modelUri"),
        ("yes", "labeling.prelabel: must be an object, got 'yes'"),
    ],
)
def test_the_deployment_refuses_a_wrong_prelabel_setting_at_synth(prelabel_value: Any, message: str) -> None:
    from stacks.config import parse_config

    with pytest.raises(SettingsError) as raised:
        parse_config({"labeling": {"labels": ["Dog", "Cat"], "prelabel": prelabel_value}})
    assert message in str(raised.value)


def test_the_functions_get_the_prelabel_setting_and_a_deployment_without_it_has_none() -> None:
    from labeling_pipeline.names import EnvironmentVariable
    from labeling_pipeline.runtime import pipeline_settings
    from stacks.config import parse_config
    from stacks.deployment_settings import runtime_settings_json

    configured = parse_config({"labeling": {"labels": ["Dog", "Cat"], "prelabel": MINIMAL}})
    runtime = pipeline_settings({EnvironmentVariable.PIPELINE_SETTINGS: runtime_settings_json(configured)})
    assert runtime.prelabel is not None
    assert runtime.prelabel.model_classes() == {15: "Cat", 16: "Dog"}
    assert parse_config({"labeling": {}}).prelabel is None
