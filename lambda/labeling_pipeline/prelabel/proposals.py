"""The proposals for one image version, as the pre-label stage writes them and the launcher reads them.

One JSON file per model version and image version, at `proposal_key`: the key is a digest of the image version,
so a retry, a duplicate event or a second function computes the same key and (the model and the image being the
same) writes the same bytes. The stage writes a file for every image it decided on, held-out images included
(`held_out`, no boxes), so that the report tells an image kept back on purpose from one the model failed on (no
file at all).

Boxes are in pixels of the image as a browser shows it (EXIF orientation applied), `image_width` and
`image_height` that same size: Label Studio's predictions are in percent of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import Box
from labeling_pipeline.names import PROPOSALS_PREFIX

FORMAT_VERSION = 1
# Coordinates to a thousandth of a pixel and scores to six places: the file's bytes do not depend on the last
# bits of a float, which onnxruntime's kernels may change from one CPU to the next.
PIXEL_PLACES = 3
SCORE_PLACES = 6
READ_THREADS = 16


class ProposalError(ValueError):
    """A proposals file that is not one (the message names the key and what is wrong)."""


@dataclass(frozen=True)
class Proposal:
    model_version: str
    image: ImageRef
    image_width: int
    image_height: int
    boxes: tuple[Box, ...] = ()  # best score first, the score in `confidence`
    held_out: bool = False  # kept back on purpose: labeled without proposals, for the report's comparison
    # What the detector left out, by reason (unmapped class, low score, outside the image): for the report.
    dropped: dict[str, int] = field(default_factory=dict)


def proposals_prefix(model_version: str) -> str:
    return f"{PROPOSALS_PREFIX}{model_version}/"


def proposal_key(model_version: str, image: ImageRef) -> str:
    digest = hashlib.sha256(image.image_id.encode("utf-8")).hexdigest()
    return f"{proposals_prefix(model_version)}{digest}.json"


def encode(proposal: Proposal) -> bytes:
    document: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "modelVersion": proposal.model_version,
        "image": {
            "bucket": proposal.image.bucket,
            "key": proposal.image.key,
            "version": proposal.image.version,
            "width": proposal.image_width,
            "height": proposal.image_height,
        },
        "heldOut": proposal.held_out,
        "boxes": [
            {
                "label": box.label,
                "left": round(box.left, PIXEL_PLACES),
                "top": round(box.top, PIXEL_PLACES),
                "width": round(box.width, PIXEL_PLACES),
                "height": round(box.height, PIXEL_PLACES),
                "score": None if box.confidence is None else round(box.confidence, SCORE_PLACES),
            }
            for box in proposal.boxes
        ],
        "dropped": dict(sorted(proposal.dropped.items())),
    }
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(body: bytes | str, where: str = "proposals") -> Proposal:
    try:
        document = json.loads(body)
        if document.get("formatVersion") != FORMAT_VERSION:
            raise ProposalError(f"{where}: formatVersion {document.get('formatVersion')!r}, expected {FORMAT_VERSION}")
        image = document["image"]
        boxes = tuple(
            Box(
                str(box["label"]),
                float(box["left"]),
                float(box["top"]),
                float(box["width"]),
                float(box["height"]),
                None if box.get("score") is None else float(box["score"]),
            )
            for box in document["boxes"]
        )
        return Proposal(
            model_version=str(document["modelVersion"]),
            image=ImageRef(str(image["bucket"]), str(image["key"]), str(image["version"])),
            image_width=int(image["width"]),
            image_height=int(image["height"]),
            boxes=boxes,
            held_out=bool(document["heldOut"]),
            dropped={str(reason): int(count) for reason, count in document.get("dropped", {}).items()},
        )
    except ProposalError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProposalError(f"{where}: not a proposals file ({type(error).__name__}: {error})") from None


def read_proposals(
    s3_client: Any, bucket: str, model_version: str, images: Iterable[ImageRef]
) -> tuple[dict[ImageRef, Proposal], dict[ImageRef, str]]:
    """The proposals of each image that has a file, and, for each image whose file is unreadable or names
    another image, why. An image without a file is in neither (the stage failed on it, or ran before
    pre-labels were configured). Raises ClientError for anything but a missing key."""
    wanted = list(images)

    def read(image: ImageRef) -> tuple[ImageRef, Proposal | str | None]:
        key = proposal_key(model_version, image)
        try:
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return image, None
            raise
        try:
            proposal = decode(body, key)
        except ProposalError as error:
            return image, str(error)
        if proposal.image != image or proposal.model_version != model_version:
            return image, f"{key} holds the proposals of {proposal.image.image_id} ({proposal.model_version})"
        return image, proposal

    found: dict[ImageRef, Proposal] = {}
    unreadable: dict[ImageRef, str] = {}
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, max(1, len(wanted)))) as pool:
        for image, result in pool.map(read, wanted):
            if isinstance(result, Proposal):
                found[image] = result
            elif isinstance(result, str):
                unreadable[image] = result
    return found, unreadable
