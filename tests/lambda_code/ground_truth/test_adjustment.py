"""Pre-labels on Ground Truth: bounding-box adjustment jobs (PRE-/ACS-AdjustmentBoundingBox) started from scratch,
the model's boxes under a second label attribute, the plain job beside them for the images shown none, and the
results and report read back. Against moto (S3, DynamoDB, SNS, SQS) and the Ground Truth fake."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import boto3
import botocore.session
import liquid
import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from labeling_pipeline import job_events
from labeling_pipeline.backends import JobRequest, PermanentBackendError, ResultsNotFound, TransientBackendError
from labeling_pipeline.backends.ground_truth import PARTS
from labeling_pipeline.backends.ground_truth.events import parse_job_event
from labeling_pipeline.backends.ground_truth.job_parts import (
    PLAN_FILE,
    UNASSISTED_PART_TAG,
    JobPlan,
    SplitJobDescription,
    combined_status,
    encode_plan,
    pipeline_job_name,
    unassisted_job_name,
)
from labeling_pipeline.backends.ground_truth.results import detect_label_attribute, read_output_manifest
from labeling_pipeline.backends.ground_truth.service import (
    BUILT_IN_LAMBDA_ACCOUNTS,
    TaskFiles,
    build_create_labeling_job_request,
    built_in_lambda_arns,
)
from labeling_pipeline.backends.ground_truth.task_inputs import (
    adjustment_manifest_text,
    adjustment_worker_template,
    manifest_text,
    proposal_label,
    proposals_attribute,
    worker_template,
)
from labeling_pipeline.images import ImageRef
from labeling_pipeline.job_naming import job_name
from labeling_pipeline.labels import Box, ReadStats
from labeling_pipeline.launcher import job_prefix
from labeling_pipeline.names import JobState
from labeling_pipeline.prelabel.proposals import Proposal, encode, proposal_key
from labeling_pipeline.settings import MAX_JOB_NAME_PREFIX
from sandbox.fake_ground_truth import FakeGroundTruth, ModelValidator
from tests.lambda_code.test_handler import FakeContext
from tests.support import (
    BUCKET,
    FIXED_NOW,
    REGION,
    ROLE_ARN,
    WORKTEAM_ARN,
    World,
    job_events_environment,
    job_state_change_event,
    make_settings,
    settings_json,
)

MODEL = "det-v1"
PRELABEL = {"modelUri": "s3://models-123456789012/d.onnx", "classMap": {"0": "Dog", "1": "Cat"}, "modelVersion": MODEL}
ADJUSTMENT_PRE = "arn:aws:lambda:us-east-1:432418664414:function:PRE-AdjustmentBoundingBox"
ADJUSTMENT_ACS = "arn:aws:lambda:us-east-1:432418664414:function:ACS-AdjustmentBoundingBox"
PLAIN_PRE = "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox"


def prelabel_settings(**overrides: Any) -> Any:
    return make_settings(prelabel=PRELABEL, **overrides)


def images(count: int, folder: str = "set") -> list[ImageRef]:
    return [ImageRef(BUCKET, f"images/{folder}/{index:03d}.jpg", f"v{index}") for index in range(count)]


def put_proposal(world: World, proposal: Proposal) -> None:
    world.s3.put_object(Bucket=BUCKET, Key=proposal_key(proposal.model_version, proposal.image), Body=encode(proposal))


def read_text(world: World, key: str) -> str:
    return world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def read_lines(world: World, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_text(world, key).splitlines()]


# The boxes a detector proposed for the first images of a batch: two for image 0, one for image 3.
DOG = Box("Dog", 20.4, 10.0, 100.0, 100.2, 0.9)
CAT = Box("Cat", 300.0, 200.0, 40.0, 40.0, 0.3)
DOG_3 = Box("Dog", 5.0, 5.0, 50.0, 60.0, 0.75)


def mixed_batch(world: World) -> list[ImageRef]:
    """Image 0 and 3 with boxes to show, 1 held out, 2 without a proposals file, 4 with an empty proposal (the
    model saw nothing)."""
    batch = images(5)
    put_proposal(world, Proposal(MODEL, batch[0], 400, 300, (DOG, CAT)))
    put_proposal(world, Proposal(MODEL, batch[1], 400, 300, held_out=True))
    put_proposal(world, Proposal(MODEL, batch[3], 640, 480, (DOG_3,)))
    put_proposal(world, Proposal(MODEL, batch[4], 400, 300))
    return batch


# --- the built-in functions --------------------------------------------------------------------------------


def _model_accounts(member_shape: str, member: str, function: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    text = model.shape_for(member_shape).members[member].documentation
    return dict(re.findall(rf"arn:aws:lambda:([a-z0-9-]+):(\d{{12}}):function:{function}\b", text))


def test_adjustment_functions_are_in_the_same_regions_and_accounts_as_the_bounding_box_ones() -> None:
    pre = _model_accounts("HumanTaskConfig", "PreHumanTaskLambdaArn", "PRE-AdjustmentBoundingBox")
    acs = _model_accounts(
        "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn", "ACS-AdjustmentBoundingBox"
    )
    assert pre == acs == BUILT_IN_LAMBDA_ACCOUNTS
    assert len(pre) == 12
    assert built_in_lambda_arns("ap-northeast-2", adjustment=True) == (
        "arn:aws:lambda:ap-northeast-2:845288260483:function:PRE-AdjustmentBoundingBox",
        "arn:aws:lambda:ap-northeast-2:845288260483:function:ACS-AdjustmentBoundingBox",
    )
    assert built_in_lambda_arns(REGION) == (PLAIN_PRE, PLAIN_PRE.replace("PRE-", "ACS-"))


@pytest.mark.parametrize("region", sorted(BUILT_IN_LAMBDA_ACCOUNTS))
def test_adjustment_request_passes_the_model_checks_in_every_region(region: str) -> None:
    files = TaskFiles(
        manifest_uri=f"s3://{BUCKET}/jobs/x/input.manifest",
        label_config_uri=f"s3://{BUCKET}/jobs/x/label-categories.json",
        template_uri=f"s3://{BUCKET}/jobs/x/worker-template.liquid.html",
        output_uri=f"s3://{BUCKET}/output/",
    )
    request = build_create_labeling_job_request(
        "bbox-20261125-0123456789ab",
        files,
        prelabel_settings(),
        region=region,
        workteam_arn=WORKTEAM_ARN.replace(REGION, region),
        role_arn=ROLE_ARN,
        adjustment=True,
        tags=[(UNASSISTED_PART_TAG, "bbox-20261125u0123456789ab")],
    )
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(":function:PRE-AdjustmentBoundingBox")
    validator = ModelValidator(botocore.session.get_session().get_service_model("sagemaker"))
    assert validator.validate("CreateLabelingJob", request) == []
    client = botocore.session.get_session().create_client("sagemaker", region_name=region)
    fake = FakeGroundTruth(region=region)  # no S3: botocore's validation and the request's own rules only
    fake.attach(client)
    client.create_labeling_job(**request)
    assert fake.created_names == [request["LabelingJobName"]]


def test_the_fake_refuses_functions_of_two_tasks_or_of_another_account() -> None:
    client = botocore.session.get_session().create_client("sagemaker", region_name=REGION)
    FakeGroundTruth(region=REGION).attach(client)
    files = TaskFiles("s3://b/m", "s3://b/l", "s3://b/t", "s3://b/o/")
    request = build_create_labeling_job_request(
        "bbox-20261125-0123456789ab",
        files,
        make_settings(),
        region=REGION,
        workteam_arn=WORKTEAM_ARN,
        role_arn=ROLE_ARN,
    )
    request["HumanTaskConfig"]["PreHumanTaskLambdaArn"] = ADJUSTMENT_PRE
    with pytest.raises(ClientError, match="does not match PRE-AdjustmentBoundingBox"):
        client.create_labeling_job(**request)
    request["HumanTaskConfig"]["PreHumanTaskLambdaArn"] = ADJUSTMENT_PRE.replace("432418664414", "123456789012")
    with pytest.raises(ClientError, match="is not one of this region's built-in"):
        client.create_labeling_job(**request)


# --- the task inputs ---------------------------------------------------------------------------------------


def test_proposals_attribute_keeps_ground_truths_rules_and_differs_from_the_label_attribute() -> None:
    name = proposals_attribute("labels")
    assert name == "labels-proposals" != "labels"
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}", name)
    assert not name.endswith(("-metadata", "-ref"))
    longest = "a" * 117
    assert len(proposals_attribute(longest)) == 127
    prelabel_settings(labelAttributeName=longest)
    with pytest.raises(ValidationError, match="at most 117 characters with prelabel"):
        prelabel_settings(labelAttributeName=longest + "b")
    make_settings(labelAttributeName=longest + "b")  # without pre-labels, the 127 of Ground Truth


def test_a_proposal_is_ground_truths_bounding_box_output() -> None:
    proposal = Proposal(
        MODEL,
        images(1)[0],
        400,
        300,
        (
            Box("Cat", -10.0, 250.4, 60.0, 100.0, 0.123456789),  # spills past the left and bottom edges
            Box("Dog", 20.4, 10.6, 100.2, 50.0, None),
            Box("Bird", 1.0, 1.0, 10.0, 10.0, 0.9),  # not one of the job's labels
            Box("Dog", 10.0, 10.0, 0.3, 10.0, 0.9),  # less than a pixel wide once rounded
            Box("Dog", float("nan"), 1.0, 10.0, 10.0, 0.9),
        ),
    )
    shown = proposal_label(proposal, ["Dog", "Cat"], creation_date="2026-11-25T12:00:00.000000", source="s")
    assert shown is not None
    label, metadata = shown
    assert label == {
        "annotations": [
            {"class_id": 1, "left": 0, "top": 250, "width": 50, "height": 50},
            {"class_id": 0, "left": 20, "top": 11, "width": 101, "height": 50},
        ],
        "image_size": [{"width": 400, "height": 300, "depth": 3}],
    }
    assert metadata == {
        "objects": [{"confidence": 0.123457}, {"confidence": 0.0}],
        "class-map": {"0": "Dog", "1": "Cat"},
        "type": "groundtruth/object-detection",
        "human-annotated": "no",
        "creation-date": "2026-11-25T12:00:00.000000",
        "job-name": "s",
    }
    # Nothing to show: no label at all, never an empty box list.
    assert proposal_label(dataclasses.replace(proposal, boxes=()), ["Dog"], creation_date="", source="") is None
    assert proposal_label(Proposal(MODEL, images(1)[0], 0, 0, (DOG,)), ["Dog"], creation_date="", source="") is None


class _BoundingBox(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: dict[str, str | None] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "crowd-bounding-box":
            self.attributes = dict(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def render(template: str, task_input: dict[str, Any]) -> _BoundingBox:
    """As Ground Truth would: Liquid with its two filters (python-liquid, tests only), then the browser's parse."""
    environment = liquid.Environment()
    environment.filters["grant_read_access"] = lambda uri: "https://signed.example.com/" + uri.removeprefix("s3://")
    environment.filters["to_json"] = json.dumps
    parsed = _BoundingBox()
    parsed.feed(environment.from_string(template).render(task={"input": task_input}))
    return parsed


