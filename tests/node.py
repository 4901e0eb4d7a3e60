"""The major version of the Node.js that runs the CDK CLI and jsii here (no AWS SDK import: conftest reads it
before it sets the AWS environment)."""

from __future__ import annotations

import subprocess


def node_major() -> str:
    """ "18", "20", ... or "" without Node."""
    try:
        done = subprocess.run(
            ["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()
