"""labeling.backend "label-studio": its configuration model, labelStudioUrl's rules, and switching backends with
cdk.json as committed (no synth needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import aliases
from stacks.backends.label_studio.settings import LabelStudioConfig
from stacks.config import ConfigError, parse_config, runtime_settings_json

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
URL = "https://labels.example.com"
LABEL_STUDIO = {"labeling.backend": "label-studio", "labeling.labelStudioUrl": URL}


def _label_studio(context: Mapping[str, object]) -> LabelStudioConfig:
    config = parse_config(context)
    assert isinstance(config, LabelStudioConfig)
    return config


def test_label_studio_backend_reads_its_own_model_with_the_url() -> None:
    config = _label_studio(LABEL_STUDIO)
    assert config.backend == "label-studio"
    assert config.label_studio_url == config.url == URL
    assert config.project_title == "Bounding boxes" and config.presign_minutes == 60
    # Every other setting at its declared default.
    assert config == LabelStudioConfig(backend="label-studio", label_studio_url=URL)


def test_committed_cdk_json_switches_to_label_studio_with_two_overrides() -> None:
    # cdk.json lists Ground Truth's settings at their defaults; with labeling.backend=label-studio they are left
    # out, so `-c labeling.backend=label-studio -c labeling.labelStudioUrl=...` is all it takes.
    context = {**json.loads(CDK_JSON.read_text())["context"], **LABEL_STUDIO}
    config = _label_studio(context)
    assert config.url == URL and config.project_name == "gt-labeling"


def test_another_backends_setting_with_a_value_of_its_own_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^labeling\.workerEmails: a setting of the ground-truth backend, but labeling\.backend is "
        r"label-studio; remove it$",
    ):
        parse_config({**LABEL_STUDIO, "labeling.workerEmails": '["ana@example.com"]'})
    with pytest.raises(ConfigError, match=r"^labeling\.labelStudioUrl: a setting of the label-studio backend"):
        parse_config({"labeling.labelStudioUrl": URL})


def test_without_the_url_the_stack_deploys_label_studio() -> None:
    # labelStudioUrl names an existing server; without it the stack deploys one (test_label_studio_server.py).
    config = _label_studio({"labeling.backend": "label-studio"})
    assert config.label_studio_url is None and config.deploys_server


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://labels.example.com", "https://labels.example.com"),
        ("https://labels.example.com/", "https://labels.example.com"),
        ("https://labels.example.com:8443", "https://labels.example.com:8443"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_accepted_urls_are_kept_without_a_trailing_slash(url: str, kept: str) -> None:
    assert _label_studio({**LABEL_STUDIO, "labeling.labelStudioUrl": url}).url == kept


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://labels.example.com", r"must use https:// \(plain http:// only for localhost or 127\.0\.0\.1\)"),
        ("http://10.0.0.5:8080", r"must use https://"),
        ("ftp://labels.example.com", r"must be an https:// URL"),
        ("labels.example.com", r"must be an https:// URL"),
        ("https://", r"must be an https:// URL"),
        ("https://labels.example.com/label-studio", r"no path, query or fragment"),
        ("https://labels.example.com/?x=1", r"no path, query or fragment"),
        ("https://labels.example.com?", r"no path, query or fragment"),
        ("https://labels.example.com/#top", r"no path, query or fragment"),
        ("https://admin:secret@labels.example.com", r"must not carry a user name or password"),
        ("https://labels.example.com:99999", r"is not a URL"),
        ("https://[::1", r"is not a URL"),
    ],
)
def test_refused_urls_name_the_key_and_the_rule(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config({**LABEL_STUDIO, "labeling.labelStudioUrl": url})
    assert str(caught.value).startswith("labeling.labelStudioUrl: ")


def test_the_url_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match=r"^labeling\.labelStudioUrl: must be a string, got 3$"):
        parse_config({"labeling": {"backend": "label-studio", "labelStudioUrl": 3}})


def test_the_url_is_deployment_only_and_the_functions_get_label_studios_runtime_settings() -> None:
    config = _label_studio({**LABEL_STUDIO, "labeling.projectTitle": "Street signs", "labeling.presignMinutes": 30})
    text = runtime_settings_json(config)
    assert set(json.loads(text)) == set(aliases(settings_model("label-studio")))
    assert "labelStudioUrl" not in json.loads(text)
    settings = pipeline_settings({Env.PIPELINE_SETTINGS: text})
    assert isinstance(settings, LabelStudioSettings)
    assert settings.project_title == "Street signs" and settings.presign_minutes == 30


def test_project_task_limit_defaults_to_50000_and_reaches_the_functions() -> None:
    assert _label_studio(LABEL_STUDIO).project_task_limit == 50_000
    config = _label_studio({**LABEL_STUDIO, "labeling.projectTaskLimit": 20, "labeling.maxImagesPerJob": 20})
    settings = pipeline_settings({Env.PIPELINE_SETTINGS: runtime_settings_json(config)})
    assert isinstance(settings, LabelStudioSettings) and settings.project_task_limit == 20


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labeling.projectTaskLimit": 9}, r"^labeling\.projectTaskLimit: must be between 10 and 100000, got 9$"),
        (
            {"labeling.projectTaskLimit": 100_001},
            r"^labeling\.projectTaskLimit: must be between 10 and 100000, got 100001$",
        ),
        ({"labeling.projectTaskLimit": 2.5}, r"^labeling\.projectTaskLimit: must be a whole number, got 2\.5$"),
        (
            {"labeling.projectTaskLimit": 999},  # maxImagesPerJob is 1000 by default
            r"^labeling\.projectTaskLimit: must be at least maxImagesPerJob \(1000\), so that a job's tasks fit in "
            r"one Label Studio project; got 999$",
        ),
        (
            {"labeling.projectTaskLimit": 50, "labeling.maxImagesPerJob": 51},
            r"^labeling\.projectTaskLimit: must be at least maxImagesPerJob \(51\)",
        ),
    ],
)
def test_project_task_limit_is_refused_out_of_range_or_below_max_images_per_job(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**LABEL_STUDIO, **overrides})


def test_project_task_limit_equal_to_max_images_per_job_is_accepted_and_checked_at_run_time_too() -> None:
    config = _label_studio({**LABEL_STUDIO, "labeling.projectTaskLimit": 50, "labeling.maxImagesPerJob": 50})
    assert (config.project_task_limit, config.max_images_per_job) == (50, 50)
    # The functions parse the same rule (what a hand-edited PIPELINE_SETTINGS would meet).
    text = json.dumps({**json.loads(runtime_settings_json(config)), "maxImagesPerJob": 51})
    with pytest.raises(ValueError, match=r"^labeling\.projectTaskLimit: must be at least maxImagesPerJob \(51\)"):
        pipeline_settings({Env.PIPELINE_SETTINGS: text})