def test_the_adjustment_template_draws_the_manifest_lines_proposals() -> None:
    settings = make_settings(
        labels=["Dog", 'Cat "tabby" {{ x }}'],
        fullInstructions="Never type {{ task.input.taskObject }} here",
        prelabel={**PRELABEL, "classMap": {"0": "Dog", "1": 'Cat "tabby" {{ x }}'}},
    )
    image = images(1)[0]
    shown = proposal_label(
        Proposal(MODEL, image, 400, 300, (DOG, CAT._replace(label='Cat "tabby" {{ x }}'))),
        settings.labels,
        creation_date="2026-11-25T12:00:00.000000",
        source="prelabel/det-v1",
    )
    assert shown is not None
    attribute = proposals_attribute("labels")
    line = json.loads(adjustment_manifest_text([image], attribute, {image: shown}))
    template = adjustment_worker_template(settings, attribute)

    parsed = render(template, {"manifestLine": line})

    assert parsed.attributes["name"] == "boundingBox"
    assert parsed.attributes["src"] == f"https://signed.example.com/{BUCKET}/{image.key}"
    assert json.loads(parsed.attributes["labels"] or "") == ["Dog", 'Cat "tabby" {{ x }}']
    # Strict JSON, so the element reads it whether it parses JSON or a JavaScript literal.
    assert json.loads(parsed.attributes["initial-value"] or "") == [
        {"label": "Dog", "left": 20, "top": 10, "width": 100, "height": 100},
        {"label": 'Cat "tabby" {{ x }}', "left": 300, "top": 200, "width": 40, "height": 40},
    ]
    assert "Never type {{ task.input.taskObject }} here" in "".join(parsed.text)
    # AWS's documented way to a prior label's boxes (sms-ui-template-crowd-bounding-box.html).
    assert "task.input.manifestLine['labels-proposals'].annotations" in template
    # The task object where the task hands one over; no manifest line: nothing drawn, the image still shown.
    bare = render(template, {"taskObject": image.source_ref})
    assert bare.attributes["src"] == f"https://signed.example.com/{BUCKET}/{image.key}"
    assert json.loads(bare.attributes["initial-value"] or "") == []


