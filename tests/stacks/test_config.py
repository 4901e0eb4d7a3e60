"""Configuration: defaults, -c overrides, and a clear message for every rule (no synth needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.config import ConfigError, LabelingConfig, parse_config, task_settings_for_lambda
from stacks.region_check import check_region, supported_regions

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def test_defaults_are_the_cat_dog_walkthrough() -> None:
    config = parse_config({})
    assert config == LabelingConfig()
    assert config.labels == ("Dog", "Cat") and config.label_attribute_name == "labels"


def test_committed_cdk_json_is_valid_and_names_nobody() -> None:
    context = json.loads(CDK_JSON.read_text())["context"]
    config = parse_config(context)
    assert config.worker_emails == ()


def test_whole_object_and_single_field_overrides() -> None:
    config = parse_config(
        {
            "labeling": json.dumps({"labels": ["Car", "Bus"], "workersPerImage": 3}),
            "labeling.workerEmails": '["ana@example.com"]',
            "labeling.taskTitle": "Box every vehicle",
            "labeling.batchSize": "50",
        }
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
        ({"workersPerImage": True}, r"labeling\.workersPerImage: must be a whole number"),
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
        ({"removalPolicy": "snapshot"}, r"labeling\.removalPolicy: must be 'retain' or 'destroy'"),
        ({"cognitoDomainPrefix": "my-aws-team"}, r"must not contain 'aws'"),
        ({"cognitoDomainPrefix": "Upper"}, r"labeling\.cognitoDomainPrefix"),
        ({"labelz": ["Dog"]}, r"unknown setting\(s\) labelz"),
    ],
)
def test_invalid_settings_name_the_key_and_the_rule(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"labeling": override})


def test_non_object_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="labeling: must be a JSON object"):
        parse_config({"labeling": "[1, 2]"})


def test_lambda_settings_carry_the_task_fields() -> None:
    settings = task_settings_for_lambda(parse_config({"labeling.labels": '["Car"]'}))
    assert settings["labels"] == ["Car"]
    assert settings["maxImagesPerJob"] == 1000


def test_region_check() -> None:
    assert "ap-northeast-2" in supported_regions()
    check_region(None)
    check_region("eu-west-1")
    with pytest.raises(ConfigError, match=r"region sa-east-1: .*not offered"):
        check_region("sa-east-1")
