"""The administrator's credentials follow the secrets: every start applies their current values to a database
that already has the user (a rotation, or a database restored under a new stack), and `rotate-credentials`
rotates both in one command, against a real Label Studio restarted on the same database, with moto's Secrets
Manager and ECS standing in for AWS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from labeling_pipeline.backends.label_studio import Resources, api
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioRefused
from labeling_pipeline.backends.label_studio.rotation import (
    ADMIN_PASSWORD_SECRET_OUTPUT,
    CLUSTER_OUTPUT,
    SERVICE_OUTPUT,
    RotationError,
    rotate_credentials,
)
from sandbox.emulator import MotoServer, free_port
from sandbox.label_studio_server import ADMIN_EMAIL, LabelStudioServer
from sandbox.simulated_annotators import signs_in

REGION = "us-east-1"
FIRST_TOKEN = "1111111111aaaaaaaaaa1111111111aaaaaaaaaa"
FIRST_PASSWORD = "First-password-for-tests-1"


def token_works(url: str, token: str) -> bool:
    answer = requests.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=30)
    return answer.status_code == 200 and answer.json()["email"] == ADMIN_EMAIL


# One uwsgi worker: these servers answer a few requests each, and start several times.
ONE_WORKER = {"UWSGI_PROCESSES": "1", "UWSGI_NUMBER_OF_THREADS": "2"}


def server(data_dir: Path, port: int, token: str, password: str) -> LabelStudioServer:
    return LabelStudioServer(data_dir, port=port, token=token, admin_password=password, extra_environment=ONE_WORKER)


def test_every_start_applies_the_secrets_current_values(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "label-studio", free_port()
    with server(data_dir, port, FIRST_TOKEN, FIRST_PASSWORD) as first:
        assert token_works(first.url, FIRST_TOKEN) and signs_in(first.url, ADMIN_EMAIL, FIRST_PASSWORD)
        # What a worker made before the rotation keeps working through it.
        workers = LabelStudioApi(first.url, FIRST_TOKEN)
        workers.request("POST", "/labeling/api/workers/", body={"email": "keeps@example.com"})
    second_token, second_password = "2222222222bbbbbbbbbb2222222222bbbbbbbbbb", "Second-password-for-tests-2"
    with server(data_dir, port, second_token, second_password) as second:
        assert token_works(second.url, second_token) and not token_works(second.url, FIRST_TOKEN)
        assert signs_in(second.url, ADMIN_EMAIL, second_password)
        assert not signs_in(second.url, ADMIN_EMAIL, FIRST_PASSWORD)
        assert "keeps@example.com" in str(
            LabelStudioApi(second.url, second_token).request("GET", "/labeling/api/workers/")
        )
    log = (data_dir / "label-studio.log").read_text()
    assert "administrator admin@example.com: created" in log
    assert "administrator admin@example.com: password, token applied" in log
    # A start with unchanged secrets writes nothing.
    with server(data_dir, port, second_token, second_password) as third:
        assert token_works(third.url, second_token)
    assert (data_dir / "label-studio.log").read_text().rstrip().count("administrator admin@example.com: in step") == 1


class EcsDeployments:
    """What ECS does on `UpdateService --force-new-deployment` for this test: a new task starts with the secrets'
    current values (ECS reads them at task start), here the same Label Studio restarted on the same database."""

    def __init__(self, moto: MotoServer, data_dir: Path, port: int, resources: dict[str, str]) -> None:
        self.moto, self.data_dir, self.port, self.resources = moto, data_dir, port, resources
        self.running: LabelStudioServer | None = None
        self.deployments = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.moto.url)

    def _secret(self, arn: str) -> str:
        return str(self.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])

    def start_task(self) -> None:
        if self.running is not None:
            self.running.stop()
        token = self._secret(self.resources[Resources.API_TOKEN_SECRET_ARN])
        password = self._secret(self.resources[ADMIN_PASSWORD_SECRET_OUTPUT])
        self.running = server(self.data_dir, self.port, token, password).__enter__()

    def _deployment_id(self) -> str:
        (service,) = self.client("ecs").describe_services(
            cluster=self.resources[CLUSTER_OUTPUT], services=[self.resources[SERVICE_OUTPUT]]
        )["services"]
        return str(service["deployments"][0]["id"])

    def _watch(self) -> None:
        seen = self._deployment_id()
        while not self._stop.wait(0.2):
            current = self._deployment_id()
            if current != seen:
                seen = current
                self.deployments += 1
                self.start_task()

    def fail_every_deployment(self) -> None:
        """From now on a new deployment starts no task (as when its tasks never get healthy)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> EcsDeployments:
        self.start_task()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.running is not None:
            self.running.stop()


