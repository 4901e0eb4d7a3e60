"""Configuration: defaults, -c overrides, and a clear message for every rule (no synth needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.names import EnvironmentVariable
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import DEFAULT_METRIC_NAMESPACE, PipelineSettings, aliases
from stacks.backends.ground_truth.region_check import check_region, supported_regions
from stacks.backends.ground_truth.settings import GroundTruthConfig
from stacks.config import MAX_RUNTIME_SETTINGS_BYTES, ConfigError, LabelingConfig, parse_config, runtime_settings_json

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def test_defaults_are_the_cat_dog_walkthrough() -> None:
    config = parse_config({})
    # The default backend's model, every field at its declared default.
    assert type(config) is GroundTruthConfig and isinstance(config, LabelingConfig)
    assert config == GroundTruthConfig()
    assert config.backend == "ground-truth"
    assert config.labels == ("Dog", "Cat") and config.label_attribute_name == "labels"
    # Existing dashboards and alarms keep their namespace.
    assert config.metric_namespace == DEFAULT_METRIC_NAMESPACE == "GroundTruthLabeling"


def _ground_truth(config: LabelingConfig) -> GroundTruthConfig:
    """The configuration parse_config gives for labeling.backend ground-truth (the default)."""
    assert isinstance(config, GroundTruthConfig)
    return config


def test_committed_cdk_json_is_valid_and_names_nobody() -> None:
    context = json.loads(CDK_JSON.read_text())["context"]
    config = _ground_truth(parse_config(context))
    assert config.worker_emails == ()


def test_whole_object_and_single_field_overrides() -> None:
    config = _ground_truth(
        parse_config(
            {
                "labeling": json.dumps({"labels": ["Car", "Bus"], "workersPerImage": 3}),
                "labeling.workerEmails": '["ana@example.com"]',
                "labeling.taskTitle": "Box every vehicle",
                "labeling.batchSize": "50",
            }
        )
    )
    assert config.labels == ("Car", "Bus")
    assert config.workers_per_image == 3
    assert config.worker_emails == ("ana@example.com",)
    assert config.task_title == "Box every vehicle"
    assert config.batch_size == 50


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"labels": []}, r"labeling\.labels: at least one label"),
        ({"labels": ["Dog", "Dog"]}, r"labeling\.labels: duplicate label 'Dog'"),
        ({"labels": ["Dog", " "]}, r"labeling\.labels: labels must not be empty"),
        ({"labels": [f"L{i}" for i in range(51)]}, r"at most 50 labels for bounding boxes, got 51"),
        ({"labels": ["x" * 257]}, r"longer than 256"),
        ({"taskTitle": "t" * 129}, r"labeling\.taskTitle: must be 1 to 128 characters, got 129"),
        ({"taskDescription": ""}, r"labeling\.taskDescription: must be 1 to 255"),
        ({"taskDescription": "Two\nlines"}, r"labeling\.taskDescription: must be one line"),
        ({"workersPerImage": 10}, r"labeling\.workersPerImage: must be between 1 and 9, got 10"),
        ({"workersPerImage": True}, r"labeling\.workersPerImage: must be a whole number, got True$"),
        ({"taskTimeLimitSeconds": 28_801}, r"labeling\.taskTimeLimitSeconds: must be between 30 and 28800"),
        ({"taskAvailabilitySeconds": 59}, r"labeling\.taskAvailabilitySeconds: must be between 60"),
        ({"maxConcurrentTaskCount": 5001}, r"labeling\.maxConcurrentTaskCount"),
        ({"maxImagesPerJob": 100_001}, r"labeling\.maxImagesPerJob: must be between 1 and 100000"),
        ({"batchSize": 10_001}, r"labeling\.batchSize"),
        (
            {"batchSize": 100, "batchingWindowSeconds": 0},
            r"labeling\.batchingWindowSeconds: must be at least 1",
        ),
        ({"labelAttributeName": "boxes-metadata"}, r"must not end in '-metadata'"),
        ({"labelAttributeName": "my boxes"}, r"labeling\.labelAttributeName: 'my boxes' must be letters"),
        ({"jobNamePrefix": "x" * 42}, r"labeling\.jobNamePrefix: must be 1 to 41 characters"),
        ({"jobNamePrefix": "bad_prefix"}, r"labeling\.jobNamePrefix"),
        ({"taskKeywords": ["Bounding-Box"]}, r"labeling\.taskKeywords: 'Bounding-Box'"),
        ({"taskKeywords": ["a", "b", "c", "d", "e", "f"]}, r"1 to 5 keywords, got 6"),
        ({"workerEmails": ["not-an-email"]}, r"labeling\.workerEmails: 'not-an-email' is not an email"),
        ({"workerEmails": ["a@example.com", "A@example.com"]}, r"listed twice"),
        (
            {"removalPolicy": "snapshot"},
            r"labeling\.removalPolicy: must be one of 'retain' or 'destroy', got 'snapshot'$",
        ),
        ({"cognitoDomainPrefix": "my-aws-team"}, r"must not contain 'aws'"),
        ({"cognitoDomainPrefix": "Upper"}, r"labeling\.cognitoDomainPrefix"),
        ({"labelz": ["Dog"]}, r"unknown setting\(s\) labelz"),
        (
            {"backend": "x"},
            r"^labeling\.backend: unknown labeling backend 'x'; choose from ground-truth, label-studio$",
        ),
        ({"backend": 3}, r"^labeling\.backend: must be a string, got 3$"),
    ],
)
def test_invalid_settings_name_the_key_and_the_rule(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"labeling": override})


def test_non_object_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="labeling: must be a JSON object"):
        parse_config({"labeling": "[1, 2]"})


def _runtime_size(full_instructions: str) -> int:
    """Bytes of the functions' settings with these instructions (the rest at their defaults)."""
    config = GroundTruthConfig.model_validate({"fullInstructions": full_instructions})
    return len(runtime_settings_json(config).encode())


