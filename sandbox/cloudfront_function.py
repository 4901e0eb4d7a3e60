"""Runs a CloudFront Function's code (cloudfront-js-2.0) under Node.js, as CloudFront would run it on a viewer
request: one long-lived `node` process, one JSON event per line in, the function's answer per line out.

CloudFront's runtime is not Node's: it knows ES 5.1 with some later features, `require('crypto')` for hashes, and
no Node API. Node runs a superset of that, so code that works in CloudFront works here; the other way round is
what a `test-function` call in AWS checks (not done here: no account).

    with CloudFrontFunction(code) as function:
        answer = function.viewer_request("POST", "/api/projects/1/import", headers={"authorization": "Token x"})
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Mapping
from typing import IO, Any
from urllib.parse import urlsplit

# Reads the function's code from its first line, then one event per line; answers one JSON line per event.
RUNNER = r"""
var readline = require('readline');
var lines = readline.createInterface({input: process.stdin});
var handler = null;
lines.on('line', function (line) {
  if (handler === null) {
    handler = new Function('require', JSON.parse(line) + '\nreturn handler;')(require);
    return;
  }
  var answer;
  try {
    answer = {result: handler(JSON.parse(line))};
  } catch (error) {
    answer = {error: String(error && error.stack || error)};
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
"""


class FunctionError(Exception):
    pass


def viewer_request_event(method: str, path_and_query: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """CloudFront Functions' event (version 1.0) for a viewer request: header names in lower case, the query
    string as an object of {value} (with multiValue when a name repeats), as given in the URL."""
    parts = urlsplit(path_and_query)
    querystring: dict[str, dict[str, Any]] = {}
    for pair in filter(None, parts.query.split("&")):
        name, _, value = pair.partition("=")
        if name in querystring:
            entry = querystring[name]
            entry.setdefault("multiValue", [{"value": entry["value"]}]).append({"value": value})
        else:
            querystring[name] = {"value": value}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "127.0.0.1"},
        "request": {
            "method": method.upper(),
            "uri": parts.path or "/",
            "querystring": querystring,
            "headers": {name.lower(): {"value": value} for name, value in (headers or {}).items()},
            "cookies": {},
        },
    }


class CloudFrontFunction:
    def __init__(self, code: str) -> None:
        node = shutil.which("node")
        if node is None:
            raise FunctionError("Node.js is not installed: it runs the CloudFront Function's code here")
        self._process = subprocess.Popen(
            [node, "-e", RUNNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            # A Ctrl-C at the terminal is for the program that runs this function (the demo), which then closes
            # it: Node must not die first, under a request in flight.
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._send(json.dumps(code))

    def __enter__(self) -> CloudFrontFunction:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, line: str) -> None:
        stdin: IO[str] | None = self._process.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def run(self, event: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._send(json.dumps(event))
            stdout = self._process.stdout
            assert stdout is not None
            line = stdout.readline()
        if not line:
            raise FunctionError(f"node exited with code {self._process.poll()}")
        answer = json.loads(line)
        if "error" in answer:
            raise FunctionError(answer["error"])
        result: dict[str, Any] = answer["result"]
        return result

    def viewer_request(
        self, method: str, path_and_query: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return self.run(viewer_request_event(method, path_and_query, headers))

    def refuses(self, method: str, path_and_query: str, headers: Mapping[str, str] | None = None) -> bool:
        """True when the function answers itself (400, 403 or 405), False when it passes the request on unchanged."""
        result = self.viewer_request(method, path_and_query, headers)
        if "statusCode" in result:
            assert result["statusCode"] in (400, 403, 405), result
            return True
        assert result["uri"] == urlsplit(path_and_query).path or "/", result
        return False

    def close(self) -> None:
        if self._process.poll() is None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
