"""A Lambda layer with onnxruntime, numpy and Pillow, built without Docker.

pip installs the pinned wheels for Lambda's platform (python3.14 on x86_64, Amazon Linux 2023, glibc 2.34) into
the layer's python/ folder: the wheels are binary, so nothing compiles and the deploying machine's own platform
does not matter. The result is kept under .build/ by the requirements' digest, so that a second synthesis (the
tests synthesize several apps) copies it instead of installing again. Docker's bundling image is the fallback
only if pip cannot run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
BUILD_CACHE = Path(__file__).resolve().parents[3] / ".build"
PYTHON_VERSION = "3.14"
# onnxruntime 1.32's Linux wheels are manylinux_2_28; numpy's and Pillow's are manylinux_2_17/2014 or 2_28.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Parts of the installed packages that inference never imports: onnxruntime's model tools, converters and
# quantizer, and the packages' own tests. About 10 MB of the layer's 165 MB.
UNUSED = (
    "onnxruntime/tools",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
    "numpy/_core/tests",
    "numpy/tests",
    "numpy/f2py",
    "numpy/typing/tests",
)


DOCKER_COMMAND = ["bash", "-c", "pip install --no-deps --only-binary=:all: -r requirements.txt -t /asset-output/python"]


def requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + PYTHON_VERSION.encode() + repr(UNUSED).encode()).hexdigest()[:16]


def install_runtime(cache: Path = BUILD_CACHE) -> Path:
    """The layer's content (a folder holding python/), installed once per requirements digest."""
    built = cache / f"detector-runtime-{requirements_digest()}"
    if (built / "python").is_dir():
        return built
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="detector-runtime-", dir=cache))
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION, *platforms,
            "--target", str(staging / "python"), "--requirement", str(REQUIREMENTS),
        ],
        check=True,
    )  # fmt: skip
    for unused in UNUSED:
        shutil.rmtree(staging / "python" / unused, ignore_errors=True)
    for cached in (staging / "python").rglob("__pycache__"):
        shutil.rmtree(cached, ignore_errors=True)
    try:
        staging.rename(built)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another synthesis built it meanwhile
    return built


@jsii.implements(cdk.ILocalBundling)
class _PipInstall:
    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: object) -> bool:
        try:
            built = install_runtime()
        except (OSError, subprocess.CalledProcessError):
            return False
        shutil.copytree(built, output_dir, dirs_exist_ok=True)
        return True


class DetectorRuntimeLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        runtime = lambda_.Runtime.PYTHON_3_14
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="onnxruntime, numpy and Pillow for the pre-label function's detector",
            compatible_runtimes=[runtime],
            compatible_architectures=[lambda_.Architecture.X86_64],
            code=lambda_.Code.from_asset(
                str(REQUIREMENTS.parent),
                # The asset changes when the requirements do: hash them, not the bundle's 165 MB.
                asset_hash=requirements_digest(),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                bundling=cdk.BundlingOptions(
                    image=runtime.bundling_image,
                    local=_PipInstall(),
                    command=DOCKER_COMMAND,
                ),
            ),
        )
