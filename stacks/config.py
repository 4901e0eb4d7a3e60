"""Read the validated configuration from `cdk.json` context (the models are declared once: generic ones in
labeling_pipeline/settings.py and stacks/deployment_settings.py, each backend's beside its code).

Every setting lives under the context key ``labeling``. A whole object can be given with
``-c labeling='{"labels": ["Car"]}'`` and a single field with ``-c labeling.labels='["Car"]'``.
Validation runs at synth: a bad value fails ``cdk synth`` with the key and the rule it broke.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from labeling_pipeline.backends.registry import UnknownBackend
from labeling_pipeline.settings import CONTEXT_KEY, DEFAULT_BACKEND, SettingsError, validate
from stacks.backends import BACKENDS, config_model
from stacks.deployment_settings import (
    KMS_KEY_ARN_PATTERN,
    KMS_KEY_CREATE,
    KMS_KEY_NONE,
    LabelingConfig,
    runtime_settings_json,
)

# Lambda allows 4 KB of environment variables per function, all of them together
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); the settings get most of it.
MAX_RUNTIME_SETTINGS_BYTES = 3000

ConfigError = SettingsError
__all__ = [
    "KMS_KEY_ARN_PATTERN",
    "KMS_KEY_CREATE",
    "KMS_KEY_NONE",
    "ConfigError",
    "LabelingConfig",
    "parse_config",
    "runtime_settings_json",
]


def _decode(value: Any) -> Any:
    """`-c` values arrive as strings; JSON lists, objects and numbers are decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def merge_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Gather ``labeling`` and any ``labeling.<field>`` overrides into one raw mapping."""
    base = _decode(context.get(CONTEXT_KEY, {}))
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise ConfigError(f"{CONTEXT_KEY}: must be a JSON object, got {type(base).__name__}")
    raw = dict(base)
    prefix = CONTEXT_KEY + "."
    for key, value in context.items():
        if key.startswith(prefix):
            raw[key[len(prefix) :]] = _decode(value)
    return raw


def _alias_defaults(model: type[LabelingConfig]) -> dict[str, Any]:
    return {field.alias or name: field.default for name, field in model.model_fields.items()}


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def drop_other_backends_defaults(raw: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """Leave out the settings of another backend that are at that backend's defaults.

    cdk.json lists every Ground Truth setting at its default (as documentation), so that switching with
    ``-c labeling.backend=label-studio`` works without editing it. A setting of another backend with a value
    of its own is refused: it would be silently ignored otherwise."""
    own = _alias_defaults(config_model(backend))
    kept = dict(raw)
    for other, parts in BACKENDS.items():
        if other == backend:
            continue
        for key, default in _alias_defaults(parts.config_model).items():
            if key in own or key not in kept:
                continue
            if _as_json(kept[key]) != _as_json(default):
                raise ConfigError(
                    f"{CONTEXT_KEY}.{key}: a setting of the {other} backend, but {CONTEXT_KEY}.backend is {backend}; "
                    "remove it"
                )
            del kept[key]
    return kept


def parse_config(context: Mapping[str, Any]) -> LabelingConfig:
    """The validated configuration of the backend that ``labeling.backend`` names."""
    raw = merge_context(context)
    backend = raw.get("backend", DEFAULT_BACKEND)
    try:
        model = config_model(backend) if isinstance(backend, str) else None
    except UnknownBackend as error:
        raise ConfigError(f"{CONTEXT_KEY}.backend: {error}") from None
    if model is None:
        raise ConfigError(f"{CONTEXT_KEY}.backend: must be a string, got {backend!r}")
    config = validate(model, drop_other_backends_defaults(raw, backend))
    size = len(runtime_settings_json(config).encode())
    if size > MAX_RUNTIME_SETTINGS_BYTES:
        raise ConfigError(
            f"{CONTEXT_KEY}: the settings the functions need take {size} bytes, more than the "
            f"{MAX_RUNTIME_SETTINGS_BYTES} that fit in a Lambda environment; shorten fullInstructions or "
            "shortInstructions"
        )
    return config
