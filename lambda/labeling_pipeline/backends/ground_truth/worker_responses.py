"""Each worker's own answer, read from Ground Truth's worker-response files, for jobs with several workers per image.

Ground Truth consolidates its workers' boxes itself (ACS-BoundingBox) and writes only the consolidated boxes to the
output manifest. Each worker's raw answer stays under the job's output folder (developer guide, "Output Directories",
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html): ``annotations/worker-response/`` "contains a
subdirectory for each iteration, which in turn contains a subdirectory for each data object in that iteration. The
annotation for each data object is stored in a timestamped JSON file", so
``<S3OutputPath>/<job>/annotations/worker-response/iteration-<n>/<dataset object id>/<timestamp>.json``. The
dataset object id is the object's 0-based line in the job's input manifest (the guide's custom-template example names
``.../worker-response/iteration-1/0/2021-03-08_23:06:49.json`` for its first object:
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-custom-templates-step2.html, "Output data"). An object labeled
again in a later iteration has its latest answers there: the highest iteration holding the object wins.

A file holds ``answers``, one per worker: ``workerId``, ``acceptanceTime``, ``submissionTime``,
``timeSpentInSeconds`` and, for a private workforce, ``workerMetadata`` (sms-data-output.html, "Worker Metadata"),
and ``answerContent``, what the worker template submitted: crowd-bounding-box under its ``name`` (``boundingBox`` in
task_inputs.py's templates) as ``{"boundingBoxes": [{"label", "left", "top", "width", "height"}],
"inputImageProperties": {"width", "height"}}`` in pixels
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-bounding-box.html, "Bounding Box Output Data";
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-ui-template-crowd-bounding-box.html). The ``answers`` wrapper is
not shown whole on one page of the guide; it is what readers of real jobs' files parse. The guide's sentence reads as
one file per worker as well as one per object with every worker's answer: both are read (every file of the object's
latest iteration, a worker's later file replacing an earlier one).

Which output line is which dataset object: the job's input manifest (ours, one ``source-ref`` per line) says, by
source-ref. The output manifest's order is not relied on: the guide says each output line is its manifest line with
the label added, not that the lines keep their order, and a stopped job's manifest may hold some lines only.

Memory: the listing keeps each object's file names and the input manifest's source-refs (one entry per image, as the
job end's own bookkeeping does); file contents are read one file at a time, for the image being read.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.labels import SETTLED_BY_BACKEND, Box, LabeledImage, ReadStats, clip_box

logger = logging.getLogger(__name__)

WORKER_RESPONSE_FOLDER = "annotations/worker-response/"
# The output manifest's place under the job's output folder (sms-data-output.html, "Manifest Directory").
OUTPUT_MANIFEST_PATH = "manifests/output/output.manifest"
# crowd-bounding-box's name in the worker templates (task_inputs.worker_template, adjustment_worker_template).
BOUNDING_BOX_ELEMENT = "boundingBox"
ITERATION_FOLDER = re.compile(r"^iteration-(\d+)$")
DATASET_OBJECT_ID = re.compile(r"^\d+$")
# A worker-response file is a few kilobytes; one past this is not read (counted as malformed).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# S3 error codes that mean "not there for us": a file listed and gone since, or one the role may not read/list.
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403"})


class WorkerResponseError(ValueError):
    """A worker-response file that cannot be read as bounding-box answers."""


@dataclass(frozen=True)
class WorkerAnswer:
    worker_id: str
    # (label, left, top, width, height) in pixels, as the worker drew them (not clipped yet)
    boxes: tuple[tuple[str, float, float, float, float], ...]
    image_width: int  # inputImageProperties, 0 when absent
    image_height: int


@dataclass
class WorkerResponseStats:
    """What one job part's worker responses gave: counted here and logged (ReadStats has no place for them)."""

    files_read: int = 0
    files_skipped: int = 0
    images_with_answers: int = 0
    images_without_answers: int = 0  # labeled images with no readable worker response: Ground Truth's boxes alone
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (s3:// URI, why), for the log
    listing_error: str | None = None  # the folder could not be listed: no image got its workers' answers


def _number(value: Any, where: str) -> float:
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer past float's range
        number = math.nan
    if not math.isfinite(number):
        raise WorkerResponseError(f"{where} is not a number ({str(value)[:40]})")
    return number


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_worker_response(document: Any) -> list[WorkerAnswer]:
    """One worker-response file (parsed JSON) -> its answers; WorkerResponseError for anything else."""
    if not isinstance(document, dict) or not isinstance(document.get("answers"), list):
        raise WorkerResponseError("no 'answers' list")
    answers = []
    for position, answer in enumerate(document["answers"]):
        where = f"answers[{position}]"
        if not isinstance(answer, dict):
            raise WorkerResponseError(f"{where} is not an object")
        worker = answer.get("workerId")
        if not isinstance(worker, str) or not worker:
            raise WorkerResponseError(f"{where} has no workerId")
        content = answer.get("answerContent")
        tool = content.get(BOUNDING_BOX_ELEMENT) if isinstance(content, dict) else None
        if not isinstance(tool, dict) or not isinstance(tool.get("boundingBoxes"), list):
            raise WorkerResponseError(f"{where} has no answerContent.{BOUNDING_BOX_ELEMENT}.boundingBoxes list")
        boxes = []
        for index, box in enumerate(tool["boundingBoxes"]):
            box_where = f"{where}.boundingBoxes[{index}]"
            if not isinstance(box, dict) or not isinstance(box.get("label"), str):
                raise WorkerResponseError(f"{box_where} has no label")
            boxes.append(
                (
                    box["label"],
                    _number(box.get("left"), f"{box_where}.left"),
                    _number(box.get("top"), f"{box_where}.top"),
                    _number(box.get("width"), f"{box_where}.width"),
                    _number(box.get("height"), f"{box_where}.height"),
                )
            )
        properties = tool.get("inputImageProperties")
        properties = properties if isinstance(properties, dict) else {}
        answers.append(
            WorkerAnswer(worker, tuple(boxes), _size(properties.get("width")), _size(properties.get("height")))
        )
    return answers


def dataset_object_ids(lines: Iterable[bytes | str]) -> dict[str, int]:
    """source-ref -> dataset object id (its 0-based line in the input manifest). A line without a source-ref keeps its
    number; a source-ref listed twice keeps its first (the pipeline's manifests list each image once)."""
    ids: dict[str, int] = {}
    for number, raw in enumerate(lines):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        source_ref = entry.get("source-ref") if isinstance(entry, dict) else None
        if isinstance(source_ref, str):
            ids.setdefault(source_ref, number)
    return ids


def list_worker_responses(s3: Any, bucket: str, prefix: str) -> dict[int, tuple[int, tuple[str, ...]]]:
    """dataset object id -> (its latest iteration, the keys of that iteration's files, in key order), from one
    paginated ListObjectsV2 of `prefix` (…/annotations/worker-response/). Iterations compare as numbers
    (iteration-10 after iteration-9). Keys of another shape are left out."""
    found: dict[int, tuple[int, list[str]]] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents") or ():
            key = item["Key"]
            parts = key[len(prefix) :].split("/")
            if len(parts) != 3 or not parts[2].endswith(".json"):
                continue
            iteration_match = ITERATION_FOLDER.match(parts[0])
            if iteration_match is None or not DATASET_OBJECT_ID.match(parts[1]):
                continue
            iteration, object_id = int(iteration_match[1]), int(parts[1])
            latest = found.get(object_id)
            if latest is None or iteration > latest[0]:
                found[object_id] = (iteration, [key])
            elif iteration == latest[0]:
                latest[1].append(key)
    return {object_id: (iteration, tuple(sorted(keys))) for object_id, (iteration, keys) in found.items()}


class WorkerResponses:
    """One job part's worker responses, laid over the images read from its output manifest (`apply`)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        object_ids: dict[str, int],
        listing: dict[int, tuple[int, tuple[str, ...]]],
        job_name: str,
        stats: WorkerResponseStats,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._object_ids = object_ids
        self._listing = listing
        self._job_name = job_name
        self.stats = stats

    def over(self, images: Iterable[LabeledImage], read_stats: ReadStats | None) -> Iterator[LabeledImage]:
        for image in images:
            yield self.apply(image, read_stats)
        self.log_summary()

    def apply(self, image: LabeledImage, read_stats: ReadStats | None) -> LabeledImage:
        """The image with its workers' own boxes in `boxes` (each with its `annotator`, the workerId), who answered in
        `annotators`, and Ground Truth's consolidated boxes in `settled_boxes`; unchanged when the image failed or
        none of its worker-response files could be read."""
        if image.failed:
            return image
        object_id = self._object_ids.get(image.source_ref)
        entry = None if object_id is None else self._listing.get(object_id)
        answers: dict[str, WorkerAnswer] = {}
        for key in entry[1] if entry is not None else ():
            for answer in self._read(key):
                answers[answer.worker_id] = answer  # a worker's later answer replaces the earlier, in its place
        if not answers:
            self.stats.images_without_answers += 1
            return image
        self.stats.images_with_answers += 1
        boxes: list[Box] = []
        for answer in answers.values():
            width, height = image.width or answer.image_width, image.height or answer.image_height
            for label, left, top, box_width, box_height in answer.boxes:
                box = clip_box(label, left, top, box_width, box_height, None, width, height, read_stats)
                if box is not None:
                    boxes.append(box._replace(annotator=answer.worker_id))
        return image._replace(
            boxes=tuple(boxes),
            annotators=tuple(answers),
            settled_boxes=image.boxes,
            settled_by=SETTLED_BY_BACKEND,
        )

    def _read(self, key: str) -> list[WorkerAnswer]:
        """One file's answers; [] for a file gone, unreadable or malformed (logged and counted)."""
        uri = f"s3://{self._bucket}/{key}"
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            try:
                data = body.read(MAX_RESPONSE_BYTES + 1)
            finally:
                body.close()
            if len(data) > MAX_RESPONSE_BYTES:
                raise WorkerResponseError(f"larger than {MAX_RESPONSE_BYTES} bytes")
            answers = parse_worker_response(json.loads(data))
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in MISSING_CODES:
                raise  # throttled or the service failing: the job end is tried again
            return self._skip(uri, f"cannot be read ({code})")
        except (WorkerResponseError, ValueError) as error:  # ValueError: not JSON, not UTF-8
            return self._skip(uri, f"malformed: {error}")
        self.stats.files_read += 1
        return answers

    def _skip(self, uri: str, reason: str) -> list[WorkerAnswer]:
        self.stats.files_skipped += 1
        self.stats.skipped.append((uri, reason))
        logger.warning("job %s: worker response %s skipped: %s", self._job_name, uri, reason)
        return []

    def log_summary(self) -> None:
        stats = self.stats
        logger.info(
            "job %s: workers' own answers read for %d images (%d files), %d labeled images with Ground Truth's "
            "boxes only, %d worker-response files skipped",
            self._job_name,
            stats.images_with_answers,
            stats.files_read,
            stats.images_without_answers,
            stats.files_skipped,
        )


def worker_response_prefix(results_uri: str) -> str | None:
    """s3://bucket/<output>/<job>/manifests/output/output.manifest -> <output>/<job>/annotations/worker-response/
    (the key prefix); None for a results URI of another shape."""
    if not results_uri.startswith("s3://") or not results_uri.endswith(OUTPUT_MANIFEST_PATH):
        return None
    _bucket, _, key = results_uri.removeprefix("s3://").partition("/")
    return key.removesuffix(OUTPUT_MANIFEST_PATH) + WORKER_RESPONSE_FOLDER
