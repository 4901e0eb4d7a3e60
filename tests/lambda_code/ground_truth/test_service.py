"""The Ground Truth service module: regional ARNs, the request, the task inputs it writes, the states it
maps, the results it reads, and how refusals read."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.exceptions import ClientError

from labeling_pipeline.backends import (
    BackendUnavailableError,
    JobDescription,
    JobRequest,
    PermanentBackendError,
    ResultsNotFound,
)
from labeling_pipeline.backends.ground_truth.service import (
    BUILT_IN_LAMBDA_ACCOUNTS,
    STATES,
    GroundTruthBackend,
    TaskFiles,
    UnsupportedRegionError,
    build_create_labeling_job_request,
    built_in_lambda_arns,
)
from labeling_pipeline.backends.ground_truth.task_inputs import label_category_config, manifest_text, worker_template
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box, ReadStats
from labeling_pipeline.names import JobState
from labeling_pipeline.settings import PipelineSettings
from sandbox.fake_ground_truth import FakeGroundTruth, ModelValidator
from tests.support import BUCKET, REGION, ROLE_ARN, WORKTEAM_ARN, World, make_settings

NAME = "bbox-20261125-0123456789ab"
IMAGES = (ImageRef(BUCKET, "images/b é.jpg", "v2"), ImageRef(BUCKET, "images/a.jpg", "v1"))


def _model_arns(member_shape: str, member: str, function: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    text = model.shape_for(member_shape).members[member].documentation
    found = re.findall(rf"arn:aws:lambda:([a-z0-9-]+):(\d{{12}}):function:{function}\b", text)
    return dict(found)


def files(name: str = NAME) -> TaskFiles:
    return TaskFiles(
        manifest_uri=f"s3://{BUCKET}/jobs/{name}/input.manifest",
        label_config_uri=f"s3://{BUCKET}/jobs/{name}/label-categories.json",
        template_uri=f"s3://{BUCKET}/jobs/{name}/worker-template.liquid.html",
        output_uri=f"s3://{BUCKET}/output/",
    )


def job(name: str = NAME, images: tuple[ImageRef, ...] = IMAGES) -> JobRequest:
    return JobRequest(name=name, images=images, bucket=BUCKET, task_prefix=f"jobs/{name}/", output_prefix="output/")


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
        GroundTruthBackend(
            object(), object(), make_settings(), region="eu-south-2", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
        )


@pytest.mark.parametrize("region", sorted(BUILT_IN_LAMBDA_ACCOUNTS))
def test_request_passes_the_model_checks_in_every_region(region: str) -> None:
    workteam = WORKTEAM_ARN.replace("us-east-1", region)
    request = build_create_labeling_job_request(
        NAME, files(), make_settings(), region=region, workteam_arn=workteam, role_arn=ROLE_ARN
    )
    validator = ModelValidator(botocore.session.get_session().get_service_model("sagemaker"))
    assert validator.validate("CreateLabelingJob", request) == []
    # botocore's own validation (required members, types, minimums) through a real client call:
    client = botocore.session.get_session().create_client("sagemaker", region_name=region)
    fake = FakeGroundTruth(region=region)
    fake.attach(client)
    client.create_labeling_job(**request)
    assert fake.created_names == [request["LabelingJobName"]]


def test_request_carries_the_settings_and_the_task_files() -> None:
    settings = make_settings()
    request = build_create_labeling_job_request(
        NAME, files(), settings, region="us-east-1", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
    )
    assert request == {
        "LabelingJobName": NAME,
        "LabelAttributeName": "labels",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": files().manifest_uri}}},
        "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/output/"},
        "RoleArn": ROLE_ARN,
        "LabelCategoryConfigS3Uri": files().label_config_uri,
        "HumanTaskConfig": {
            "WorkteamArn": WORKTEAM_ARN,
            "UiConfig": {"UiTemplateS3Uri": files().template_uri},
            "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox",
            "TaskKeywords": ["Images", "Bounding Box"],
            "TaskTitle": "Draw a box around each animal",
            "TaskDescription": "Draw tight boxes around dogs and cats.",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 600,
            "TaskAvailabilityLifetimeInSeconds": 864000,
            "MaxConcurrentTaskCount": 1000,
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
            },
        },
        "Tags": [{"Key": "created-by", "Value": "gt-bbox-labeling"}],
    }


def test_a_request_needs_the_ground_truth_settings() -> None:
    """The shared settings alone lack Ground Truth's (keywords, time limits, label attribute)."""
    with pytest.raises(TypeError, match=r"\(labeling\.backend: ground-truth\)$"):
        build_create_labeling_job_request(
            NAME, files(), PipelineSettings(), region="us-east-1", workteam_arn=WORKTEAM_ARN, role_arn=ROLE_ARN
        )


