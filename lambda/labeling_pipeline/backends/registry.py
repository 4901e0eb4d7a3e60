"""The one place that maps a backend's configuration name (``labeling.backend``) to its parts."""

from __future__ import annotations

import importlib
from functools import cache

from labeling_pipeline.backends import BackendParts
from labeling_pipeline.settings import DEFAULT_BACKEND, PipelineSettings, runtime_model

# name -> the package whose PARTS describe it
BACKEND_PACKAGES = {
    DEFAULT_BACKEND: "labeling_pipeline.backends.ground_truth",
    "label-studio": "labeling_pipeline.backends.label_studio",
}


class UnknownBackend(ValueError):
    pass


def names() -> list[str]:
    return sorted(BACKEND_PACKAGES)


def parts(name: str) -> BackendParts:
    package = BACKEND_PACKAGES.get(name)
    if package is None:
        raise UnknownBackend(f"unknown labeling backend {name!r}; choose from {', '.join(names())}")
    found: BackendParts = importlib.import_module(package).PARTS
    return found


@cache  # one class per backend, so that isinstance checks against it hold
def settings_model(name: str) -> type[PipelineSettings]:
    """The run-time settings of a backend: PipelineSettings plus its own."""
    return runtime_model(parts(name).settings)
