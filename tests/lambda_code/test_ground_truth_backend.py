"""The Ground Truth module: regional ARNs, the request, and how refusals read."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.exceptions import ClientError

from labeling_pipeline.backends import BackendUnavailableError, JobSpec, PermanentBackendError
from labeling_pipeline.backends.ground_truth import (
    BUILT_IN_LAMBDA_ACCOUNTS,
    GroundTruthBackend,
    UnsupportedRegionError,
    build_create_labeling_job_request,
    built_in_lambda_arns,
)
from labeling_pipeline.task_config import label_category_config, worker_template
from sandbox.fake_ground_truth import FakeGroundTruth, ModelValidator
from tests.support import BUCKET, ROLE_ARN, WORKTEAM_ARN, World, make_settings


def _model_arns(member_shape: str, member: str, function: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    text = model.shape_for(member_shape).members[member].documentation
    found = re.findall(rf"arn:aws:lambda:([a-z0-9-]+):(\d{{12}}):function:{function}\b", text)
    return dict(found)


def spec(name: str = "bbox-20261125-0123456789ab", **settings: object) -> JobSpec:
    return JobSpec(
        name=name,
        manifest_uri=f"s3://{BUCKET}/jobs/{name}/input.manifest",
        label_config_uri=f"s3://{BUCKET}/jobs/{name}/label-categories.json",
        template_uri=f"s3://{BUCKET}/jobs/{name}/worker-template.liquid.html",
        output_uri=f"s3://{BUCKET}/output/",
        image_count=3,
        settings=make_settings(**settings),
    )


def test_region_table_matches_botocore_model() -> None:
    pre = _model_arns("HumanTaskConfig", "PreHumanTaskLambdaArn", "PRE-BoundingBox")
    acs = _model_arns("AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn", "ACS-BoundingBox")
    assert len(pre) >= 12
    assert pre == acs == BUILT_IN_LAMBDA_ACCOUNTS


def test_ap_northeast_2_arns() -> None:
    assert built_in_lambda_arns("ap-northeast-2") == (
        "arn:aws:lambda:ap-northeast-2:845288260483:function:PRE-BoundingBox",
        "arn:aws:lambda:ap-northeast-2:845288260483:function:ACS-BoundingBox",
    )


def test_unsupported_region_fails_clearly_and_early() -> None:
    with pytest.raises(UnsupportedRegionError, match=r"not offered in eu-south-2.*us-east-1"):
        GroundTruthBackend(object(), region="eu-south-2", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN)


@pytest.mark.parametrize("region", sorted(BUILT_IN_LAMBDA_ACCOUNTS))
def test_request_passes_the_model_checks_in_every_region(region: str) -> None:
    workteam = WORKTEAM_ARN.replace("us-east-1", region)
    request = build_create_labeling_job_request(spec(), region=region, workteam_arn=workteam, role_arn=ROLE_ARN)
    validator = ModelValidator(botocore.session.get_session().get_service_model("sagemaker"))
    assert validator.validate("CreateLabelingJob", request) == []
    # botocore's own validation (required members, types, minimums) through a real client call:
    client = botocore.session.get_session().create_client("sagemaker", region_name=region)
    fake = FakeGroundTruth(region=region)
    fake.attach(client)
    client.create_labeling_job(**request)
    assert fake.created_names == [request["LabelingJobName"]]


def test_fake_rejects_what_botocore_lets_through() -> None:
    """botocore accepts these; the service (and so the fake) does not."""
    request = build_create_labeling_job_request(
        spec(name="a name with spaces that is far too long " * 3),
        region="us-east-1",
        workteam_arn=WORKTEAM_ARN,
        role_arn=ROLE_ARN,
    )
    request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 99_999_999
    request["OutputConfig"]["S3OutputPath"] = "not-a-uri"
    request["HumanTaskConfig"]["TaskDescription"] = "two\nlines"
    client = botocore.session.get_session().create_client("sagemaker", region_name="us-east-1")
    fake = FakeGroundTruth(region="us-east-1")
    fake.attach(client)
    with pytest.raises(ClientError) as raised:
        client.create_labeling_job(**request)  # botocore's own validation lets it through
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    message = raised.value.response["Error"]["Message"]
    for field in ("LabelingJobName", "S3OutputPath", "TaskDescription", "TaskTimeLimitInSeconds is above 28800"):
        assert field in message
    assert fake.created_names == []


def test_job_names_are_unique_case_insensitively(world: World) -> None:
    backend = GroundTruthBackend(world.sagemaker, region="us-east-1", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN)
    _write_inputs(world, spec())
    backend.create_job(spec())
    backend.create_job(spec())  # same name, same manifest: our own earlier try, a success
    assert world.ground_truth.created_names == ["bbox-20261125-0123456789ab"]
    other = spec(name="BBOX-20261125-0123456789AB")
    _write_inputs(world, other)
    with pytest.raises(PermanentBackendError, match="can never be reused"):
        backend.create_job(other)


def test_refusal_names_the_closure(world: World) -> None:
    world.ground_truth.refuse_account = True
    backend = GroundTruthBackend(world.sagemaker, region="us-east-1", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN)
    with pytest.raises(BackendUnavailableError, match="closed to new AWS customers since 2026-07-30"):
        backend.create_job(spec())


def test_validation_errors_from_the_service_are_permanent(world: World) -> None:
    backend = GroundTruthBackend(world.sagemaker, region="us-east-1", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN)
    # The manifest and label files were never written: the service cannot read its inputs.
    with pytest.raises(PermanentBackendError, match=r"ValidationException.*input manifest"):
        backend.create_job(spec())


def _write_inputs(world: World, job: JobSpec) -> None:
    prefix = f"s3://{BUCKET}/"
    world.s3.put_object(
        Bucket=BUCKET,
        Key=job.manifest_uri.removeprefix(prefix),
        Body=b'{"source-ref": "s3://labeling-bucket-example/images/a.jpg"}\n',
    )
    world.s3.put_object(
        Bucket=BUCKET,
        Key=job.label_config_uri.removeprefix(prefix),
        Body=json.dumps(label_category_config(job.settings.labels)).encode(),
    )
    world.s3.put_object(
        Bucket=BUCKET, Key=job.template_uri.removeprefix(prefix), Body=worker_template(job.settings).encode()
    )
