"""An in-memory Ground Truth built on botocore's own SageMaker model.

moto implements no labeling-job or workteam API. This fake hooks botocore's `before-call` event, so
every request has first passed botocore's parameter validation (required members, types, minimums).
It then checks what botocore leaves to the service: each field's `pattern`, maximum length, maximum
value and enum from the same model, and the service's own rules: job names unique per account and
region compared case-insensitively and never reusable, the region's built-in Lambda ARNs (read from
the same model's documentation, a PRE- and ACS- function of one task), readable S3 inputs (manifest
lines with "source-ref", a label category file of 1-50 unique labels), and the label attribute name
rules. Failures come back as the service's error codes.

Bounding-box adjustment jobs (PRE-/ACS-AdjustmentBoundingBox), as AWS documents them
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-verify-start-api.html,
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-verify-adjust-prereq.html): the prior boxes are
a second label attribute of each manifest line, in Ground Truth's bounding-box output format
(sms-data-output.html), under a name other than the job's LabelAttributeName and that follows its
rules, with labels from the job's label category file; the worker template shows them through
crowd-bounding-box's initial-value from task.input.manifestLine. A line without a prior label is not
refused: such an object fails on its own, as the guide says, and `adjustment_output` writes it as
failed. A prior label with no box is refused unless `accept_empty_prior_labels`: whether the service
takes one is not documented, and the pipeline never sends one. `adjustment_output` writes a finished
adjustment job's lines as sms-data-output.html shows them (the prior label kept, the job's own beside
it with adjustment-status).

Several workers per image: `worker_output` writes each image's worker-response file (every worker's own boxes, under
``annotations/worker-response/iteration-<n>/<dataset object id>/``) and returns the consolidated output lines, so that
a test controls exactly where the workers disagree.

Tests attach it to a boto3 client (`attach`); the local demo serves it over HTTP on loopback
(`sandbox.ground_truth_endpoint`). Both go through `handle`, so both enforce the same rules.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.model import Shape

from labeling_pipeline.images import split_s3_uri
from sandbox.emulator import ACCOUNT

OBJECT_DETECTION = "groundtruth/object-detection"
# The built-in tasks the fake knows, by the suffix of their PRE-/ACS- function names.
BOUNDING_BOX = "BoundingBox"
ADJUSTMENT_BOUNDING_BOX = "AdjustmentBoundingBox"
TASKS = (BOUNDING_BOX, ADJUSTMENT_BOUNDING_BOX)
LABEL_ATTRIBUTE_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")


def built_in_lambda_arns(service_model: Any) -> set[str]:
    """Every built-in PRE- and ACS- function ARN that the model's documentation lists."""
    found: set[str] = set()
    for shape, member in (
        ("HumanTaskConfig", "PreHumanTaskLambdaArn"),
        ("AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn"),
    ):
        text = service_model.shape_for(shape).members[member].documentation
        found.update(re.findall(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9-]+", text))
    return found


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
    # Undocumented either way (see the module's docstring): refused unless a test says otherwise.
    accept_empty_prior_labels: bool = False
    # Per adjustment job (lower-case name): the prior label attribute its template shows, and the source-refs of
    # its lines without one (they fail on their own).
    prior_attributes: dict[str, str] = field(default_factory=dict)
    objects_without_prior_label: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The demo's HTTP endpoint serves calls from several threads.
        self._lock = threading.RLock()
        model = botocore.session.get_session().get_service_model("sagemaker")
        self._validator = ModelValidator(model)
        self._built_in_arns = built_in_lambda_arns(model)

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
        if self._task(request) == ADJUSTMENT_BOUNDING_BOX and self.s3_client is not None:
            prior, without = self._prior_label(request)
            self.prior_attributes[name.lower()] = prior
            self.objects_without_prior_label[name.lower()] = without
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
        pre = task.get("PreHumanTaskLambdaArn", "")
        acs = task.get("AnnotationConsolidationConfig", {}).get("AnnotationConsolidationLambdaArn", "")
        if self._task(request) is None or f":lambda:{self.region}:" not in pre or pre not in self._built_in_arns:
            errors.append(f"PreHumanTaskLambdaArn {pre} is not one of this region's built-in {' or '.join(TASKS)}")
        elif acs != pre.replace(":function:PRE-", ":function:ACS-"):
            errors.append(f"AnnotationConsolidationLambdaArn {acs} does not match {pre.rsplit(':', 1)[-1]}")
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
            template = ""
        if self._task(request) == ADJUSTMENT_BOUNDING_BOX and not errors:
            errors += self._check_adjustment(request, lines, template)
        return errors

    # --- adjustment jobs ------------------------------------------------------------------------
    @staticmethod
    def _task(request: dict[str, Any]) -> str | None:
        function = request["HumanTaskConfig"].get("PreHumanTaskLambdaArn", "").rsplit(":function:PRE-", 1)[-1]
        return function if function in TASKS else None

    @staticmethod
    def _prior_attributes(entry: dict[str, Any]) -> list[str]:
        """The bounding-box labels a manifest line already holds: attributes whose metadata says object
        detection."""
        return [
            key.removesuffix("-metadata")
            for key, value in entry.items()
            if key.endswith("-metadata") and isinstance(value, dict) and value.get("type") == OBJECT_DETECTION
        ]

    def _prior_label(self, request: dict[str, Any]) -> tuple[str, list[str]]:
        """(the prior label attribute the template shows, the source-refs of the lines without it)."""
        lines = self.read(request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines()
        template = self.read(request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"]).decode()
        entries = [json.loads(line) for line in lines]
        names = sorted({name for entry in entries for name in self._prior_attributes(entry)})
        shown = [name for name in names if f"manifestLine['{name}']" in template or f"manifestLine.{name}." in template]
        prior = shown[0] if shown else ""
        return prior, [entry["source-ref"] for entry in entries if prior not in self._prior_attributes(entry)]

    def _check_adjustment(self, request: dict[str, Any], lines: list[bytes], template: str) -> list[str]:
        errors: list[str] = []
        own = request["LabelAttributeName"]
        config = json.loads(self.read(request["LabelCategoryConfigS3Uri"]))
        labels = [entry["label"] for entry in config["labels"]]
        names: set[str] = set()
        for number, line in enumerate(lines, 1):
            entry = json.loads(line)
            for name in self._prior_attributes(entry):
                names.add(name)
                errors += [f"manifest line {number}: {error}" for error in self._check_prior(entry, name, labels)]
        if own in names:
            errors.append(f"LabelAttributeName {own} must differ from the label attribute of the labels to adjust")
        for name in sorted(names):
            if not LABEL_ATTRIBUTE_PATTERN.fullmatch(name) or name.endswith(("-metadata", "-ref")):
                errors.append(f"prior label attribute {name!r} breaks the label attribute name rules")
        if not names:
            errors.append("no manifest line holds a bounding-box label to adjust")
        if "initial-value=" not in template or "task.input.manifestLine" not in template:
            errors.append("the adjustment template shows no prior boxes (crowd-bounding-box initial-value)")
        elif not any(f"manifestLine['{name}']" in template or f"manifestLine.{name}." in template for name in names):
            errors.append(f"the adjustment template's initial-value reads none of the prior labels {sorted(names)}")
        return errors

    def _check_prior(self, entry: dict[str, Any], name: str, labels: list[str]) -> list[str]:
        """The prior label in Ground Truth's bounding-box output format (sms-data-output.html)."""
        label, metadata = entry.get(name), entry[f"{name}-metadata"]
        if not isinstance(label, dict):
            return [f"{name} is not a bounding-box label"]
        errors: list[str] = []
        annotations = label.get("annotations")
        sizes = label.get("image_size")
        if not isinstance(annotations, list):
            return [f"{name}.annotations is not a list"]
        if not annotations and not self.accept_empty_prior_labels:
            errors.append(f"{name} has no box (not documented to be accepted)")
        if not (isinstance(sizes, list) and len(sizes) == 1 and isinstance(sizes[0], dict)):
            errors.append(f"{name}.image_size is not one [{{width, height, depth}}]")
        elif not all(isinstance(sizes[0].get(key), int) and sizes[0][key] > 0 for key in ("width", "height", "depth")):
            errors.append(f"{name}.image_size needs whole positive width, height and depth")
        class_map = metadata.get("class-map")
        objects = metadata.get("objects")
        if not isinstance(class_map, dict) or not all(value in labels for value in class_map.values()):
            errors.append(f"{name}-metadata.class-map must name labels of the label category file")
            class_map = {}
        if not isinstance(objects, list) or len(objects) != len(annotations):
            errors.append(f"{name}-metadata.objects must hold one confidence per box")
        for index, box in enumerate(annotations):
            if not isinstance(box, dict) or set(box) != {"class_id", "left", "top", "width", "height"}:
                errors.append(f"{name}.annotations[{index}] must have class_id, left, top, width, height")
                continue
            if not all(isinstance(box[key], int) for key in box):
                errors.append(f"{name}.annotations[{index}] must be whole pixels")
            elif box["width"] <= 0 or box["height"] <= 0 or box["left"] < 0 or box["top"] < 0:
                errors.append(f"{name}.annotations[{index}] is not a box inside the image")
            elif str(box["class_id"]) not in class_map:
                errors.append(f"{name}.annotations[{index}] class_id {box['class_id']} is not in the class-map")
        if metadata.get("human-annotated") not in ("yes", "no"):
            errors.append(f"{name}-metadata.human-annotated must be yes or no")
        # Every label Ground Truth writes has both; nothing says one without them can be adjusted.
        for key in ("creation-date", "job-name"):
            if not isinstance(metadata.get(key), str):
                errors.append(f"{name}-metadata.{key} is missing")
        return errors

    def adjustment_output(self, name: str, answers: dict[str, list[dict[str, Any]]] | None = None) -> list[str]:
        """A finished adjustment job's output lines, as sms-data-output.html shows them: each input line kept,
        the job's label beside it. `answers` maps a source-ref to the boxes a worker submitted
        (crowd-bounding-box's boundingBoxes: label, left, top, width, height); an image not in it was left as it
        was (adjustment-status "unadjusted", the prior boxes). A line without the prior label fails."""
        answers = answers or {}
        job = self.jobs[name.lower()]
        own = job["LabelAttributeName"]
        prior = self.prior_attributes[name.lower()]
        labels = [entry["label"] for entry in json.loads(self.read(job["LabelCategoryConfigS3Uri"]))["labels"]]
        created = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        output = []
        for line in self.read(job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines():
            entry = json.loads(line)
            if prior not in self._prior_attributes(entry):
                reason = f"ClientError: no '{prior}' label to adjust"
                output.append(
                    json.dumps(
                        {**entry, f"{own}-metadata": {"failure-reason": reason, "job-name": f"labeling-job/{name}"}}
                    )
                )
                continue
            answer = answers.get(entry["source-ref"])
            if answer is None:
                annotations = entry[prior]["annotations"]
                class_map = dict(entry[f"{prior}-metadata"]["class-map"])
            else:
                annotations = [
                    {key: box[key] for key in ("left", "top", "width", "height")}
                    | {"class_id": labels.index(box["label"])}
                    for box in answer
                ]
                class_map = {str(labels.index(box["label"])): box["label"] for box in answer}
            metadata = {
                # One worker a task: Ground Truth writes confidence 0.00 (sms-data-output.html, "Confidence Score").
                "objects": [{"confidence": 0.0} for _ in annotations],
                "class-map": class_map,
                "type": OBJECT_DETECTION,
                "human-annotated": "yes",
                "creation-date": created,
                "job-name": f"labeling-job/{name}",
                "adjustment-status": "unadjusted" if answer is None else "adjusted",
            }
            label = {"image_size": entry[prior]["image_size"], "annotations": annotations}
            output.append(json.dumps({**entry, own: label, f"{own}-metadata": metadata}))
        return output

    # --- several workers per image: each one's answer beside Ground Truth's consolidation ---------
    def worker_response_prefix(self, name: str) -> str:
        """s3:// URI of the job's worker-response folder (sms-data-output.html, "Annotations Directory")."""
        job = self.jobs[name.lower()]
        return f"{job['OutputConfig']['S3OutputPath']}{job['LabelingJobName']}/annotations/worker-response/"

    def worker_output(
        self,
        name: str,
        answers: Mapping[str, Sequence[tuple[str, Sequence[Mapping[str, Any]]]]],
        *,
        consolidated: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        image_size: tuple[int, int, int] = (400, 300, 3),
        iteration: int = 1,
        file_per_worker: bool = False,
        submitted: datetime | None = None,
    ) -> list[str]:
        """A bounding-box job's output when several workers answered each image: writes each image's worker-response
        file and returns the output manifest lines (for `finish`), in input manifest order, for the images in
        `answers` only.

        `answers` maps a source-ref to its workers' answers, (workerId, boxes as crowd-bounding-box submits them:
        label, left, top, width, height in pixels); a worker with no box answered "nothing here". At most the job's
        NumberOfHumanWorkersPerDataObject answers per image, each label one of the job's. The file is
        ``<S3OutputPath><job>/annotations/worker-response/iteration-<n>/<dataset object id>/<timestamp>.json``, the
        dataset object id being the image's 0-based line in the input manifest (sms-data-output.html, "Annotations
        Directory"; sms-custom-templates-step2.html, "Output data", names ``iteration-1/0/2021-03-08_23:06:49.json``),
        holding ``{"answers": [...]}``, one per worker with ``workerId``, the times, ``workerMetadata`` and
        ``answerContent.boundingBox`` (``boundingBoxes`` and ``inputImageProperties``, sms-bounding-box.html,
        "Bounding Box Output Data"); with `file_per_worker`, one such file per worker instead.

        The consolidated boxes are `consolidated`'s for an image it names (each box may carry a ``confidence``),
        otherwise a stand-in for ACS-BoundingBox (whose exact rule AWS does not publish): same-label boxes of
        different workers at IoU >= 0.5 are one object, kept when at least half the workers drew it, its box the
        mean of theirs, its confidence the share of workers who drew it."""
        job = self.jobs[name.lower()]
        workers = int(job["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"])
        labels = [entry["label"] for entry in json.loads(self.read(job["LabelCategoryConfigS3Uri"]))["labels"]]
        attribute = job["LabelAttributeName"]
        folder = self.worker_response_prefix(name)
        when = submitted or datetime.now(UTC).replace(microsecond=0)
        width, height, depth = image_size
        output = []
        manifest = self.read(job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]).splitlines()
        for object_id, line in enumerate(manifest):
            entry = json.loads(line)
            given = answers.get(entry["source-ref"])
            if given is None:
                continue
            if len(given) > workers or len({worker for worker, _ in given}) != len(given):
                raise ValueError(f"{entry['source-ref']}: at most {workers} answers, one per worker")
            records = []
            for position, (worker, boxes) in enumerate(given):
                for box in boxes:
                    if box["label"] not in labels:
                        raise ValueError(f"{box['label']!r} is not one of the job's labels {labels}")
                accepted = when - timedelta(seconds=40 + 5 * position)
                records.append(
                    {
                        "acceptanceTime": _stamp(accepted),
                        "answerContent": {
                            "boundingBox": {
                                "boundingBoxes": [
                                    {key: box[key] for key in ("height", "label", "left", "top", "width")}
                                    for box in boxes
                                ],
                                "inputImageProperties": {"height": height, "width": width},
                            }
                        },
                        "submissionTime": _stamp(when),
                        "timeSpentInSeconds": 38.5 + 5 * position,
                        "workerId": worker,
                        "workerMetadata": {
                            "identityData": {
                                "identityProviderType": "Cognito",
                                "issuer": f"https://cognito-idp.{self.region}.amazonaws.com/{self.region}_fake",
                                "sub": f"00000000-0000-4000-8000-{position:012d}",
                            }
                        },
                    }
                )
            files = [[record] for record in records] if file_per_worker else [records]
            for offset, file_answers in enumerate(files):
                stamp = (when + timedelta(seconds=offset)).strftime("%Y-%m-%d_%H:%M:%S")
                bucket, key = split_s3_uri(f"{folder}iteration-{iteration}/{object_id}/{stamp}.json")
                self.s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"answers": file_answers}).encode())
            chosen = (consolidated or {}).get(entry["source-ref"])
            kept = list(chosen) if chosen is not None else _stand_in_consolidation([boxes for _, boxes in given])
            used = sorted({labels.index(box["label"]) for box in kept})
            label = {
                "annotations": [
                    {"class_id": labels.index(box["label"])}
                    | {key: round(box[key]) for key in ("left", "top", "width", "height")}
                    for box in kept
                ],
                "image_size": [{"width": width, "height": height, "depth": depth}],
            }
            metadata = {
                "objects": [{"confidence": box.get("confidence", 0.0)} for box in kept],
                "class-map": {str(class_id): labels[class_id] for class_id in used},
                "type": OBJECT_DETECTION,
                "human-annotated": "yes",
                "creation-date": when.replace(tzinfo=None).isoformat(timespec="microseconds"),
                "job-name": f"labeling-job/{job['LabelingJobName']}",
            }
            output.append(json.dumps({**entry, attribute: label, f"{attribute}-metadata": metadata}))
        return output

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


