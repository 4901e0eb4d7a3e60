"""`make demo DEMO_ARGS="--prelabel"`, for either backend: the stand-in detector's part of the demo's steps. Its
model goes into the emulator before the upload, the proposals the pre-label function wrote are shown after the
launch, and each ended job's pre-label report is printed (`bbox-labeling report`). A stand-in, because no registry
package ships a trained detector's weights (sandbox.stand_in_detector builds an ONNX graph that boxes colour blobs);
it says so on every line (the prefix), in the Lambda logs, the gallery's note and the summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labeling_pipeline.names import PREDICTIONS_FILE, PRELABEL_REPORT_FILE
from labeling_pipeline.prelabel.proposals import Proposal, proposals_prefix
from labeling_pipeline.prelabel.proposals import decode as decode_proposal
from sandbox import stand_in_detector
from sandbox.demo_steps import DATASET, DemoError, LabelingRun, download_prefix, run_cli, say

# --prelabel: where the stand-in detector's model goes (the modelUri the stacks are synthesized with).
MODELS_BUCKET = "gt-labeling-demo-models"
MODEL_KEY = f"stand-in/{stand_in_detector.MODEL_VERSION}.onnx"
# The share of images the pre-label function holds out, so that the report compares labeling with and without
# proposals. Which ones is a hash of each image's key and version (prelabel.holdout); the emulator's S3 events carry
# no versionId, so the version is the ETag, the MD5 of scikit-image's picture: every run holds out the same ones
# (rocket and hubble_deep_field at any percent from 10 to 40; tests/sandbox checks there are some of each kind).
HOLD_OUT_PERCENT = 20


class StandInDetector:
    """--prelabel, for either backend (sandbox.demo_steps.Prelabel): the stand-in detector's model in the emulator,
    the proposals it made, and the job's pre-label report. It is said to be a stand-in on every line (the prefix),
    in the Lambda logs, the gallery's note and the summary."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.model_uri = f"s3://{MODELS_BUCKET}/{MODEL_KEY}"
        setting = stand_in_detector.prelabel_setting(self.model_uri, HOLD_OUT_PERCENT)
        self.context = {"labeling.prelabel": json.dumps(setting, separators=(",", ":"))}
        self.note = stand_in_detector.STAND_IN_NOTE
        self.gallery_note = f"Dashed boxes: {self.note}."
        self.summary: dict[str, Any] = {
            "detector": "stand-in",
            "note": self.note,
            "model_version": stand_in_detector.MODEL_VERSION,
            "model_uri": self.model_uri,
            "hold_out_percent": HOLD_OUT_PERCENT,
            "classes": {
                model_class: {"finds": stand_in_detector.CLASSES[int(model_class)], "label": label}
                for model_class, label in stand_in_detector.CLASS_MAP.items()
            },
        }

    @staticmethod
    def line_prefix(prefix: str) -> str:
        return prefix.removesuffix("]") + " | stand-in detector]"

    def introduce(self) -> None:
        classes = " and ".join(
            f"{stand_in_detector.CLASSES[int(model_class)]}s as {label}"
            for model_class, label in stand_in_detector.CLASS_MAP.items()
        )
        say("Pre-labels come from a STAND-IN detector, not a trained model (no registry package ships a detector's")
        say(f"weights): {stand_in_detector.MODEL_VERSION}, an ONNX graph built in code that boxes {classes}.")

    def before_upload(self, run: LabelingRun) -> None:
        """The model where the stack expects it."""
        model = stand_in_detector.build_model()
        local = self.out / "stand-in-detector" / Path(MODEL_KEY).name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(model)
        region = run.s3.meta.region_name
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        run.s3.create_bucket(Bucket=MODELS_BUCKET, **location)
        run.s3.put_object(Bucket=MODELS_BUCKET, Key=MODEL_KEY, Body=model)
        say(
            f"4/6 The STAND-IN detector's model ({len(model):,} bytes, built by sandbox/stand_in_detector.py) -> "
            f"{self.model_uri}, the stack's modelUri (a copy: {local})"
        )
        self.summary["model_file"] = str(local)

    def show_proposals(self, run: LabelingRun, keys: list[str]) -> None:
        """What the pre-label function wrote for each upload, from its proposals files (kept in the output folder).
        Read by what each file names rather than looked up by image version: the emulator's S3 events carry no
        versionId, so the function names each upload by its ETag, as it does for a bucket without versioning."""
        prefix = proposals_prefix(stand_in_detector.MODEL_VERSION)
        folder = self.out / prefix
        files = download_prefix(run.s3, run.bucket, prefix, folder)
        by_key: dict[str, tuple[Path, Proposal]] = {}
        for path in files:
            proposal = decode_proposal(path.read_bytes(), str(path))
            by_key[proposal.image.key] = (path, proposal)
        say(f"   the pre-label function's files (STAND-IN detector {stand_in_detector.MODEL_VERSION}): {folder}")
        per_image: dict[str, dict[str, Any]] = {}
        for key in keys:
            name = key.removeprefix(f"images/{DATASET}/")
            if key not in by_key:
                say(f"     {name}: no proposals file (the function failed on it; see its log)")
                per_image[key] = {"file": None, "held_out": False, "boxes": []}
                continue
            path, proposal = by_key[key]
            say(f"     {name}: {_proposals_line(proposal)}")
            per_image[key] = {
                "file": str(path),
                "held_out": proposal.held_out,
                "boxes": [
                    [box.label, box.left, box.top, box.width, box.height, box.confidence] for box in proposal.boxes
                ],
            }
        self.summary["images"] = per_image
        self.summary["held_out"] = sorted(key for key, entry in per_image.items() if entry["held_out"])

    def show_report(self, run: LabelingRun, name: str) -> dict[str, Any]:
        """`bbox-labeling report` on the ended job, and where its files are."""
        say(f"     bbox-labeling report {name} (the STAND-IN detector's proposals against the final boxes):")
        for line in run_cli(["report", name]):
            say(f"       {line}")
        folder = self.out / "exports" / name
        files = {"prelabel_report": folder / PRELABEL_REPORT_FILE, "predictions": folder / PREDICTIONS_FILE}
        for path in files.values():
            if not path.exists():
                raise DemoError(f"the job's end wrote no {path.name} for {name}")
        self.summary.setdefault("reports", {})[name] = str(files["prelabel_report"])
        return {key: str(path) for key, path in files.items()}


def _proposals_line(proposal: Proposal) -> str:
    if proposal.held_out:
        return "held out: no proposals on purpose (labeled from scratch, for the report's comparison)"
    if not proposal.boxes:
        dropped = sum(proposal.dropped.values())
        return "no box" + (f" ({dropped} below minScore or unmapped)" if dropped else " (no colour blob)")
    boxes = ", ".join(
        f"{box.label} {box.confidence:.2f} at ({box.left:.0f}, {box.top:.0f}) {box.width:.0f}x{box.height:.0f}"
        for box in proposal.boxes
    )
    return f"{len(proposal.boxes)} stand-in box(es): {boxes}"
