"""The composition point: each labeling backend's name mapped to its configuration model and infrastructure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labeling_pipeline.backends.label_studio import NAME as LABEL_STUDIO
from labeling_pipeline.backends.registry import UnknownBackend, names
from labeling_pipeline.settings import DEFAULT_BACKEND
from stacks.backends.ground_truth.checkov_skips import SKIPS as GROUND_TRUTH_CHECKOV_SKIPS
from stacks.backends.ground_truth.infrastructure import GroundTruthInfrastructure
from stacks.backends.ground_truth.settings import GroundTruthConfig
from stacks.backends.label_studio.checkov_skips import SERVER_SKIPS as LABEL_STUDIO_SERVER_CHECKOV_SKIPS
from stacks.backends.label_studio.checkov_skips import SKIPS as LABEL_STUDIO_CHECKOV_SKIPS
from stacks.backends.label_studio.infrastructure import LabelStudioInfrastructure
from stacks.backends.label_studio.settings import LabelStudioConfig
from stacks.checkov_skips import CheckovSkip
from stacks.constructs.labeling_backend import BackendInfrastructure
from stacks.deployment_settings import LabelingConfig


@dataclass(frozen=True)
class BackendStacks:
    config_model: type[LabelingConfig]
    infrastructure: Callable[[], BackendInfrastructure]
    checkov_skips: tuple[CheckovSkip, ...] = ()


BACKENDS: dict[str, BackendStacks] = {
    DEFAULT_BACKEND: BackendStacks(GroundTruthConfig, GroundTruthInfrastructure, GROUND_TRUTH_CHECKOV_SKIPS),
    LABEL_STUDIO: BackendStacks(
        LabelStudioConfig,
        LabelStudioInfrastructure,
        LABEL_STUDIO_CHECKOV_SKIPS + LABEL_STUDIO_SERVER_CHECKOV_SKIPS,
    ),
}
assert sorted(BACKENDS) == names(), "every runtime backend needs its infrastructure"


def backend_stacks(backend: str) -> BackendStacks:
    found = BACKENDS.get(backend)
    if found is None:
        raise UnknownBackend(f"unknown labeling backend {backend!r}; choose from {', '.join(sorted(BACKENDS))}")
    return found


def config_model(backend: str) -> type[LabelingConfig]:
    return backend_stacks(backend).config_model
