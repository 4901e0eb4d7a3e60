"""Find the Chromium that the browser tests drive, and install it where `make setup` may.

`make setup` runs `python3 scripts/browser.py --install`: with a Chromium or Chrome already there it says
nothing; as root on Debian or Ubuntu it installs the distribution's package with apt-get (the tests drive
the system browser: a test tool's own browser download is not reachable everywhere); anywhere else it
prints one line saying what to install and lets setup go on, and the browser tests then skip with the same
line (or fail under CI=true, where a skipped browser test would hide a missing install).

Standard library only: it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

# The variable a user sets to point the tests at a browser that is not on PATH.
BROWSER_VARIABLE = "CHROMIUM"
COMMAND_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Where the installers put the browser when it is not on PATH (macOS applications).
APPLICATION_PATHS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
# Debian calls the package chromium; Ubuntu's chromium-browser is a transitional package for the snap,
# which does not install in a container, so chromium is tried first there too.
APT_PACKAGES = ("chromium", "chromium-browser")

INSTALL_HINT = (
    "Chromium was not found, so the browser tests will skip: install it (Debian/Ubuntu: `sudo apt-get install "
    "chromium`; macOS: install Google Chrome or Chromium) and run `make setup` again, or set CHROMIUM to its path."
)


def find_chromium(
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
) -> str | None:
    """The browser to drive: $CHROMIUM if it names a program, else the first known command or application."""
    chosen = environ.get(BROWSER_VARIABLE)
    if chosen:
        return which(chosen) or (chosen if exists(chosen) else None)
    for name in COMMAND_NAMES:
        found = which(name)
        if found:
            return found
    return next((path for path in APPLICATION_PATHS if exists(path)), None)


# apt-get's own output (hundreds of lines for Chromium and what it recommends) goes here, not to the screen.
INSTALL_LOG = Path(tempfile.gettempdir()) / "gt-labeling-browser-install.log"


def _run(command: list[str]) -> bool:
    print("+ " + " ".join(command), flush=True)
    with INSTALL_LOG.open("a") as log:
        done = subprocess.run(command, check=False, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        print(f"  exit {done.returncode}; its output is in {INSTALL_LOG}", flush=True)
    return done.returncode == 0


def install_with_apt(run: Callable[[list[str]], bool] = _run) -> bool:
    """apt-get update, then the first package name this distribution knows."""
    environment_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    if not run([*environment_prefix, "apt-get", "update", "-qq"]):
        return False
    return any(run([*environment_prefix, "apt-get", "install", "-y", "-qq", package]) for package in APT_PACKAGES)


def ensure(
    *,
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    is_root: bool | None = None,
    run: Callable[[list[str]], bool] = _run,
) -> str | None:
    """The browser's path, after installing it where that is ours to do; None (and the hint) otherwise."""
    found = find_chromium(environ, which, exists)
    if found:
        return found
    root = os.geteuid() == 0 if is_root is None else is_root
    if root and which("apt-get") and install_with_apt(run):
        found = find_chromium(environ, which, exists)
        if found:
            print(f"Installed Chromium for the browser tests: {found}")
            return found
    print(INSTALL_HINT, file=sys.stderr)
    return None


def main(argv: list[str]) -> int:
    if argv == ["--install"]:
        ensure()
        return 0  # setup goes on: the browser tests say what is missing when they run
    if argv == []:
        found = find_chromium()
        print(found or INSTALL_HINT)
        return 0 if found else 1
    print("usage: browser.py [--install]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
