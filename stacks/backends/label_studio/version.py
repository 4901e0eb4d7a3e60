"""The Label Studio release the stack deploys, the same one the local tests and the demo run.

The container image is Label Studio's own on Docker Hub, by tag (no image is built here). The tag must stay equal to
the ``label-studio`` pin in requirements-label-studio.txt (tests/stacks/test_label_studio_server.py checks it), so
that the deployed server is the one the backend's code is tested against.
"""

from __future__ import annotations

LABEL_STUDIO_VERSION = "1.23.2"
# https://hub.docker.com/r/heartexlabs/label-studio (Label Studio's Dockerfile: port 8080, ENTRYPOINT
# deploy/docker-entrypoint.sh, CMD label-studio, data under /label-studio/data).
IMAGE = f"heartexlabs/label-studio:{LABEL_STUDIO_VERSION}"
CONTAINER_PORT = 8080
# Label Studio answers {"status": "UP"} here once Django is up (the health check of its own Helm chart).
HEALTH_CHECK_PATH = "/health"
