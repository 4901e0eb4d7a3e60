"""The Label Studio release the stack deploys, the same one the local tests and the demo run.

The image is Label Studio's own, as published on Docker Hub: nothing is built here. At deploy time it is copied by
tag into an ECR repository of the stack's (image.py), and the tasks pull it from there: Docker Hub allows 10
anonymous pulls an hour per IPv4 address, and every task would pull through the one NAT gateway's address. The
tag must stay equal to the ``label-studio`` pin in requirements-label-studio.txt
(tests/stacks/test_label_studio_server.py checks it), so that the deployed server is the one the backend's code is
tested against.
"""

from __future__ import annotations

LABEL_STUDIO_VERSION = "1.23.2"
# https://hub.docker.com/r/heartexlabs/label-studio. Its Dockerfile's ENTRYPOINT (deploy/docker-entrypoint.sh) and
# CMD (label-studio, Django's development server) are not used: the task starts labeling_gate.start instead
# (server.py), which serves with uwsgi on this port, as upstream's label-studio-uwsgi does.
UPSTREAM_IMAGE = f"docker.io/heartexlabs/label-studio:{LABEL_STUDIO_VERSION}"
CONTAINER_PORT = 8080
# Label Studio answers {"status": "UP"} here once Django is up (the health check of its own Helm chart).
HEALTH_CHECK_PATH = "/health"
