"""A real Label Studio server and moto's S3 server, one of each per test session, for the Label Studio tests.

A missing Label Studio venv or browser skips these tests with what to install, except under CI=true, where a
skip would hide a setup that failed to install it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from sandbox.emulator import MotoServer
from sandbox.label_studio_server import INSTALL_HINT, LabelStudioServer, is_installed
from scripts.browser import INSTALL_HINT as BROWSER_INSTALL_HINT
from scripts.browser import find_chromium


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
