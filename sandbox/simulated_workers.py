"""Simulated worker answers for the local demo: boxes nobody drew, in Ground Truth's real output format.

The output line is what Ground Truth writes for a bounding-box job after annotation consolidation
(`<S3OutputPath>/<job>/manifests/output/output.manifest`, one JSON object per image; see the
developer guide's "Bounding box job output"): the boxes under the label attribute name and
`<attribute>-metadata` with the class map, one confidence per box, the job name and the task type.
The boxes are pseudo-random but fixed per image, so two demo runs give the same exports.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PIL import Image

# Said wherever the demo shows or logs labels.
SIMULATED_NOTE = "simulated answers: no person drew these boxes (local demo)"


def simulated_boxes(source_ref: str, width: int, height: int, label_count: int) -> list[dict[str, int]]:
    """One to three boxes inside the image, the same ones for the same source-ref."""
    seed = int.from_bytes(hashlib.sha256(source_ref.encode()).digest()[:8], "big")
    draw = random.Random(seed)
    boxes = []
    for _ in range(draw.randint(1, 3)):
        box_width = max(1, round(width * draw.uniform(0.2, 0.6)))
        box_height = max(1, round(height * draw.uniform(0.2, 0.6)))
        boxes.append(
            {
                "class_id": draw.randrange(label_count),
                "left": draw.randint(0, width - box_width),
                "top": draw.randint(0, height - box_height),
                "width": box_width,
                "height": box_height,
            }
        )
    return boxes


def output_line(
    source_ref: str,
    image_size: tuple[int, int, int],
    labels: list[str],
    attribute: str,
    job_name: str,
    created: datetime,
) -> dict[str, Any]:
    width, height, depth = image_size
    annotations = simulated_boxes(source_ref, width, height, len(labels))
    used = sorted({box["class_id"] for box in annotations})
    return {
        "source-ref": source_ref,
        attribute: {
            "annotations": annotations,
            "image_size": [{"width": width, "height": height, "depth": depth}],
        },
        f"{attribute}-metadata": {
            # With one worker per image, consolidation reports a low confidence (the walkthrough shows 0.09).
            "objects": [{"confidence": 0.09} for _ in annotations],
            "class-map": {str(class_id): labels[class_id] for class_id in used},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": created.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "job-name": f"labeling-job/{job_name}",
        },
    }


def image_size(picture: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(picture)) as image:
        return image.width, image.height, len(image.getbands())


def answer_job(read: Callable[[str], bytes], job: dict[str, Any], labels: list[str], created: datetime) -> list[str]:
    """The output manifest lines for a created job; `read` fetches an s3:// URI (its input manifest, its images)."""
    manifest_uri = job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]
    lines = []
    for entry in read(manifest_uri).decode().splitlines():
        source_ref = json.loads(entry)["source-ref"]
        size = image_size(read(source_ref))
        line = output_line(source_ref, size, labels, job["LabelAttributeName"], job["LabelingJobName"], created)
        lines.append(json.dumps(line))
    return lines


def state_change_event(job: dict[str, Any]) -> dict[str, Any]:
    """The PutEvents entry for Ground Truth's "Labeling Job State Change" event (EventBridge docs)."""
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Ground Truth Labeling Job State Change",
        "Resources": [job["LabelingJobArn"]],
        "Detail": json.dumps({"LabelingJobStatus": job["LabelingJobStatus"]}),
    }
