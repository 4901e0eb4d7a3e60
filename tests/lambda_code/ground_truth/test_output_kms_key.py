"""labeling.kmsKey on the Lambda side: the launcher's CreateLabelingJob carries OutputConfig.KmsKeyId
(from the backend resources' outputKmsKeyId, which the stack sets), and the Ground Truth fake checks it
against botocore's model pattern as the service does."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from labeling_pipeline import handler
from labeling_pipeline.backends import JobRequest, PermanentBackendError
from labeling_pipeline.backends.ground_truth import Resources
from labeling_pipeline.backends.ground_truth.service import TaskFiles, build_create_labeling_job_request
from labeling_pipeline.images import ImageRef
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import ACCOUNT
from tests.support import BUCKET, REGION, ROLE_ARN, TABLE, WORKTEAM_ARN, World, make_settings, settings_json

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NAME = "bbox-20261125-0123456789ab"


def _environment(world: World, monkeypatch: pytest.MonkeyPatch, key_id: str | None) -> handler.Environment:
    resources = {Resources.WORKTEAM_ARN: WORKTEAM_ARN, Resources.ROLE_ARN: ROLE_ARN}
    if key_id is not None:
        resources[Resources.OUTPUT_KMS_KEY_ID] = key_id
    for name, value in {
        Env.BUCKET_NAME: BUCKET,
        Env.LEDGER_TABLE_NAME: TABLE,
        Env.DEAD_LETTER_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        Env.PIPELINE_SETTINGS: settings_json(),
        Env.BACKEND_RESOURCES: json.dumps(resources),
    }.items():
        monkeypatch.setenv(name, value)

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    return handler.build_environment(make_client)


def _launch_one(world: World, env: handler.Environment) -> dict[str, Any]:
    version = world.upload("images/walk/dog.jpg").get("VersionId") or "v1"
    assert env.launcher is not None
    outcomes = env.launcher.launch([ImageRef(BUCKET, "images/walk/dog.jpg", version)])
    assert all(outcome.ok for outcome in outcomes.values()), outcomes
    [name] = world.ground_truth.created_names
    return world.ground_truth.jobs[name.lower()]


def test_the_stack_key_reaches_create_labeling_job(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _launch_one(world, _environment(world, monkeypatch, KEY_ARN))
    # The fake accepted the request: botocore's validation, then the model's KmsKeyId pattern and length.
    assert job["OutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/output/", "KmsKeyId": KEY_ARN}


def test_without_a_key_the_request_has_no_kms_key_id(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _launch_one(world, _environment(world, monkeypatch, None))
    assert job["OutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/output/"}
    # An empty value (a stack without the option never sets it) means no key either.
    job_request = build_create_labeling_job_request(
        NAME,
        _files(),
        make_settings(),
        region=REGION,
        workteam_arn=WORKTEAM_ARN,
        role_arn=ROLE_ARN,
        output_kms_key_id="",
    )
    assert "KmsKeyId" not in job_request["OutputConfig"]


def test_an_empty_key_in_the_resources_means_no_key(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _launch_one(world, _environment(world, monkeypatch, ""))
    assert job["OutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/output/"}


@pytest.mark.parametrize("bad_key", ["alias/labeling key", "arn:aws:kms:us-east-1:1:key/x.y", "k" * 2049])
def test_the_fake_refuses_a_key_id_outside_the_model(world: World, bad_key: str) -> None:
    backend = world.backend(output_kms_key_id=bad_key)
    request = JobRequest(
        name=NAME,
        images=(ImageRef(BUCKET, "images/walk/dog.jpg", "v1"),),
        bucket=BUCKET,
        task_prefix=f"jobs/{NAME}/",
        output_prefix="output/",
    )
    with pytest.raises(PermanentBackendError, match=r"ValidationException.*OutputConfig\.KmsKeyId"):
        backend.create_job(request)
    assert world.ground_truth.created_names == []


def _files() -> TaskFiles:
    prefix = f"s3://{BUCKET}/jobs/{NAME}/"
    return TaskFiles(
        manifest_uri=prefix + "input.manifest",
        label_config_uri=prefix + "label-categories.json",
        template_uri=prefix + "worker-template.liquid.html",
        output_uri=f"s3://{BUCKET}/output/",
    )
