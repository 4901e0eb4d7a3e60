"""What a fresh machine meets: `make setup` finds or installs the browser the tests drive, the browser
tests skip with one line where it cannot (and fail under CI=true), and CI runs only the README's commands."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.browser import APPLICATION_PATHS, INSTALL_HINT, ensure, find_chromium

ROOT = Path(__file__).resolve().parents[2]
GALLERY_TEST = "tests/cli/test_review_gallery.py::test_gallery_shows_the_boxes_on_the_image"


def _which(available: dict[str, str]) -> Callable[[str], str | None]:
    return available.get


def _nothing_exists(path: str) -> bool:
    return False


def test_the_browser_is_found_by_variable_then_by_command_then_as_an_application() -> None:
    commands = {"chromium-browser": "/snap/bin/chromium-browser", "google-chrome": "/usr/bin/google-chrome"}
    assert find_chromium({}, _which(commands), _nothing_exists) == "/snap/bin/chromium-browser"
    chosen = {"CHROMIUM": "/opt/chrome/chrome"}
    assert find_chromium(chosen, _which(commands), lambda path: path == "/opt/chrome/chrome") == "/opt/chrome/chrome"
    # A variable that names nothing is not silently replaced by another browser.
    assert find_chromium({"CHROMIUM": "/nowhere/chrome"}, _which(commands), _nothing_exists) is None
    mac_chrome = APPLICATION_PATHS[1]
    assert find_chromium({}, _which({}), lambda path: path == mac_chrome) == mac_chrome
    assert find_chromium({}, _which({}), _nothing_exists) is None


def test_setup_as_root_on_debian_installs_chromium_with_apt(capsys: pytest.CaptureFixture[str]) -> None:
    installed: dict[str, str] = {"apt-get": "/usr/bin/apt-get"}
    commands: list[list[str]] = []

    def run(command: list[str]) -> bool:
        commands.append(command)
        if command[-1] == "chromium":  # what the package puts on PATH
            installed["chromium"] = "/usr/bin/chromium"
        return True

    found = ensure(environ={}, which=_which(installed), exists=_nothing_exists, is_root=True, run=run)
    assert found == "/usr/bin/chromium"
    assert commands == [
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-qq"],
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "chromium"],
    ]
    assert INSTALL_HINT not in capsys.readouterr().err


def test_where_debian_has_no_chromium_package_the_ubuntu_name_is_tried() -> None:
    installed: dict[str, str] = {"apt-get": "/usr/bin/apt-get"}
    commands: list[str] = []

    def run(command: list[str]) -> bool:
        commands.append(command[-1])
        if command[-1] == "chromium-browser":
            installed["chromium-browser"] = "/usr/bin/chromium-browser"
            return True
        return command[-1] == "-qq"  # update succeeds; "chromium" is unknown here

    assert ensure(environ={}, which=_which(installed), exists=_nothing_exists, is_root=True, run=run) == (
        "/usr/bin/chromium-browser"
    )
    assert commands == ["-qq", "chromium", "chromium-browser"]


def test_without_root_setup_installs_nothing_and_says_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    def run(command: list[str]) -> bool:
        raise AssertionError(f"nothing may be installed without root: {command}")

    installed = {"apt-get": "/usr/bin/apt-get"}
    assert ensure(environ={}, which=_which(installed), exists=_nothing_exists, is_root=False, run=run) is None
    assert capsys.readouterr().err.strip() == INSTALL_HINT


def test_make_setup_runs_the_browser_step_and_goes_on_where_it_cannot_install(tmp_path: Path) -> None:
    plan = subprocess.run(["make", "-n", "setup"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "python3 scripts/browser.py --install" in plan
    # No browser and no apt-get on PATH (a Mac without Chrome, say): one line, and setup is not stopped.
    environment = {**os.environ, "PATH": str(tmp_path)}
    environment.pop("CHROMIUM", None)
    result = subprocess.run(
        [sys.executable, "scripts/browser.py", "--install"], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stderr.strip() == INSTALL_HINT


def _gallery_test_without_a_browser(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("CI", "CHROMIUM")}
    environment["PATH"] = str(tmp_path)  # no chromium anywhere on it
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", GALLERY_TEST],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(any(Path(path).exists() for path in APPLICATION_PATHS), reason="a macOS browser is installed")
def test_browser_tests_skip_with_one_line_without_a_browser_but_fail_under_ci(tmp_path: Path) -> None:
    local = _gallery_test_without_a_browser(tmp_path, ci=None)
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout
    assert INSTALL_HINT in local.stdout
    under_ci = _gallery_test_without_a_browser(tmp_path, ci="true")
    assert under_ci.returncode == 1, under_ci.stdout
    assert "1 failed" in under_ci.stdout
    assert "CI=true and no browser" in under_ci.stdout


def test_ci_runs_only_what_the_readme_tells_a_user_to_run() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test", "make synth"]
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme.split("\n```", 2)[1]  # among the first commands
    # make synth is the first step of make deploy, the README's other first command.
    assert "deploy: synth" in (ROOT / "Makefile").read_text()
