"""The pipeline's settings, each declared once with its default, its rule and its message.

One pydantic model per layer, camelCase in `cdk.json` (``labeling.workersPerImage``) and snake_case in
code:
- `PipelineSettings` here: what every backend's Lambda code needs at run time;
- each backend's own runtime settings, in its package (``backends/<name>/settings.py``), mixed in by
  `runtime_model`;
- the deployment-only settings (project name, batching, removal policy, …), in ``stacks/config.py``.

Synth validates the whole of it and hands the runtime part to the Lambda functions as one JSON value
(`EnvironmentVariable.PIPELINE_SETTINGS`), which they parse once, at cold start, with the same model.
The Powertools layer the functions use carries pydantic v2 (its build installs the library with all
extras: ``layer_v3/layer/layer_stack.py``, ``include_extras=True``, in aws-powertools/powertools-lambda-python).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, StrictInt, StrictStr, ValidationError, create_model, model_validator

from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.setting_rules import (
    Name,
    OneLine,
    SettingsError,
    SettingsModel,
    between,
    length,
    rule,
)

__all__ = ["Name", "OneLine", "SettingsError", "SettingsModel", "between", "length", "rule"]

CONTEXT_KEY = "labeling"
DEFAULT_BACKEND = "ground-truth"
# The CloudWatch namespace of the pipeline's metrics and alarms. It keeps the name it had when Ground Truth
# was the only backend, so that existing dashboards and alarms keep their data.
DEFAULT_METRIC_NAMESPACE = "GroundTruthLabeling"
# A job (batch) name is <prefix>-<yyyymmdd>-<12 hex>: 22 characters after the prefix, 63 in all.
MAX_JOB_NAME_PREFIX = 63 - 22
MAX_IMAGES_PER_JOB = 100_000


def _labels(labels: tuple[str, ...]) -> str | None:
    if not labels:
        return "at least one label is required"
    seen: set[str] = set()
    for label in labels:
        if not label.strip():
            return "labels must not be empty or blank"
        if label in seen:
            return f"duplicate label {label!r}; labels must be unique"
        seen.add(label)
    return None


Labels = Annotated[tuple[StrictStr, ...], rule(_labels)]


class PipelineSettings(SettingsModel):
    """What every backend's Lambda code needs at run time."""

    backend: StrictStr = DEFAULT_BACKEND
    labels: Labels = ("Dog", "Cat")
    task_title: Annotated[StrictStr, length(1, 128)] = "Draw a box around each object"
    task_description: Annotated[OneLine, length(1, 255)] = (
        "Draw a tight bounding box around every visible object of each label."
    )
    short_instructions: Annotated[StrictStr, length(1, 10_000)] = (
        "Draw one tight box around each visible object and pick its label."
    )
    full_instructions: Annotated[StrictStr, length(1, 100_000)] = (
        "Draw one box per object. Keep the box tight to the visible edges. "
        "Include partly hidden objects; leave out reflections and drawings of objects."
    )
    workers_per_image: Annotated[StrictInt, between(1, 9)] = 1
    max_images_per_job: Annotated[StrictInt, between(1, MAX_IMAGES_PER_JOB)] = 1000
    job_name_prefix: Annotated[Name, length(1, MAX_JOB_NAME_PREFIX)] = "bbox"
    metric_namespace: Annotated[StrictStr, length(1, 255)] = DEFAULT_METRIC_NAMESPACE
    # Off unless configured: a detector proposes boxes that people correct (labeling_pipeline/prelabel/).
    prelabel: PrelabelSettings | None = None

    @model_validator(mode="after")
    def _prelabel_labels_are_ours(self) -> PipelineSettings:
        if self.prelabel is not None and (unknown := self.prelabel.unknown_labels(self.labels)):
            raise ValueError(
                f"prelabel.classMap: maps classes to {', '.join(map(repr, unknown))}, which labeling.labels does "
                f"not have ({', '.join(map(repr, self.labels))})"
            )
        return self


M = TypeVar("M", bound=SettingsModel)


def runtime_model(backend_settings: type[SettingsModel]) -> type[PipelineSettings]:
    """The run-time settings of one backend: PipelineSettings plus the backend's own, every field and every
    rule of both (the backend's rules run first)."""
    model = create_model(f"{backend_settings.__name__}Runtime", __base__=(backend_settings, PipelineSettings))
    assert issubclass(model, PipelineSettings)
    return model


def aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {value!r}"
    if kind in ("string_type", "string_sub_type"):
        return f"must be a string, got {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list of strings, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {value!r}"
    if kind in ("dict_type", "model_type"):
        return f"must be an object, got {value!r}"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {value!r}"
    return str(error["msg"])


def settings_error(error: ValidationError, model: type[BaseModel]) -> SettingsError:
    """The first broken rule as ``labeling.<key>: <rule>``; unknown keys are listed together."""
    problems = error.errors()
    unknown = sorted(
        tuple(str(part) for part in problem["loc"]) for problem in problems if problem["type"] == "extra_forbidden"
    )
    if unknown:
        # Named where they sit: labeling.prelabel: unknown setting(s) threshold.
        parents = sorted({".".join((CONTEXT_KEY, *path[:-1])) for path in unknown})
        names = (
            ", ".join(path[-1] for path in unknown) if len(parents) == 1 else ", ".join(".".join(p) for p in unknown)
        )
        return SettingsError(f"{parents[0] if len(parents) == 1 else CONTEXT_KEY}: unknown setting(s) {names}")
    problem = problems[0]
    location = problem["loc"]
    by_name = {name: field.alias or name for name, field in model.model_fields.items()}
    if location:
        key = by_name.get(str(location[0]), str(location[0]))
        if problem["type"] in ("string_type", "int_type") and len(location) > 1 and isinstance(location[1], int):
            # An element of a list: the whole list is what the user wrote.
            return SettingsError(f"{CONTEXT_KEY}.{key}: must be a list of strings")
        # A nested setting (labeling.prelabel.minScore) is named by its whole path.
        path = ".".join([key, *(str(part) for part in location[1:] if isinstance(part, str))])
        return SettingsError(f"{CONTEXT_KEY}.{path}: {_describe(problem)}")
    # A rule across fields names its key itself ("<key>: <rule>").
    return SettingsError(f"{CONTEXT_KEY}.{_describe(problem)}")


def validate(model: type[M], raw: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise settings_error(error, model) from None


def validate_json(model: type[M], text: str) -> M:
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        raise settings_error(error, model) from None


def to_json(settings: BaseModel, model: type[BaseModel]) -> str:
    """The settings as `model` declares them (camelCase keys), compact: the Lambda environment is small."""
    fields = set(model.model_fields)
    return settings.model_dump_json(by_alias=True, include=fields)
