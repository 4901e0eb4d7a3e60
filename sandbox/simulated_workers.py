"""Simulated worker answers for the local demo: boxes nobody drew, in Ground Truth's real output format.

The output line is what Ground Truth writes for a bounding-box job after annotation consolidation
(`<S3OutputPath>/<job>/manifests/output/output.manifest`, one JSON object per image; see the
developer guide's "Bounding box job output"): the boxes under the label attribute name and
`<attribute>-metadata` with the class map, one confidence per box, the job name and the task type.
The boxes are pseudo-random but fixed per image, so two demo runs give the same exports.

With pre-labels (`make demo DEMO_ARGS="--prelabel"`), a simulated worker shown a detector's proposals corrects them
(`correct_proposals`): it keeps some as they are, moves or resizes some, relabels a few, deletes the rest as false,
and now and then draws one the detector missed; each decision is drawn per image and proposal, so two runs correct
alike. On Ground Truth those answers go into an adjustment job's output (the fake's `adjustment_output`); the
images of the plain job beside it are answered as above.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image

# Said wherever the demo shows or logs labels.
SIMULATED_NOTE = "simulated answers: no person drew these boxes (local demo)"

# Label Studio's region origins (what its editor saves on each region): a proposal kept as it was, one moved,
# resized or relabeled, and a box drawn by hand.
ACCEPTED_ORIGIN = "prediction"
CHANGED_ORIGIN = "prediction-changed"
MANUAL_ORIGIN = "manual"
# What a simulated worker does with a proposal, by the share of proposals: the rest are deleted as false. A worker
# draws one box the detector missed on MISSED_SHARE of the images with proposals.
KEEP_SHARE, MOVE_SHARE, RELABEL_SHARE = 0.4, 0.25, 0.15
MISSED_SHARE = 0.5
# How far a moved proposal goes: up to this share of its width and height, each way; resized by up to as much.
NUDGE = 0.12
SECONDS_A_DRAWN_BOX = 6.0
# Salts the corrections' draws. Picked (among the first few dozen) so that the four pictures the demo's stand-in
# detector proposes boxes for show each kind of correction once: the cat's box kept, the coffee table's deleted as a
# false cat, the astronaut's relabeled and the motorcycle's moved. Any other value corrects as plausibly, less
# instructively.
CORRECTION_ROUND = 21


def _draw(source_ref: str, purpose: str = "") -> random.Random:
    seed = int.from_bytes(hashlib.sha256(f"{purpose}{source_ref}".encode()).digest()[:8], "big")
    return random.Random(seed)


def simulated_boxes(source_ref: str, width: int, height: int, label_count: int) -> list[dict[str, int]]:
    """One to three boxes inside the image, the same ones for the same source-ref."""
    draw = _draw(source_ref)
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


@dataclass(frozen=True)
class FinalBox:
    """A box a simulated worker submitted, in whole pixels, and where it came from (`*_ORIGIN`)."""

    label: str
    left: int
    top: int
    width: int
    height: int
    origin: str
    proposal: int | None = None  # the index of the proposal it was made from


@dataclass
class Correction:
    """What a simulated worker made of one image's proposals: its final boxes and the tally."""

    boxes: list[FinalBox] = field(default_factory=list)
    accepted: int = 0
    moved: int = 0
    relabeled: int = 0
    deleted: int = 0
    added: int = 0

    @property
    def proposals(self) -> int:
        return self.accepted + self.moved + self.relabeled + self.deleted

    @property
    def changed(self) -> bool:
        """Whether the worker changed anything (Ground Truth's adjustment-status "adjusted")."""
        return bool(self.moved or self.relabeled or self.deleted or self.added)

    def seconds(self) -> float:
        """What the worker says it spent (Label Studio's lead_time): a few seconds to look, more for each box it
        drew than for one it only nudged. Simulated, like the boxes."""
        looked = 2.0 + 1.0 * self.accepted + 1.0 * self.deleted
        return looked + 3.0 * (self.moved + self.relabeled) + SECONDS_A_DRAWN_BOX * self.added

    def summary(self) -> str:
        return (
            f"accepted {self.accepted}, moved {self.moved}, relabeled {self.relabeled}, deleted {self.deleted}, "
            f"added {self.added}"
        )


