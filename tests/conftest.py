from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.node import node_major

# Tests never reach AWS: fixed fake credentials and region before boto3 is imported anywhere.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "GroundTruthLabelingTest",
        "POWERTOOLS_SERVICE_NAME": "labeling-launcher",
        # jsii's end-of-life banner, for whichever Node runs here (Debian 12 has 18; these machines 20).
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": node_major(),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
)

from sandbox.emulator import MotoServer
from sandbox.label_studio_server import INSTALL_HINT, LabelStudioServer, is_installed
from scripts.browser import INSTALL_HINT as BROWSER_INSTALL_HINT
from scripts.browser import find_chromium

# moto 5.2.5 deep-copies a whole table per action of a TransactWriteItems call (the ledger's batched
# claims); moto_transactions keeps moto's semantics and takes the rollback copy once per call. It also sorts
# the whole table on every Query and Scan, converting values at each comparison; moto_sorting converts them
# once (same order). See the modules.
from tests import moto_sorting, moto_transactions  # noqa: F401

# A real Label Studio server and moto's S3 server, one of each per test session, for the Label Studio tests
# (tests/label_studio/, tests/chaos/). A missing Label Studio venv or browser skips those tests with what to
# install, except under CI=true, where a skip would hide a setup that failed to install it.


def missing(hint: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and this is missing: make setup should have installed it. {hint}")
    pytest.skip(hint)


@pytest.fixture(scope="session")
def moto_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Empty at the start of the session; tests share it, so each makes its own project and users."""
    if not is_installed():
        missing(INSTALL_HINT)
    with LabelStudioServer(tmp_path_factory.mktemp("label-studio")) as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        missing(BROWSER_INSTALL_HINT)
    return found