def test_settings_too_large_for_the_lambda_environment_are_refused() -> None:
    instructions = "x" * 5_000
    size = _runtime_size(instructions)
    assert size > 5_000
    message = (
        rf"^labeling: the settings the functions need take {size} bytes, more than the "
        rf"{MAX_RUNTIME_SETTINGS_BYTES} that fit in a Lambda environment; shorten fullInstructions or "
        r"shortInstructions$"
    )
    with pytest.raises(ConfigError, match=message):
        parse_config({"labeling.fullInstructions": instructions})


def test_the_size_limit_counts_bytes_up_to_3000() -> None:
    assert MAX_RUNTIME_SETTINGS_BYTES == 3000
    base = _runtime_size("x") - 1  # everything but the instructions
    fits = "x" * (MAX_RUNTIME_SETTINGS_BYTES - base)
    assert _runtime_size(fits) == MAX_RUNTIME_SETTINGS_BYTES
    assert parse_config({"labeling.fullInstructions": fits}).full_instructions == fits
    with pytest.raises(ConfigError, match=rf"take {MAX_RUNTIME_SETTINGS_BYTES + 1} bytes"):
        parse_config({"labeling.fullInstructions": fits + "x"})
    # Bytes, not characters: each "é" takes two in UTF-8.
    accented = "é" * ((MAX_RUNTIME_SETTINGS_BYTES - base) // 2 + 1)
    with pytest.raises(ConfigError, match=r"bytes, more than the 3000"):
        parse_config({"labeling.fullInstructions": accented})


def test_runtime_settings_round_trip_into_the_same_values() -> None:
    config = parse_config(
        {
            "labeling": json.dumps(
                {
                    "labels": ["Car", "Bus", "Vélo"],
                    "taskTitle": "Box every vehicle",
                    "taskDescription": "Tight boxes around cars, buses and bikes.",
                    "taskKeywords": ["Vehicles"],
                    "shortInstructions": "One box per vehicle.",
                    "fullInstructions": "Draw one tight box per <vehicle> & pick its label.",
                    "workersPerImage": 3,
                    "taskTimeLimitSeconds": 900,
                    "taskAvailabilitySeconds": 3600,
                    "maxConcurrentTaskCount": 50,
                    "labelAttributeName": "vehicles",
                    "jobNamePrefix": "cars",
                    "maxImagesPerJob": 250,
                    "metricNamespace": "VehicleLabeling",
                    "workerEmails": ["ana@example.com"],
                    "projectName": "vehicles",
                    "batchSize": 50,
                }
            )
        }
    )
    text = runtime_settings_json(config)
    model = settings_model("ground-truth")
    # Only what the functions need: no deployment-only setting (project, emails, batching, key) goes along.
    assert sorted(json.loads(text)) == sorted(aliases(model))
    assert not {"projectName", "workerEmails", "batchSize", "kmsKey"} & set(json.loads(text))
    settings = pipeline_settings({EnvironmentVariable.PIPELINE_SETTINGS: text})
    assert type(settings).__name__ == model.__name__
    assert isinstance(settings, GroundTruthSettings) and isinstance(settings, PipelineSettings)
    assert {name: getattr(settings, name) for name in model.model_fields} == {
        name: getattr(config, name) for name in model.model_fields
    }
    assert settings.labels == ("Car", "Bus", "Vélo") and settings.workers_per_image == 3
    assert settings.metric_namespace == "VehicleLabeling"


def test_region_check() -> None:
    assert "ap-northeast-2" in supported_regions()
    check_region(None)
    check_region("eu-west-1")
    with pytest.raises(ConfigError, match=r"region sa-east-1: .*not offered"):
        check_region("sa-east-1")
