"""What every function reads from its environment at cold start: the settings and the backend's resources."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.names import EnvironmentVariable
from labeling_pipeline.settings import DEFAULT_BACKEND, PipelineSettings, SettingsError, validate_json


def pipeline_settings(environ: Mapping[str, str] = os.environ) -> PipelineSettings:
    """The validated settings the stack passed, parsed with the model of the backend they name."""
    text = environ[EnvironmentVariable.PIPELINE_SETTINGS]
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise SettingsError(f"{EnvironmentVariable.PIPELINE_SETTINGS} must hold a JSON object, got {text[:80]!r}")
    return validate_json(settings_model(str(raw.get("backend", DEFAULT_BACKEND))), text)


def backend_resources(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The backend's deployed resources (ARNs and names), as the stack's composition gave them."""
    resources = json.loads(environ.get(EnvironmentVariable.BACKEND_RESOURCES) or "{}")
    return {str(key): str(value) for key, value in resources.items()}