def _stamp(moment: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SS.mmmZ (sms-data-output.html, "Worker Metadata")."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iou(first: Mapping[str, Any], second: Mapping[str, Any]) -> float:
    left, top = max(first["left"], second["left"]), max(first["top"], second["top"])
    right = min(first["left"] + first["width"], second["left"] + second["width"])
    bottom = min(first["top"] + first["height"], second["top"] + second["height"])
    overlap = max(0, right - left) * max(0, bottom - top)
    union = first["width"] * first["height"] + second["width"] * second["height"] - overlap
    return overlap / union if union > 0 else 0.0


def _stand_in_consolidation(answers: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The fake's stand-in for ACS-BoundingBox (see FakeGroundTruth.worker_output)."""
    clusters: list[list[tuple[int, Mapping[str, Any]]]] = []
    for worker, boxes in enumerate(answers):
        for box in boxes:
            for cluster in clusters:
                first = cluster[0][1]
                if (
                    first["label"] == box["label"]
                    and all(owner != worker for owner, _ in cluster)
                    and _iou(first, box) >= 0.5
                ):
                    cluster.append((worker, box))
                    break
            else:
                clusters.append([(worker, box)])
    kept = []
    for cluster in clusters:
        if 2 * len(cluster) < len(answers):
            continue
        members = [box for _, box in cluster]
        mean = {key: sum(box[key] for box in members) / len(members) for key in ("left", "top", "width", "height")}
        kept.append({"label": members[0]["label"], **mean, "confidence": round(len(members) / len(answers), 2)})
    return kept