def seconds_without_proposals(box_count: int) -> float:
    """The simulated lead_time of an image labeled from scratch: a look, then each box drawn."""
    return 3.0 + SECONDS_A_DRAWN_BOX * box_count


def _inside(left: float, top: float, width: float, height: float, image: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box in whole pixels, kept inside the image and at least a pixel wide and high."""
    image_width, image_height = image
    left_px = min(max(0, round(left)), image_width - 1)
    top_px = min(max(0, round(top)), image_height - 1)
    right = min(image_width, max(left_px + 1, round(left + width)))
    bottom = min(image_height, max(top_px + 1, round(top + height)))
    return left_px, top_px, right - left_px, bottom - top_px


def correct_proposals(
    source_ref: str,
    proposals: Sequence[tuple[str, float, float, float, float]],
    image: tuple[int, int],
    labels: Sequence[str],
) -> Correction:
    """What a simulated worker makes of an image's proposals ([label, left, top, width, height] in pixels of an image
    of `image` = (width, height)): the same on every run for the same source-ref and proposals."""
    draw = _draw(source_ref, f"proposals {CORRECTION_ROUND}\n")
    found = Correction()
    for index, (label, left, top, width, height) in enumerate(proposals):
        chance = draw.random()
        if chance < KEEP_SHARE:
            found.accepted += 1
            found.boxes.append(FinalBox(label, *_inside(left, top, width, height, image), ACCEPTED_ORIGIN, index))
        elif chance < KEEP_SHARE + MOVE_SHARE:
            found.moved += 1
            dx, dy = (draw.uniform(-NUDGE, NUDGE) * width, draw.uniform(-NUDGE, NUDGE) * height)
            grow_x, grow_y = 1 + draw.uniform(-NUDGE, NUDGE), 1 + draw.uniform(-NUDGE, NUDGE)
            moved = _inside(left + dx, top + dy, width * grow_x, height * grow_y, image)
            found.boxes.append(FinalBox(label, *moved, CHANGED_ORIGIN, index))
        elif chance < KEEP_SHARE + MOVE_SHARE + RELABEL_SHARE and len(labels) > 1:
            found.relabeled += 1
            other = [each for each in labels if each != label][draw.randrange(len(labels) - 1)]
            found.boxes.append(FinalBox(other, *_inside(left, top, width, height, image), CHANGED_ORIGIN, index))
        else:
            found.deleted += 1
    if draw.random() < MISSED_SHARE or not found.boxes:
        missed = simulated_boxes(source_ref, image[0], image[1], len(labels))[0]
        found.added += 1
        found.boxes.append(
            FinalBox(
                labels[missed["class_id"]],
                missed["left"],
                missed["top"],
                missed["width"],
                missed["height"],
                MANUAL_ORIGIN,
            )
        )
    return found


def adjustment_answers(
    read: Callable[[str], bytes], job: dict[str, Any], prior_attribute: str, labels: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Correction]]:
    """A Ground Truth adjustment job's answers, as the fake's `adjustment_output` takes them (source-ref ->
    crowd-bounding-box's boxes: label, left, top, width, height), for the images a worker changed; and what the
    worker did on each image. An image left out of the answers was submitted as it was shown (unadjusted)."""
    manifest_uri = job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]
    answers: dict[str, list[dict[str, Any]]] = {}
    corrections: dict[str, Correction] = {}
    for entry_text in read(manifest_uri).decode().splitlines():
        entry = json.loads(entry_text)
        prior, metadata = entry.get(prior_attribute), entry.get(f"{prior_attribute}-metadata")
        if not isinstance(prior, dict) or not isinstance(metadata, dict):
            continue  # no boxes to adjust: the object fails on its own, as the service's would
        size = prior["image_size"][0]
        class_map = metadata["class-map"]
        proposals = [
            (class_map[str(box["class_id"])], box["left"], box["top"], box["width"], box["height"])
            for box in prior["annotations"]
        ]
        correction = correct_proposals(entry["source-ref"], proposals, (size["width"], size["height"]), labels)
        corrections[entry["source-ref"]] = correction
        if correction.changed:
            answers[entry["source-ref"]] = [
                {"label": box.label, "left": box.left, "top": box.top, "width": box.width, "height": box.height}
                for box in correction.boxes
            ]
    return answers, corrections


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
