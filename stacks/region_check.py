"""Refuse, at synth, a region where Ground Truth has no built-in bounding-box task."""

from __future__ import annotations

import json
from pathlib import Path

from stacks.config import ConfigError

# The same file the launcher reads at run time.
REGIONS_FILE = (
    Path(__file__).resolve().parents[1] / "lambda" / "labeling_pipeline" / "backends" / ("ground_truth_regions.json")
)


def supported_regions() -> list[str]:
    return sorted(json.loads(REGIONS_FILE.read_text())["builtInLambdaAccounts"])


def check_region(region: str | None) -> None:
    """An unknown region (no credentials, env-agnostic synth) passes; the launcher checks again at run time."""
    if region and region not in supported_regions():
        raise ConfigError(
            f"region {region}: Ground Truth's built-in bounding-box task is not offered there; "
            f"use one of {', '.join(supported_regions())}"
        )
