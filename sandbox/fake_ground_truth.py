"""An in-memory Ground Truth built on botocore's own SageMaker model.

moto implements no labeling-job or workteam API. This fake hooks botocore's `before-call` event, so
every request has first passed botocore's parameter validation (required members, types, minimums).
It then checks what botocore leaves to the service: each field's `pattern`, maximum length, maximum
value and enum from the same model, and the service's own rules: job names unique per account and
region compared case-insensitively and never reusable, the region's built-in Lambda ARNs, readable
S3 inputs (manifest lines with "source-ref", a label category file of 1-50 unique labels), and
the label attribute name rules. Failures come back as the service's error codes.

Tests attach it to a boto3 client (`attach`); the local demo serves it over HTTP on loopback
(`sandbox.ground_truth_endpoint`). Both go through `handle`, so both enforce the same rules.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.model import Shape

from labeling_pipeline.images import split_s3_uri

ACCOUNT = "123456789012"


def _java_pattern_to_python(pattern: str) -> str:
    # The model's patterns are Java regexes; Python's re lacks \p{..} classes. Letters, numbers and
    # separators become \w and \s; marks, symbols and punctuation become \S (any visible character),
    # which is looser than the service but never refuses what it accepts.
    for java, python in ((r"\p{L}", r"\w"), (r"\p{N}", r"\w"), (r"\p{Z}", r"\s")):
        pattern = pattern.replace(java, python)
    return re.sub(r"\\p\{\w+\}", lambda _: r"\S", pattern)


class ModelValidator:
    def __init__(self, service_model: Any) -> None:
        self._model = service_model

    def validate(self, operation: str, params: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        self._check(self._model.operation_model(operation).input_shape, params, operation, errors)
        return errors

    def _check(self, shape: Shape, value: Any, path: str, errors: list[str]) -> None:
        meta = shape.metadata
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                if name in value:
                    self._check(member, value[name], f"{path}.{name}", errors)
        elif shape.type_name == "list":
            if "max" in meta and len(value) > meta["max"]:
                errors.append(f"{path}: at most {meta['max']} items, got {len(value)}")
            for index, item in enumerate(value):
                self._check(shape.member, item, f"{path}[{index}]", errors)
        elif shape.type_name == "string":
            if "max" in meta and len(value) > meta["max"]:
                errors.append(f"{path}: at most {meta['max']} characters, got {len(value)}")
            # No re.S: in the service's (Java) regexes "." does not match a line break.
            if "pattern" in meta and not re.fullmatch(_java_pattern_to_python(meta["pattern"]), value):
                errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
            if "enum" in meta and value not in meta["enum"]:
                errors.append(f"{path}: {value!r} is not one of {meta['enum']}")
        elif shape.type_name in ("integer", "long") and "max" in meta and value > meta["max"]:
            errors.append(f"{path}: at most {meta['max']}, got {value}")


@dataclass
class FakeGroundTruth:
    region: str
    s3_client: Any = None
    refuse_account: bool = False
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fault: Callable[[str, dict[str, Any]], str | None] | None = None
    workforces: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Once a workteam was created through the API (the demo does), jobs must name one of them.
    workteams: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The demo's HTTP endpoint serves calls from several threads.
        self._lock = threading.RLock()
        self._validator = ModelValidator(botocore.session.get_session().get_service_model("sagemaker"))

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.sagemaker", self._before_call)
        return client

    @property
    def created_names(self) -> list[str]:
        """Names of the jobs that the service accepted, in order."""
        return [job["LabelingJobName"] for job in self.jobs.values()]

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        # Parameters here are the serialized request body; for SageMaker's JSON protocol that is
        # the same member names the caller passed.
        request = params["body"] if isinstance(params.get("body"), dict) else json.loads(params["body"] or b"{}")
        status, body = self.handle(model.name, request)
        return AWSResponse("https://api.sagemaker.fake", status, {}, None), {
            **body,
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    def handle(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One SageMaker call: (HTTP status, response body, or {"Error": {"Code", "Message"}})."""
        with self._lock:
            self.calls.append((operation, request))
            if self.fault is not None:
                code = self.fault(operation, request)
                if code:
                    return self._error(code, f"injected {code}", 400 if code != "InternalFailure" else 500)
            handler = getattr(self, f"_op_{operation}", None)
            if handler is None:
                return self._error("UnknownOperationException", f"FakeGroundTruth does not implement {operation}")
            result: tuple[int, dict[str, Any]] = handler(request)
            return result

    def _error(self, code: str, message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
        return status, {"Error": {"Code": code, "Message": message}}

    def _ok(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, body

    # --- operations -------------------------------------------------------------------------
    def _op_CreateLabelingJob(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.refuse_account:
            return self._error(
                "AccessDeniedException",
                "Amazon SageMaker Ground Truth is not available to new customers.",
            )
        errors = self._validator.validate("CreateLabelingJob", request)
        errors += self._service_rules(request)
        if errors:
            return self._error("ValidationException", "; ".join(errors))
        name = request["LabelingJobName"]
        if name.lower() in self.jobs:
            return self._error("ResourceInUse", f"Labeling job {name} already exists")
        arn = f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:labeling-job/{name.lower()}"
        self.jobs[name.lower()] = {
            **request,
            "LabelingJobArn": arn,
            "LabelingJobStatus": "InProgress",
            "CreationTime": datetime.now(UTC),
            "LastModifiedTime": datetime.now(UTC),
            "JobReferenceCode": "fake",
            "LabelCounters": {
                "TotalLabeled": 0,
                "HumanLabeled": 0,
                "MachineLabeled": 0,
                "FailedNonRetryableError": 0,
                "Unlabeled": self._manifest_size(request),
            },
        }
        return self._ok({"LabelingJobArn": arn})

    def _op_DescribeLabelingJob(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(request["LabelingJobName"].lower())
        if job is None:
            return self._error("ResourceNotFound", f"Labeling job {request['LabelingJobName']} not found")
        return self._ok(job)

    def _op_CreateWorkforce(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        errors = self._validator.validate("CreateWorkforce", request)
        if errors:
            return self._error("ValidationException", "; ".join(errors))
        # AWS allows one private workforce per account and region.
        if self.workforces:
            return self._error("ResourceLimitExceeded", "This account already has a private workforce in this region")
        name = request["WorkforceName"]
        arn = f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:workforce/{name}"
        subdomain = f"{name}.labeling.{self.region}.sagemaker.aws"
        self.workforces[name] = {**request, "WorkforceArn": arn, "SubDomain": subdomain}
        return self._ok({"WorkforceArn": arn})

    def _op_DescribeWorkforce(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        workforce = self.workforces.get(request["WorkforceName"])
        if workforce is None:
            return self._error("ValidationException", f"Workforce {request['WorkforceName']} not found")
        return self._ok({"Workforce": workforce})

    def _op_CreateWorkteam(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        errors = self._validator.validate("CreateWorkteam", request)
        if request.get("WorkforceName") and request["WorkforceName"] not in self.workforces:
            errors.append(f"workforce {request['WorkforceName']} does not exist")
        if errors:
            return self._error("ValidationException", "; ".join(errors))
        arn = f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:workteam/private-crowd/{request['WorkteamName']}"
        if arn in self.workteams:
            return self._error("ResourceInUse", f"Workteam {request['WorkteamName']} already exists")
        self.workteams[arn] = {**request, "WorkteamArn": arn}
        return self._ok({"WorkteamArn": arn})

    # --- service rules that the model does not express --------------------------------------
    def _service_rules(self, request: dict[str, Any]) -> list[str]:
        errors = []
        attribute = request["LabelAttributeName"]
        if attribute.endswith(("-metadata", "-ref")):
            errors.append("LabelAttributeName must not end with -metadata or -ref")
        task = request["HumanTaskConfig"]
        for key, suffix in (("PreHumanTaskLambdaArn", "PRE-BoundingBox"),):
            arn = task.get(key, "")
            if f":lambda:{self.region}:" not in arn or not arn.endswith(suffix):
                errors.append(f"{key} {arn} is not this region's built-in {suffix}")
        acs = task.get("AnnotationConsolidationConfig", {}).get("AnnotationConsolidationLambdaArn", "")
        if f":lambda:{self.region}:" not in acs or not acs.endswith("ACS-BoundingBox"):
            errors.append(f"AnnotationConsolidationLambdaArn {acs} does not match PRE-BoundingBox")
        if task["TaskTimeLimitInSeconds"] > 28_800:
            errors.append("TaskTimeLimitInSeconds is above 28800 for an image task")
        if task.get("TaskAvailabilityLifetimeInSeconds", 0) > 30 * 24 * 3600:
            errors.append("TaskAvailabilityLifetimeInSeconds is above 30 days for a private workforce")
        if f":sagemaker:{self.region}:" not in task["WorkteamArn"]:
            errors.append("WorkteamArn is not in this region")
        elif self.workteams and task["WorkteamArn"] not in self.workteams:
            errors.append(f"WorkteamArn {task['WorkteamArn']} does not exist")
        if self.s3_client is not None:
            errors += self._check_inputs(request)
        return errors

    def read(self, uri: str) -> bytes:
        """An s3:// object, read as the service reads its inputs."""
        bucket, key = split_s3_uri(uri)
        return bytes(self.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def input_source_refs(self) -> list[str]:
        """Every source-ref in every accepted job's input manifest, in creation order, repeats kept."""
        with self._lock:  # the demo's endpoint may be creating a job meanwhile
            jobs = list(self.jobs.values())
        return [
            json.loads(line)["source-ref"]
            for job in jobs
            for line in self.read(job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines()
        ]

    def _manifest_size(self, request: dict[str, Any]) -> int:
        if self.s3_client is None:
            return 0
        return len(self.read(request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines())

    def _check_inputs(self, request: dict[str, Any]) -> list[str]:
        errors = []
        try:
            lines = self.read(request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines()
        except Exception as error:
            return [f"cannot read the input manifest: {error}"]
        if not lines or len(lines) > 100_000:
            errors.append(f"the manifest must hold 1 to 100,000 objects, got {len(lines)}")
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                errors.append(f"manifest line {number} is not JSON")
                continue
            if not str(entry.get("source-ref", "")).startswith("s3://"):
                errors.append(f"manifest line {number} has no s3:// source-ref")
        try:
            config = json.loads(self.read(request["LabelCategoryConfigS3Uri"]))
            labels = [entry["label"] for entry in config["labels"]]
            if config.get("document-version") != "2018-11-28":
                errors.append("label category config has the wrong document-version")
            if not 1 <= len(labels) <= 50 or len(set(labels)) != len(labels):
                errors.append("bounding boxes need 1 to 50 unique labels")
        except Exception as error:
            errors.append(f"cannot read the label category config: {error}")
        try:
            template = self.read(request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"]).decode()
            if "crowd-bounding-box" not in template:
                errors.append("the worker template has no crowd-bounding-box element")
        except Exception as error:
            errors.append(f"cannot read the worker template: {error}")
        return errors

    # --- driving a job to its end, as workers and the service would ------------------------
    def finish(self, name: str, status: str, output_lines: list[str] | None = None, reason: str | None = None) -> str:
        """Move a created job to Completed (writing its output manifest), Failed or Stopped."""
        job = self.jobs[name.lower()]
        job["LabelingJobStatus"] = status
        if reason:
            job["FailureReason"] = reason
        if output_lines is not None:
            output_uri = (
                f"{job['OutputConfig']['S3OutputPath']}{job['LabelingJobName']}/manifests/output/output.manifest"
            )
            bucket, key = split_s3_uri(output_uri)
            self.s3_client.put_object(
                Bucket=bucket, Key=key, Body="".join(line + "\n" for line in output_lines).encode()
            )
            job["LabelingJobOutput"] = {"OutputDatasetS3Uri": output_uri}
            job["LabelCounters"] = {**job["LabelCounters"], "TotalLabeled": len(output_lines), "Unlabeled": 0}
        return str(job["LabelingJobArn"])