# --- the job split -----------------------------------------------------------------------------------------


def test_job_part_names_stay_valid_and_map_back() -> None:
    longest = job_name("p" * MAX_JOB_NAME_PREFIX, FIXED_NOW, images(3))
    for name in (job_name("bbox", FIXED_NOW, images(3)), longest, "a-b-20261125-0123456789ab"):
        sibling = unassisted_job_name(name)
        assert len(sibling) == len(name) <= 63
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", sibling)
        assert sibling.startswith(name.split("-")[0] + "-")  # the stack's job-end rule and grants match it
        assert sibling != name and pipeline_job_name(sibling) == name
        assert pipeline_job_name(name) == name


@pytest.mark.parametrize(
    ("statuses", "combined"),
    [
        (["Completed", "Completed"], "Completed"),
        (["Completed", "InProgress"], "InProgress"),
        (["Initializing", "InProgress"], "Initializing"),
        (["Stopping", "Completed"], "Stopping"),
        (["Completed", "Stopped"], "Stopped"),
        (["Failed", "Stopped"], "Failed"),
        (["Failed", "InProgress"], "InProgress"),
    ],
)
def test_the_status_of_a_job_in_two_parts(statuses: list[str], combined: str) -> None:
    assert combined_status(statuses) == combined


def test_a_mixed_job_is_an_adjustment_job_and_a_plain_job_beside_it(world: World) -> None:
    batch = mixed_batch(world)
    settings = prelabel_settings()
    outcomes = world.launcher(settings).launch(batch)

    [name] = {outcome.job_name for outcome in outcomes.values()}
    assert name is not None and all(outcome.ok for outcome in outcomes.values())
    sibling = unassisted_job_name(name)
    assert world.ground_truth.created_names == [sibling, name]
    prefix = job_prefix(name)

    adjustment = world.ground_truth.jobs[name]
    assert adjustment["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == ADJUSTMENT_PRE
    assert adjustment["HumanTaskConfig"]["AnnotationConsolidationConfig"] == {
        "AnnotationConsolidationLambdaArn": ADJUSTMENT_ACS
    }
    assert adjustment["LabelAttributeName"] == "labels"
    assert {"Key": UNASSISTED_PART_TAG, "Value": sibling} in adjustment["Tags"]
    assert adjustment["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] == (
        f"s3://{BUCKET}/{prefix}input.manifest"
    )
    lines = read_lines(world, f"{prefix}input.manifest")
    assert [line["source-ref"] for line in lines] == [batch[0].source_ref, batch[3].source_ref]
    first = lines[0]
    assert set(first) == {"source-ref", "labels-proposals", "labels-proposals-metadata"}
    assert first["labels-proposals"] == {
        "annotations": [
            {"class_id": 0, "left": 20, "top": 10, "width": 100, "height": 100},
            {"class_id": 1, "left": 300, "top": 200, "width": 40, "height": 40},
        ],
        "image_size": [{"width": 400, "height": 300, "depth": 3}],
    }
    metadata = first["labels-proposals-metadata"]
    assert (metadata["type"], metadata["human-annotated"], metadata["job-name"]) == (
        "groundtruth/object-detection",
        "no",
        "prelabel/det-v1",
    )
    assert metadata["objects"] == [{"confidence": 0.9}, {"confidence": 0.3}]
    assert metadata["class-map"] == {"0": "Dog", "1": "Cat"}
    assert read_text(world, f"{prefix}worker-template.liquid.html") == adjustment_worker_template(
        settings, "labels-proposals"
    )

    plain = world.ground_truth.jobs[sibling]
    assert plain["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == PLAIN_PRE
    assert "labels-proposals" not in read_text(world, f"{prefix}unassisted/input.manifest")
    assert read_text(world, f"{prefix}unassisted/input.manifest") == manifest_text([batch[1], batch[2], batch[4]])
    assert read_text(world, f"{prefix}unassisted/worker-template.liquid.html") == worker_template(settings)
    # One label category file: an adjustment job keeps the labels of the one before.
    assert adjustment["LabelCategoryConfigS3Uri"] == plain["LabelCategoryConfigS3Uri"]
    # Each image in exactly one Ground Truth job.
    assert sorted(world.manifest_sources()) == sorted(image.source_ref for image in batch)
    assert world.ledger.job_created(name)


def test_a_job_whose_images_all_have_proposals_is_one_adjustment_job(world: World) -> None:
    batch = images(2)
    put_proposal(world, Proposal(MODEL, batch[0], 400, 300, (DOG,)))
    put_proposal(world, Proposal(MODEL, batch[1], 400, 300, (CAT,)))
    world.launcher(prelabel_settings()).launch(batch)

    [name] = world.ground_truth.created_names
    job = world.ground_truth.jobs[name]
    assert job["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == ADJUSTMENT_PRE
    assert [tag["Key"] for tag in job["Tags"]] == ["created-by"]
    assert world.ground_truth.objects_without_prior_label[name] == []


@pytest.mark.parametrize("prelabel", [False, True])
def test_a_job_without_proposals_is_the_bounding_box_job_of_today(world: World, prelabel: bool) -> None:
    batch = images(3)
    put_proposal(world, Proposal(MODEL, batch[0], 400, 300, held_out=True))
    settings = prelabel_settings() if prelabel else make_settings()
    world.launcher(settings).launch(batch)

    [name] = world.ground_truth.created_names
    prefix = job_prefix(name)
    job = world.ground_truth.jobs[name]
    assert job["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == PLAIN_PRE
    assert job["Tags"] == [{"Key": "created-by", "Value": "gt-bbox-labeling"}]
    assert read_text(world, prefix + "input.manifest") == manifest_text(batch)
    assert read_text(world, prefix + "worker-template.liquid.html") == worker_template(settings)
    listed = {obj["Key"] for obj in world.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    task_files = {prefix + leaf for leaf in ("candidates.json", "input.manifest", "label-categories.json")}
    task_files.add(prefix + "worker-template.liquid.html")
    # Without pre-labels, not one object more than before; with them, the job's plan.
    assert listed == (task_files | {prefix + PLAN_FILE} if prelabel else task_files)


def test_a_retry_keeps_the_first_tries_split_when_a_proposal_arrives_in_between(world: World) -> None:
    batch = mixed_batch(world)
    throttled = {"left": 1}

    def throttle_the_adjustment_job(operation: str, request: dict[str, Any]) -> str | None:
        pre = request.get("HumanTaskConfig", {}).get("PreHumanTaskLambdaArn", "")
        if operation == "CreateLabelingJob" and pre == ADJUSTMENT_PRE and throttled["left"]:
            throttled["left"] -= 1
            return "ThrottlingException"
        return None

    world.ground_truth.fault = throttle_the_adjustment_job
    first = world.launcher(prelabel_settings()).launch(batch)
    assert all(not outcome.ok and outcome.retryable for outcome in first.values())
    [name] = {outcome.job_name for outcome in first.values()}
    assert name is not None
    assert world.ground_truth.created_names == [unassisted_job_name(name)]
    # The pre-label stage writes image 2's proposals late; the retry must not move it into the adjustment job.
    put_proposal(world, Proposal(MODEL, batch[2], 400, 300, (DOG,)))

    second = world.launcher(prelabel_settings()).launch(batch)

    assert all(outcome.ok for outcome in second.values())
    assert world.ground_truth.created_names == [unassisted_job_name(name), name]
    assert sorted(world.manifest_sources()) == sorted(image.source_ref for image in batch)
    adjusted = read_lines(world, f"{job_prefix(name)}input.manifest")
    assert [line["source-ref"] for line in adjusted] == [batch[0].source_ref, batch[3].source_ref]


def test_a_plan_another_try_wrote_is_followed_and_its_proposals_read(world: World) -> None:
    """Another launcher planned the job after reading a proposals file this one never saw: this one follows the
    plan and reads that file itself, so both write the same manifest."""
    batch = images(2)
    late = Proposal(MODEL, batch[1], 400, 300, (CAT,))
    put_proposal(world, late)
    name = "bbox-20261125-0123456789ab"
    created_at = "2026-11-25T11:59:00.000000"
    world.s3.put_object(
        Bucket=BUCKET, Key=job_prefix(name) + PLAN_FILE, Body=encode_plan(JobPlan(MODEL, created_at, (batch[1],)))
    )
    request = JobRequest(name, tuple(batch), BUCKET, job_prefix(name), "output/", proposals={})

    world.backend(prelabel_settings()).create_job(request)

    assert world.ground_truth.created_names == [unassisted_job_name(name), name]
    [line] = read_lines(world, job_prefix(name) + "input.manifest")
    assert line["source-ref"] == batch[1].source_ref
    assert line["labels-proposals-metadata"]["creation-date"] == created_at


def test_a_planned_image_whose_proposals_are_gone_is_a_permanent_error(world: World) -> None:
    batch = images(1)
    name = "bbox-20261125-0123456789ab"
    plan = JobPlan(MODEL, "2026-11-25T11:59:00.000000", (batch[0],))
    world.s3.put_object(Bucket=BUCKET, Key=job_prefix(name) + PLAN_FILE, Body=encode_plan(plan))
    with pytest.raises(PermanentBackendError, match="has none to show now"):
        world.backend(prelabel_settings()).create_job(JobRequest(name, tuple(batch), BUCKET, job_prefix(name), "o/"))
    assert world.ground_truth.created_names == []


def test_a_job_started_plain_before_its_plan_is_not_started_again_as_another_task(world: World) -> None:
    batch = images(2)
    name = "bbox-20261125-0123456789ab"
    request = JobRequest(name, tuple(batch), BUCKET, job_prefix(name), "output/")
    world.backend().create_job(request)  # before pre-labels: a plain job
    proposals = {image: Proposal(MODEL, image, 400, 300, (DOG,)) for image in batch}
    with pytest.raises(PermanentBackendError, match="already exists as a PRE-BoundingBox job"):
        world.backend(prelabel_settings()).create_job(
            JobRequest(name, tuple(batch), BUCKET, job_prefix(name), "output/", proposals=proposals)
        )


def test_a_plan_being_written_by_another_try_is_retried(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = world.backend(prelabel_settings())
    conflict = ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "busy"}}, "PutObject")

    def put_object(**kwargs: Any) -> None:
        raise conflict

    monkeypatch.setattr(world.s3, "put_object", put_object)
    with pytest.raises(TransientBackendError, match="being written by another try"):
        backend.create_job(JobRequest("bbox-20261125-0123456789ab", tuple(images(1)), BUCKET, "jobs/x/", "o/"))


# --- the fake's adjustment rules ---------------------------------------------------------------------------


def adjustment_request(world: World, lines: list[dict[str, Any]], *, attribute: str = "labels") -> dict[str, Any]:
    """An adjustment job's request over task files written as given."""
    prefix = "jobs/handmade/"
    world.s3.put_object(Bucket=BUCKET, Key=prefix + "input.manifest", Body="".join(json.dumps(x) + "\n" for x in lines))
    world.s3.put_object(
        Bucket=BUCKET,
        Key=prefix + "label-categories.json",
        Body=json.dumps({"document-version": "2018-11-28", "labels": [{"label": "Dog"}, {"label": "Cat"}]}),
    )
    template = adjustment_worker_template(prelabel_settings(), "labels-proposals")
    world.s3.put_object(Bucket=BUCKET, Key=prefix + "worker-template.liquid.html", Body=template)
    files = TaskFiles(
        f"s3://{BUCKET}/{prefix}input.manifest",
        f"s3://{BUCKET}/{prefix}label-categories.json",
        f"s3://{BUCKET}/{prefix}worker-template.liquid.html",
        f"s3://{BUCKET}/output/",
    )
    return build_create_labeling_job_request(
        "handmade",
        files,
        prelabel_settings(labelAttributeName=attribute),
        region=REGION,
        workteam_arn=WORKTEAM_ARN,
        role_arn=ROLE_ARN,
        adjustment=True,
    )


def proposal_line(image: ImageRef, boxes: tuple[Box, ...] = (DOG,), attribute: str = "labels-proposals") -> dict:
    shown = proposal_label(Proposal(MODEL, image, 400, 300, boxes), ["Dog", "Cat"], creation_date="d", source="s")
    assert shown is not None
    return {"source-ref": image.source_ref, attribute: shown[0], f"{attribute}-metadata": shown[1]}


def create(world: World, request: dict[str, Any]) -> str:
    try:
        world.sagemaker.create_labeling_job(**request)
    except ClientError as error:
        return str(error.response["Error"]["Message"])
    return "created"


def test_the_fake_checks_the_prior_label_as_the_guide_describes_it(world: World) -> None:
    image = images(1)[0]
    good = proposal_line(image)
    # The job's own attribute must not be the one adjusted.
    assert "must differ from the label attribute" in create(
        world, adjustment_request(world, [good], attribute="labels-proposals")
    )
    # Ground Truth's box format: whole pixels, a class-map of the label category file's labels.
    moved = json.loads(json.dumps(good))
    moved["labels-proposals"]["annotations"][0]["left"] = 20.5
    assert "must be whole pixels" in create(world, adjustment_request(world, [moved]))
    renamed = json.loads(json.dumps(good))
    renamed["labels-proposals-metadata"]["class-map"] = {"0": "Bird"}
    assert "class-map must name labels" in create(world, adjustment_request(world, [renamed]))
    # An empty prior label is not documented either way: refused unless a test accepts it.
    empty = json.loads(json.dumps(good))
    empty["labels-proposals"]["annotations"] = []
    empty["labels-proposals-metadata"]["objects"] = []
    assert "has no box (not documented to be accepted)" in create(world, adjustment_request(world, [empty]))
    world.ground_truth.accept_empty_prior_labels = True
    assert create(world, adjustment_request(world, [empty])) == "created"
    assert world.ground_truth.created_names == ["handmade"]


def test_the_fake_refuses_an_adjustment_template_that_shows_no_prior_boxes(world: World) -> None:
    request = adjustment_request(world, [proposal_line(images(1)[0])])
    world.s3.put_object(
        Bucket=BUCKET, Key="jobs/handmade/worker-template.liquid.html", Body=worker_template(make_settings())
    )
    assert "shows no prior boxes" in create(world, request)


def test_a_line_without_the_prior_label_fails_on_its_own(world: World) -> None:
    first, second = images(2)
    assert create(world, adjustment_request(world, [proposal_line(first), {"source-ref": second.source_ref}])) == (
        "created"
    )
    assert world.ground_truth.objects_without_prior_label["handmade"] == [second.source_ref]
    lines = [json.loads(line) for line in world.ground_truth.adjustment_output("handmade")]
    assert lines[0]["labels-metadata"]["adjustment-status"] == "unadjusted"
    assert lines[1]["labels-metadata"]["failure-reason"] == "ClientError: no 'labels-proposals' label to adjust"
    assert [image.failed for image in read_output_manifest(map(json.dumps, lines))] == [False, True]


# --- results and the job end -------------------------------------------------------------------------------


def test_adjustment_output_reads_back_into_boxes_with_their_origin(world: World) -> None:
    batch = images(2)
    put_proposal(world, Proposal(MODEL, batch[0], 400, 300, (DOG, CAT)))
    put_proposal(world, Proposal(MODEL, batch[1], 640, 480, (DOG_3,)))
    settings = prelabel_settings()
    world.launcher(settings).launch(batch)
    [name] = world.ground_truth.created_names
    answer = [{"label": "Cat", "left": 30, "top": 12, "width": 100, "height": 100}]
    lines = world.ground_truth.adjustment_output(name, {batch[0].source_ref: answer})
    world.ground_truth.finish(name, "Completed", lines)
    backend = world.backend(settings)

    stats = ReadStats()
    adjusted, unadjusted = backend.read_results(backend.describe_job(name), stats)

    # Image 0: a worker changed the proposals; nothing says which box came from which, so no origin.
    assert adjusted.boxes == (Box("Cat", 30, 12, 100, 100, 0.0),)
    assert (adjusted.human_annotated, adjusted.job_name, adjusted.seconds) == (True, name, None)
    # Image 1: left as proposed (adjustment-status "unadjusted"): the proposal itself, whole pixels.
    assert unadjusted.boxes == (Box("Dog", 5, 5, 50, 60, 0.0, origin="prediction"),)
    assert (stats.lines, stats.images, stats.failed) == (2, 2, [])
    # A results file read without naming the attribute: the job's own label, not the proposals beside it.
    line = json.loads(lines[0])
    assert detect_label_attribute(line) == "labels"
    failed = {**line, "labels-metadata": {"failure-reason": "expired"}}
    del failed["labels"]
    assert detect_label_attribute(failed) == "labels"
    [read] = PARTS.read_results_file([json.dumps(failed)], None, None, None)
    assert read.failure_reason == "expired"


def test_a_job_in_two_parts_is_described_and_read_as_one(world: World) -> None:
    batch = mixed_batch(world)
    settings = prelabel_settings()
    world.launcher(settings).launch(batch)
    name = next(name for name in world.ground_truth.created_names if pipeline_job_name(name) == name)
    sibling = unassisted_job_name(name)
    backend = world.backend(settings)

    running = backend.describe_job(name)
    assert isinstance(running, SplitJobDescription)
    assert (running.state, running.backend_status, running.unlabeled) == (JobState.IN_PROGRESS, "InProgress", 5)

    world.ground_truth.finish(name, "Completed", world.ground_truth.adjustment_output(name))
    half = backend.describe_job(name)
    assert (half.state, half.ended, half.labeled) == (JobState.IN_PROGRESS, False, 2)

    # The plain part stops before anything was written: the job has ended, stopped, with the adjustment part's
    # results readable and the plain part's images left to relabel.
    world.ground_truth.finish(sibling, "Stopped", reason="stopped by the operator")
    stopped = backend.describe_job(name)
    assert (stopped.state, stopped.ended, stopped.failure_reason) == (
        JobState.STOPPED,
        True,
        f"{sibling}: stopped by the operator",
    )
    assert [image.source_ref for image in backend.read_results(stopped, ReadStats())] == [
        batch[0].source_ref,
        batch[3].source_ref,
    ]
    # A completed job waits for every part's results.
    world.ground_truth.jobs[sibling]["LabelingJobStatus"] = "Completed"
    with pytest.raises(ResultsNotFound, match=f"job {sibling} has no output manifest"):
        backend.read_results(backend.describe_job(name), ReadStats())


@pytest.fixture
def job_end(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The job-events function with pre-labels on, against the world's moto and fake."""
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="labeling-results")["TopicArn"]
    for name, value in job_events_environment(topic_arn).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIPELINE_SETTINGS", settings_json(prelabel=PRELABEL))

    def make_client(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        return world.ground_truth.attach(client) if service == "sagemaker" else client

    job_events._finisher, job_events._backend = job_events.build_finisher(make_client)
    yield world
    job_events._finisher = job_events._backend = None


def test_the_job_end_exports_both_parts_and_reports_on_the_proposals(job_end: World) -> None:
    world = job_end
    batch = mixed_batch(world)
    world.launcher(prelabel_settings()).launch(batch)
    name = next(name for name in world.ground_truth.created_names if pipeline_job_name(name) == name)
    sibling = unassisted_job_name(name)
    # Image 0: the dog kept but moved 30 px, the cat deleted, a cat added; image 3 left as proposed.
    answer = [
        {"label": "Dog", "left": 50, "top": 10, "width": 100, "height": 100},
        {"label": "Cat", "left": 200, "top": 20, "width": 50, "height": 50},
    ]
    world.ground_truth.finish(
        name, "Completed", world.ground_truth.adjustment_output(name, {batch[0].source_ref: answer})
    )
    assert dict(job_events.lambda_handler(job_state_change_event(name, "Completed"), FakeContext())) == {
        "action": "not-terminal",
        "job": name,
    }
    plain_lines = [
        json.dumps(
            {
                "source-ref": image.source_ref,
                "labels": {
                    "annotations": [{"class_id": 1, "left": 1, "top": 1, "width": 10, "height": 10}],
                    "image_size": [{"width": 400, "height": 300, "depth": 3}],
                },
                "labels-metadata": {
                    "class-map": {"1": "Cat"},
                    "type": "groundtruth/object-detection",
                    "human-annotated": "yes",
                    "job-name": f"labeling-job/{sibling}",
                    "objects": [{"confidence": 0.0}],
                    "creation-date": datetime.now(UTC).isoformat(),
                },
            }
        )
        for image in (batch[1], batch[2], batch[4])
    ]
    world.ground_truth.finish(sibling, "Completed", plain_lines)

    # The plain part's event names the plain job: it finishes the pipeline job.
    assert parse_job_event(job_state_change_event(sibling)).job_name == name
    answer_to_plain_event = job_events.lambda_handler(job_state_change_event(sibling, "Completed"), FakeContext())
    assert dict(answer_to_plain_event) == {"action": "exported", "job": name}

    prefix = f"exports/{name}/"
    summary = json.loads(read_text(world, prefix + "summary.json"))
    assert (summary["status"], summary["images"], summary["imagesMissingFromOutput"]) == ("Completed", 5, 0)
    report = json.loads(read_text(world, prefix + "prelabel-report.json"))
    assert report["images"] == {"images": 5, "proposed": 3, "heldOut": 1, "withoutProposals": 1, "unanswered": 0}
    # Proposed: image 0's two, image 3's one (image 4's proposal had no box).
    assert report["boxes"] == {"proposed": 3, "accepted": 1, "moved": 1, "relabeled": 0, "deleted": 1, "added": 2,
                               "final": 4}  # fmt: skip
    by_image = {entry["image"]: entry for entry in report["perImage"]}
    assert by_image[batch[3].source_ref]["finals"] == [
        {"label": "Dog", "bbox": [5.0, 5.0, 50.0, 60.0], "score": 0.0, "origin": "prediction"}
    ]
    # Ground Truth reports no time per image.
    assert report["secondsPerImage"]["timedWith"] == report["secondsPerImage"]["timedWithout"] == 0
