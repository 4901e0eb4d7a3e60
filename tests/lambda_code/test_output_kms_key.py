"""labeling.kmsKey on the Lambda side: the launcher's CreateLabelingJob carries OutputConfig.KmsKeyId
(from the OUTPUT_KMS_KEY_ID the stack sets), and the Ground Truth fake checks it against botocore's
model pattern as the service does."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from labeling_pipeline import handler
from labeling_pipeline.backends import JobSpec, PermanentBackendError
from labeling_pipeline.backends.ground_truth import GroundTruthBackend, build_create_labeling_job_request
from labeling_pipeline.images import ImageRef
from sandbox.fake_ground_truth import ACCOUNT
from tests.support import BUCKET, REGION, ROLE_ARN, TABLE, WORKTEAM_ARN, World, make_settings, settings_json

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _environment(world: World, monkeypatch: pytest.MonkeyPatch, key_id: str | None) -> handler.Environment:
    for name, value in {
        "BUCKET_NAME": BUCKET,
        "LEDGER_TABLE_NAME": TABLE,
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        "WORKTEAM_ARN": WORKTEAM_ARN,
        "GROUND_TRUTH_ROLE_ARN": ROLE_ARN,
        "TASK_SETTINGS": settings_json(),
    }.items():
        monkeypatch.setenv(name, value)
    if key_id is None:
        monkeypatch.delenv("OUTPUT_KMS_KEY_ID", raising=False)
    else:
        monkeypatch.setenv("OUTPUT_KMS_KEY_ID", key_id)

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
    # An empty variable (a stack without the option never sets it) means no key either.
    job_request = build_create_labeling_job_request(
        _spec(), region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN, output_kms_key_id=""
    )
    assert "KmsKeyId" not in job_request["OutputConfig"]


@pytest.mark.parametrize("bad_key", ["alias/labeling key", "arn:aws:kms:us-east-1:1:key/x.y", "k" * 2049])
def test_the_fake_refuses_a_key_id_outside_the_model(world: World, bad_key: str) -> None:
    backend = GroundTruthBackend(
        world.sagemaker, region=REGION, workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN, output_kms_key_id=bad_key
    )
    with pytest.raises(PermanentBackendError, match=r"ValidationException.*OutputConfig\.KmsKeyId"):
        backend.create_job(_spec())
    assert world.ground_truth.created_names == []


def _spec() -> JobSpec:
    prefix = f"s3://{BUCKET}/jobs/bbox-20261125-0123456789ab/"
    return JobSpec(
        name="bbox-20261125-0123456789ab",
        manifest_uri=prefix + "input.manifest",
        label_config_uri=prefix + "label-categories.json",
        template_uri=prefix + "worker-template.liquid.html",
        output_uri=f"s3://{BUCKET}/output/",
        image_count=1,
        settings=make_settings(),
    )