@pytest.fixture
def deployment(moto_s3_server: MotoServer, tmp_path: Path) -> Iterator[EcsDeployments]:
    secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_s3_server.url)
    suffix = tmp_path.name
    token_arn = secrets.create_secret(Name=f"{suffix}/token", SecretString=FIRST_TOKEN)["ARN"]
    password_arn = secrets.create_secret(Name=f"{suffix}/admin", SecretString=FIRST_PASSWORD)["ARN"]
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=moto_s3_server.url)
    cluster = ecs.create_cluster(clusterName=f"ls-{suffix}")["cluster"]["clusterName"]
    ecs.register_task_definition(
        family=f"ls-{suffix}", containerDefinitions=[{"name": "label-studio", "image": "label-studio", "memory": 2048}]
    )
    service = ecs.create_service(
        cluster=cluster, serviceName="label-studio", taskDefinition=f"ls-{suffix}", desiredCount=1
    )["service"]["serviceName"]
    port = free_port()
    resources = {
        Resources.URL: f"http://127.0.0.1:{port}",
        Resources.API_TOKEN_SECRET_ARN: token_arn,
        ADMIN_PASSWORD_SECRET_OUTPUT: password_arn,
        CLUSTER_OUTPUT: cluster,
        SERVICE_OUTPUT: service,
    }
    with EcsDeployments(moto_s3_server, tmp_path / "label-studio", port, resources) as running:
        yield running


def test_rotate_credentials_in_one_command(deployment: EcsDeployments) -> None:
    resources, url = deployment.resources, deployment.resources[Resources.URL]

    def make_client(service: str, **options: Any) -> Any:
        return boto3.client(service, **{"region_name": REGION, **options, "endpoint_url": deployment.moto.url})

    # A warm function of the pipeline, holding the token it read before the rotation.
    warm = api(resources, make_client, REGION)
    assert warm.current_user()["email"] == ADMIN_EMAIL
    lines = rotate_credentials(resources, make_client, REGION, poll_seconds=0.5)
    assert lines[-1].startswith("Done: Label Studio takes the new token and refuses the old one")
    assert deployment.deployments == 1
    new_token = make_client("secretsmanager").get_secret_value(SecretId=resources[Resources.API_TOKEN_SECRET_ARN])
    new_password = make_client("secretsmanager").get_secret_value(SecretId=resources[ADMIN_PASSWORD_SECRET_OUTPUT])
    assert len(new_token["SecretString"]) == 40 and new_token["SecretString"] != FIRST_TOKEN
    assert token_works(url, new_token["SecretString"]) and not token_works(url, FIRST_TOKEN)
    assert signs_in(url, ADMIN_EMAIL, new_password["SecretString"]) and not signs_in(url, ADMIN_EMAIL, FIRST_PASSWORD)
    # The warm function is refused once, reads the secret again, and goes on.
    assert warm.current_user()["email"] == ADMIN_EMAIL
    # Without a refresh, the old token is simply refused.
    with pytest.raises(LabelStudioRefused):
        LabelStudioApi(url, FIRST_TOKEN).current_user()


def test_rotation_says_what_is_wrong_when_the_service_never_takes_the_new_values(deployment: EcsDeployments) -> None:
    def make_client(service: str, **options: Any) -> Any:
        return boto3.client(service, **{"region_name": REGION, **options, "endpoint_url": deployment.moto.url})

    deployment.fail_every_deployment()
    minutes = iter(range(0, 10_000, 60))
    with pytest.raises(RotationError, match="did not take the new token within 30 minutes"):
        rotate_credentials(
            deployment.resources, make_client, REGION, sleep=lambda _s: None, clock=lambda: float(next(minutes))
        )
    # The old token still works: nothing is half done in Label Studio.
    assert token_works(deployment.resources[Resources.URL], FIRST_TOKEN)


def test_a_stack_with_an_existing_server_has_nothing_to_rotate() -> None:
    with pytest.raises(RotationError, match="rotate the token in that Label Studio"):
        rotate_credentials({Resources.URL: "https://labels.example.com"}, boto3.client, REGION)
