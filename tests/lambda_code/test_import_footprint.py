"""What each function's code imports at cold start, against what its Lambda has: only the pre-label function (and
the job end of a deployment with labeling.prelabel, which gets the same layer) has numpy, Pillow and onnxruntime.
The other handlers, and the CLI, must import without them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The Lambda layers give Powertools (with pydantic) and boto3; numpy, Pillow and onnxruntime only with the
# detector runtime layer.
ABSENT = ("numpy", "PIL", "onnxruntime")


@pytest.mark.parametrize(
    "module",
    [
        "labeling_pipeline.handler",
        "labeling_pipeline.job_events",
        "labeling_pipeline.backends.label_studio.setup_handler",
        "labeling_pipeline.backends.ground_truth",
        "labeling_cli.main",
    ],
)
def test_the_function_imports_without_the_detector_runtime(module: str) -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT)
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; {blocked}; import {module}"],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'lambda'}:{ROOT / 'cli'}", "AWS_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_check_would_see_a_missing_runtime() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT)
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; {blocked}; import labeling_pipeline.prelabel.handler"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "lambda"), "AWS_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "import of PIL halted" in result.stderr