def test_fake_rejects_what_botocore_lets_through() -> None:
    """botocore accepts these; the service (and so the fake) does not."""
    request = build_create_labeling_job_request(
        "a name with spaces that is far too long " * 3,
        files(),
        make_settings(),
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


def test_create_job_writes_the_task_inputs_then_creates_the_job(world: World) -> None:
    settings = make_settings(shortInstructions='Say "hi" <b>')
    input_uri = world.backend(settings).create_job(job())

    assert input_uri == files().manifest_uri
    stored = {}
    for key in ("input.manifest", "label-categories.json", "worker-template.liquid.html"):
        found = world.s3.get_object(Bucket=BUCKET, Key=f"jobs/{NAME}/{key}")
        stored[key] = (found["Body"].read().decode(), found["ContentType"])
    assert stored == {
        "input.manifest": (manifest_text(IMAGES), "application/x-ndjson"),
        "label-categories.json": (
            json.dumps(label_category_config(["Dog", "Cat"]), separators=(",", ":")),
            "application/json",
        ),
        "worker-template.liquid.html": (worker_template(settings), "text/html"),
    }
    # The images in a stable order, whatever the request's.
    assert stored["input.manifest"][0].splitlines() == [
        f'{{"source-ref": "s3://{BUCKET}/images/a.jpg"}}',
        f'{{"source-ref": "s3://{BUCKET}/images/b é.jpg"}}',
    ]
    [created] = world.ground_truth.jobs.values()
    assert created["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] == files().manifest_uri
    assert created["LabelCategoryConfigS3Uri"] == files().label_config_uri
    assert created["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"] == files().template_uri
    assert created["OutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/output/"}


def test_job_names_are_unique_case_insensitively(world: World) -> None:
    backend = world.backend()
    backend.create_job(job())
    backend.create_job(job())  # same name, same manifest: our own earlier try, a success
    assert world.ground_truth.created_names == [NAME]
    with pytest.raises(PermanentBackendError, match="can never be reused"):
        backend.create_job(job(name=NAME.upper()))
    assert world.ground_truth.created_names == [NAME]


def test_refusal_names_the_closure(world: World) -> None:
    world.ground_truth.refuse_account = True
    with pytest.raises(BackendUnavailableError, match="closed to new AWS customers since 2026-07-30"):
        world.backend().create_job(job())


def test_validation_errors_from_the_service_are_permanent(world: World) -> None:
    # A workteam of another region: the service refuses the request as it stands, so no retry can pass.
    backend = GroundTruthBackend(
        world.sagemaker,
        world.s3,
        make_settings(),
        region=REGION,
        workteam_arn=WORKTEAM_ARN.replace(REGION, "eu-west-1"),
        role_arn=ROLE_ARN,
    )
    with pytest.raises(PermanentBackendError, match=r"ValidationException.*WorkteamArn is not in this region"):
        backend.create_job(job())
    # An empty manifest: the service reads its inputs and refuses them.
    with pytest.raises(PermanentBackendError, match=r"ValidationException.*manifest must hold 1 to 100,000"):
        world.backend().create_job(job(images=()))
    assert world.ground_truth.created_names == []


def test_states_cover_every_status_of_the_model() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(STATES) == set(model.shape_for("LabelingJobStatus").enum)
    assert STATES["Initializing"] == JobState.STARTING
    assert all(STATES[status] == JobState(status) for status in set(STATES) - {"Initializing"})


@pytest.mark.parametrize(
    ("status", "state", "ended"),
    [
        ("InProgress", JobState.IN_PROGRESS, False),
        ("Stopping", JobState.STOPPING, False),
        ("Completed", JobState.COMPLETED, True),
        ("Failed", JobState.FAILED, True),
        ("Stopped", JobState.STOPPED, True),
    ],
)
def test_describe_job_maps_the_status_and_counters(world: World, status: str, state: JobState, ended: bool) -> None:
    backend = world.backend()
    backend.create_job(job())
    stored = world.ground_truth.jobs[NAME]
    stored["LabelingJobStatus"] = status
    stored["LabelCounters"] = {**stored["LabelCounters"], "TotalLabeled": 1, "FailedNonRetryableError": 1}
    if status == "Failed":
        stored["FailureReason"] = "Workteam not found"

    described = backend.describe_job(NAME)

    assert described == JobDescription(
        name=NAME,
        state=state,
        backend_status=status,
        results_uri=None,
        failure_reason="Workteam not found" if status == "Failed" else None,
        labeled=1,
        failed_objects=1,
        unlabeled=2,
    )
    assert described.ended is ended


def test_read_results_streams_the_output_manifest(world: World) -> None:
    backend = world.backend()
    backend.create_job(job())
    line = {
        "source-ref": IMAGES[1].source_ref,
        "labels": {
            "annotations": [{"class_id": 1, "left": 10, "top": 20, "width": 30, "height": 40}],
            "image_size": [{"width": 400, "height": 300, "depth": 3}],
        },
        "labels-metadata": {
            "class-map": {"0": "Dog", "1": "Cat"},
            "job-name": f"labeling-job/{NAME}",
            "human-annotated": "yes",
            "objects": [{"confidence": 0.8}],
            "type": "groundtruth/object-detection",
        },
    }
    world.ground_truth.finish(NAME, "Completed", [json.dumps(line)])
    described = backend.describe_job(NAME)
    assert described.results_uri == f"s3://{BUCKET}/output/{NAME}/manifests/output/output.manifest"

    stats = ReadStats()
    [image] = backend.read_results(described, stats)

    assert (image.source_ref, image.width, image.height, image.job_name, image.human_annotated) == (
        IMAGES[1].source_ref,
        400,
        300,
        NAME,
        True,
    )
    assert image.boxes == (Box("Cat", 10, 20, 30, 40, 0.8),)
    assert (stats.lines, stats.images) == (1, 1)


def test_read_results_reads_the_configured_label_attribute(world: World) -> None:
    """A chained job's line holds two attributes: the backend reads the one the settings name."""
    backend = world.backend(make_settings(labelAttributeName="first"))
    backend.create_job(job())

    def attribute(name: str, label: str) -> dict[str, object]:
        return {
            name: {
                "annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}],
                "image_size": [{"width": 10, "height": 10, "depth": 3}],
            },
            f"{name}-metadata": {"class-map": {"0": label}, "type": "groundtruth/object-detection"},
        }

    line = {"source-ref": IMAGES[1].source_ref, **attribute("first", "Dog"), **attribute("second", "Cat")}
    world.ground_truth.finish(NAME, "Completed", [json.dumps(line)])
    [image] = backend.read_results(backend.describe_job(NAME), ReadStats())
    assert [box.label for box in image.boxes] == ["Dog"]


def test_results_not_written_are_not_found(world: World) -> None:
    backend = world.backend()
    backend.create_job(job())
    world.ground_truth.finish(NAME, "Stopped")
    described = backend.describe_job(NAME)
    assert described.results_uri is None
    with pytest.raises(ResultsNotFound, match=f"job {NAME} has no output manifest"):
        backend.read_results(described, ReadStats())
    # The service may name the output location before anything is written there.
    uri = f"s3://{BUCKET}/output/{NAME}/manifests/output/output.manifest"
    world.ground_truth.jobs[NAME]["LabelingJobOutput"] = {"OutputDatasetS3Uri": uri}
    with pytest.raises(ResultsNotFound, match=f"no output manifest at {uri}"):
        backend.read_results(backend.describe_job(NAME), ReadStats())
