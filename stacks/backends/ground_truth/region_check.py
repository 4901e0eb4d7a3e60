"""Refuse, at synth, a region where Ground Truth has no built-in bounding-box task."""

from __future__ import annotations

from labeling_pipeline.backends.ground_truth.service import BUILT_IN_LAMBDA_ACCOUNTS
from labeling_pipeline.settings import SettingsError


def supported_regions() -> list[str]:
    """The regions in the file the launcher reads at run time (backends/ground_truth/regions.json)."""
    return sorted(BUILT_IN_LAMBDA_ACCOUNTS)


def check_region(region: str | None) -> None:
    """An unknown region (no credentials, env-agnostic synth) passes; the launcher checks again at run time."""
    if region and region not in supported_regions():
        raise SettingsError(
            f"region {region}: Ground Truth's built-in bounding-box task is not offered there; "
            f"use one of {', '.join(supported_regions())}"
        )
