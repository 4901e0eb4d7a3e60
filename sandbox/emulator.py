"""moto's server mode as a real process on loopback, started and always stopped by a context manager.

The process gets a session of its own, so a Ctrl-C in the terminal reaches only the demo, which then
stops the server itself: nothing is left running whichever way the demo ends.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_SECONDS = 30
# The emulated account (moto's default): every ARN the sandbox makes names it.
ACCOUNT = "123456789012"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
STOP_TIMEOUT_SECONDS = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop a server started in a session of its own, and whatever it started: SIGTERM to its group, then
    SIGKILL after `timeout` seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class EmulatorError(Exception):
    pass


class MotoServer:
    def __init__(self, log_path: Path, line_prefix: str = "") -> None:
        self.log_path = log_path
        self.line_prefix = line_prefix
        self._log_writer: threading.Thread | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> MotoServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # moto's server only needs to serve; it must never reach AWS itself.
            env={**os.environ, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"},
        )
        self._log_writer = threading.Thread(target=self._copy_log, name="emulator-log", daemon=True)
        self._log_writer.start()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _copy_log(self) -> None:
        """The server's output, each line prefixed (the demo marks every log line as a demo's)."""
        assert self.process is not None and self.process.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            for line in self.process.stdout:
                # Without the terminal colours the server adds to its banner.
                text = ANSI_ESCAPE.sub("", line.decode(errors="replace"))
                log.write(f"{self.line_prefix}{text}")
                log.flush()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise EmulatorError(f"moto server exited with code {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise EmulatorError(f"moto server did not answer on {self.url} within {START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The whole process group: moto's server may have started helpers of its own.
        stop_process_group(self.process)
        if self._log_writer is not None:
            self._log_writer.join(STOP_TIMEOUT_SECONDS)
