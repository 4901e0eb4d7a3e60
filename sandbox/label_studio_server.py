"""A real Label Studio server (PyPI label-studio, in .venv-label-studio) on loopback, for tests and demos, started
as the deployed ECS task starts it: label_studio_plugin's ``labeling_gate.start`` (migrations, the administrator's
credentials applied from the environment, then uwsgi), with the access middleware and the worker-account pages
(``DJANGO_SETTINGS_MODULE=labeling_gate.settings``). So every test that talks to this server goes through the
same authorization as the deployment.

Label Studio runs Django's migrations on a new data dir, about 50 s. They are run once per Label Studio
version into a template database (`.cache/label-studio-<version>/`), which each new data dir gets a copy
of: a fresh, empty server then starts in seconds. The template holds no user: Label Studio creates the
first admin, with its token, from the environment at start, and only when that user does not exist yet.

    python -m sandbox.label_studio_server [--port P] [--data-dir D]   # one server to click around in
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from sandbox.emulator import free_port, stop_process_group

REPO = Path(__file__).resolve().parent.parent
LS_VENV = REPO / ".venv-label-studio"
LABEL_STUDIO = LS_VENV / "bin" / "label-studio"
LS_PYTHON = LS_VENV / "bin" / "python"
PLUGIN_DIR = REPO / "label_studio_plugin"
DEFAULT_CACHE_DIR = REPO / ".cache"
DATABASE_NAME = "label_studio.sqlite3"
INSTALL_HINT = (
    "Label Studio is not installed in .venv-label-studio: `make setup` installs it (requirements-label-studio.txt)."
)

# Test credentials for a server that listens on loopback only.
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"

START_TIMEOUT_SECONDS = 180
MIGRATE_TIMEOUT_SECONDS = 300
# What the child keeps of the caller's environment: nothing that could point Label Studio, Django or boto3
# somewhere else (DJANGO_*, LABEL_STUDIO_*, AWS_PROFILE, AWS_ENDPOINT_URL, ...).
INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")


class LabelStudioError(Exception):
    pass


def is_installed() -> bool:
    return LABEL_STUDIO.exists()


def installed_version() -> str:
    dist_infos = sorted(LS_VENV.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    if not dist_infos:
        raise LabelStudioError(INSTALL_HINT)
    return dist_infos[-1].name.removeprefix("label_studio-").removesuffix(".dist-info")


def environment(data_dir: Path, *, email: str = "", password: str = "", token: str = "") -> dict[str, str]:
    home = data_dir / "home"
    env = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(PLUGIN_DIR),
            # It writes nothing in the user's home: its own files all go under the data dir.
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "PYTHONUNBUFFERED": "1",
            # No outside calls: PyPI version check, Sentry (backend and frontend), analytics.
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            # A fixed token (`Authorization: Token ...`) instead of the default short-lived JWTs.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # Workers join only through the organization's invite link, as a team's server would be set up.
            "DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # SSRF protection refuses loopback and private addresses, which is where the tests' webhook
            # receiver and moto's S3 endpoint (`s3_endpoint` of a storage) listen.
            "SSRF_PROTECTION_ENABLED": "false",
            # Label Studio's S3 storages with empty keys fall back to boto3's default chain: these fake keys
            # are what moto's server (each storage's `s3_endpoint`) gets, and never anything real.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    if email:
        env.update(
            {"LABEL_STUDIO_USERNAME": email, "LABEL_STUDIO_PASSWORD": password, "LABEL_STUDIO_USER_TOKEN": token}
        )
    return env


def route_inventory(work_dir: Path) -> list[dict[str, Any]]:
    """Every route and method the installed Label Studio serves, with a path that reaches each
    (labeling_gate.inventory, run in Label Studio's venv with the deployed settings)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(LS_PYTHON), "-m", "labeling_gate.inventory"],
        env=environment(work_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=MIGRATE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise LabelStudioError(
            f"labeling_gate.inventory failed (exit {done.returncode}):\n{done.stderr.decode()[-3000:]}"
        )
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]


def template_path(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Where the migrated, user-less database for the installed Label Studio version is kept."""
    return cache_dir / f"label-studio-{installed_version()}" / DATABASE_NAME


def migrated_template(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """The migrated, user-less database for the installed Label Studio version, made on first use."""
    template = template_path(cache_dir)
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    # One migration at a time: sessions starting together (the test workers of a fresh clone) wait for the first
    # one's template instead of each spending a minute of CPU on the same migration.
    with (template.parent / f"{template.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if template.exists():
            return template
        _migrate(template)
    return template


def _migrate(template: Path) -> None:
    with tempfile.TemporaryDirectory(dir=template.parent, prefix="migrating-") as work:
        work_dir = Path(work)
        log_path = work_dir / "migrate.log"
        # Any command migrates first; `version` then only prints, and without LABEL_STUDIO_USERNAME no user
        # is created.
        with log_path.open("wb") as log:
            done = subprocess.run(
                [str(LABEL_STUDIO), "version", "--data-dir", str(work_dir)],
                env=environment(work_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT_SECONDS,
                check=False,
            )
        if done.returncode != 0 or not (work_dir / DATABASE_NAME).exists():
            raise LabelStudioError(f"label-studio migrations failed (exit {done.returncode}):\n{_tail(log_path)}")
        # Atomic: a session running alongside sees either no template or a whole one.
        os.replace(work_dir / DATABASE_NAME, template)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class LabelStudioServer:
    """`label-studio start` on 127.0.0.1 in a process group of its own; a context manager."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        token: str | None = None,
        admin_email: str = ADMIN_EMAIL,
        admin_password: str = ADMIN_PASSWORD,
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
        server: str = "uwsgi",
        extra_environment: dict[str, str] | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        """cache_dir=None migrates the data dir itself (no template). server: "uwsgi" as deployed, or "runserver"
        (Django's development server, which `label-studio start` runs) for the side-by-side load benchmark.
        command_prefix goes before the command, e.g. ("taskset", "-c", "0") to pin the server to one CPU."""
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token or secrets.token_hex(20)
        self.admin_email = admin_email
        self.admin_password = admin_password
        self.cache_dir = cache_dir
        self.server = server
        self.extra_environment = dict(extra_environment or {})
        self.command_prefix = list(command_prefix)
        self.log_path = self.data_dir / "label-studio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def start(self) -> None:
        if not is_installed():
            raise LabelStudioError(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database = self.data_dir / DATABASE_NAME
        if self.cache_dir is not None and not database.exists():
            shutil.copyfile(migrated_template(self.cache_dir), database)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.command_prefix,
                    str(LS_PYTHON),
                    "-m",
                    "labeling_gate.start",
                    "--server",
                    self.server,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env={
                    **environment(
                        self.data_dir, email=self.admin_email, password=self.admin_password, token=self.token
                    ),
                    **self.extra_environment,
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise LabelStudioError(
                    f"label-studio exited with code {self.process.returncode}; {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise LabelStudioError(
                    f"label-studio did not answer on {self.url} within {START_TIMEOUT_SECONDS} s:\n"
                    + _tail(self.log_path)
                )
            time.sleep(0.25)
        # A port taken by something else answers /health too: the token must be ours.
        whoami = requests.get(f"{self.url}/api/current-user/whoami", headers=self.headers, timeout=10)
        if not whoami.ok or whoami.json().get("email") != self.admin_email:
            raise LabelStudioError(
                f"the admin token is refused ({whoami.status_code}) on {self.url}:\n{_tail(self.log_path)}"
            )

    def set_password(self, email: str, password: str) -> None:
        """Label Studio's API cannot set a password (POST /api/users makes a user who cannot sign in):
        its `reset_password` command does, on the database."""
        command = [str(LABEL_STUDIO), "reset_password", "--data-dir", str(self.data_dir)]
        done = subprocess.run(
            [*command, "--username", email, "--password", password],
            env=environment(self.data_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            # Without a terminal: its prompts (getpass reads /dev/tty) must fail, not wait.
            start_new_session=True,
            timeout=120,
            check=False,
        )
        output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        if done.returncode != 0 or "not found" in output:
            raise LabelStudioError(f"reset_password for {email} failed (exit {done.returncode}):\n{output[-2000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process_group(self.process)


def main() -> None:
    parser = argparse.ArgumentParser(description="Start a Label Studio server on loopback until Ctrl-C.")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="kept; default: a new temporary dir")
    args = parser.parse_args()
    # Ctrl-C or a plain kill both stop the server: the `with` below must get to run its exit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="label-studio-"))
    started = time.monotonic()
    with LabelStudioServer(data_dir, port=args.port) as server:
        print(f"Label Studio {installed_version()} at {server.url} (started in {time.monotonic() - started:.1f} s)")
        print(f"  sign in: {server.admin_email} / {server.admin_password}   API token: {server.token}")
        print(f"  data dir: {server.data_dir}   log: {server.log_path}")
        print("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
