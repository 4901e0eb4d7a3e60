"""The building blocks of every settings model: camelCase keys, strict types, and rules that say what is wrong.

Kept apart from `labeling_pipeline.settings` so that the settings of a part (``prelabel/settings.py``, a backend's)
can use them while `PipelineSettings` holds that part's model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr
from pydantic.alias_generators import to_camel

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
LINE_BREAKS = "\r\n\u0085\u2028\u2029"


class SettingsError(ValueError):
    """A setting broke a rule; the message names the key (``labeling.<name>``) and the rule."""


def rule(check: Callable[[Any], str | None]) -> AfterValidator:
    """A field rule: `check` returns what is wrong (the message after the key), or None."""

    def validate(value: Any) -> Any:
        problem = check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)


def between(low: int, high: int) -> AfterValidator:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}, got {value}"

    return rule(check)


def length(low: int, high: int) -> AfterValidator:
    def check(value: str) -> str | None:
        return None if low <= len(value) <= high else f"must be {low} to {high} characters, got {len(value)}"

    return rule(check)


def _one_line(value: str) -> str | None:
    return "must be one line" if any(char in value for char in LINE_BREAKS) else None


def _name(value: str) -> str | None:
    if NAME_PATTERN.match(value):
        return None
    return f"{value!r} must be letters, digits and single hyphens, starting and ending with a letter or digit"


Name = Annotated[StrictStr, rule(_name)]
OneLine = Annotated[StrictStr, rule(_one_line)]


class SettingsModel(BaseModel):
    """camelCase keys, no unknown key, no coercion of a string or a boolean into a number."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")
