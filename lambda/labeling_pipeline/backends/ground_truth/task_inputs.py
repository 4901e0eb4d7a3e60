"""Ground Truth's task inputs for one job: input manifest, label category file, worker template.

Formats from the Ground Truth developer guide:
- input manifest, one JSON object per line with "source-ref":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-input-data-input-manifest.html
- label category configuration file, "document-version": "2018-11-28":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-label-cat-config-attributes.html
- bounding-box worker template (crowd-bounding-box):
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-bounding-box.html

With labeling.prelabel, a job whose images have a detector's boxes is a bounding-box *adjustment* job started from
scratch (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-verify-start-api.html): each manifest line carries
the model's boxes under a second label attribute (`proposals_attribute`), in Ground Truth's own bounding-box output
format (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Bounding box job output"), as if an
earlier job had written them, and the worker template shows them through crowd-bounding-box's `initial-value`
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-ui-template-crowd-bounding-box.html).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labeling_pipeline.backends.ground_truth.results import OBJECT_DETECTION
from labeling_pipeline.images import ImageRef
from labeling_pipeline.labels import clip_box
from labeling_pipeline.prelabel.proposals import Proposal
from labeling_pipeline.settings import PipelineSettings

LABEL_CONFIG_DOCUMENT_VERSION = "2018-11-28"
MANIFEST_FILE = "input.manifest"
LABEL_CONFIG_FILE = "label-categories.json"
TEMPLATE_FILE = "worker-template.liquid.html"
# The second label attribute, "<LabelAttributeName>-proposals". The prior label of an adjustment job was an earlier
# job's LabelAttributeName, so it keeps that name's rules (botocore's model, CreateLabelingJob.LabelAttributeName:
# pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}, not ending in "-metadata", nor in "-ref" for bounding boxes) and must
# differ from the adjustment job's own LabelAttributeName
# (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-verify-start-api.html): a suffix does all of that,
# as long as the name stays within 127 characters (settings.py checks it).
PROPOSALS_SUFFIX = "-proposals"
# Images arrive as JPEG or PNG; Ground Truth's own lines give depth 3 for colour images, and the proposals file
# does not record the channels.
IMAGE_DEPTH = 3


_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def manifest_text(images: Iterable[ImageRef]) -> str:
    """JSON lines, one {"source-ref": "s3://bucket/key"} per image, in a stable order."""
    # Byte for byte json.dumps({"source-ref": ...}, ensure_ascii=False), with one encoder for all lines.
    return "".join(f'{{"source-ref": {_encode_string(image.source_ref)}}}\n' for image in sorted(images))


def label_category_config(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "document-version": LABEL_CONFIG_DOCUMENT_VERSION,
        "labels": [{"label": label} for label in labels],
    }


def _inert_text(text: str) -> str:
    """Configuration text as HTML that neither the browser nor Ground Truth's Liquid engine interprets:
    braces become entities, so "{{" or "{%" in an instruction cannot start a Liquid tag."""
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")


def worker_template(settings: PipelineSettings) -> str:
    """The crowd-bounding-box UI; instructions, title and labels come from Ground Truth's task input."""
    short = _inert_text(settings.short_instructions)
    full = _inert_text(settings.full_instructions)
    header = _inert_text(settings.task_title)
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>

<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{{{ task.input.taskObject | grant_read_access }}}}"
    header="{header}"
    labels="{{{{ task.input.labels | to_json | escape }}}}"
  >
    <full-instructions header="Bounding box instructions">
      <p>{full}</p>
    </full-instructions>
    <short-instructions>
      <p>{short}</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


def proposals_attribute(label_attribute_name: str) -> str:
    return label_attribute_name + PROPOSALS_SUFFIX


def proposal_label(
    proposal: Proposal, labels: Sequence[str], *, creation_date: str, source: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The proposal as Ground Truth's bounding-box label and its metadata, as an earlier job would have written them
    (sms-data-output.html, "Bounding box job output"); None when it has no box to show.

    Boxes are whole pixels, as in Ground Truth's own output, clipped to the image; a box whose label is not one of
    the job's, that is not a number, or that is less than a pixel once rounded, is left out. `class_id` indexes the
    job's label list (the label category file), `class-map` names the ids used, `objects` holds each box's score,
    `human-annotated` is "no" (a model drew them). None rather than an empty list: nothing documents that an
    adjustment job accepts a prior label without boxes.
    """
    width, height = proposal.image_width, proposal.image_height
    if width <= 0 or height <= 0:
        return None
    class_ids = {label: index for index, label in enumerate(labels)}
    annotations: list[dict[str, int]] = []
    objects: list[dict[str, float]] = []
    class_map: dict[str, str] = {}
    for box in proposal.boxes:
        class_id = class_ids.get(box.label)
        if class_id is None or not all(math.isfinite(v) for v in (box.left, box.top, box.width, box.height)):
            continue
        clipped = clip_box(box.label, box.left, box.top, box.width, box.height, None, width, height, None)
        if clipped is None:
            continue
        left, top = round(clipped.left), round(clipped.top)
        right, bottom = round(clipped.left + clipped.width), round(clipped.top + clipped.height)
        if right - left < 1 or bottom - top < 1:
            continue
        annotations.append(
            {"class_id": class_id, "left": left, "top": top, "width": right - left, "height": bottom - top}
        )
        # Ground Truth writes 0.00 where it has no confidence (one worker a task); a model's score is the nearest
        # thing it has.
        objects.append({"confidence": 0.0 if box.confidence is None else round(box.confidence, 6)})
        class_map[str(class_id)] = box.label
    if not annotations:
        return None
    label = {"annotations": annotations, "image_size": [{"width": width, "height": height, "depth": IMAGE_DEPTH}]}
    metadata = {
        "objects": objects,
        "class-map": dict(sorted(class_map.items(), key=lambda item: int(item[0]))),
        "type": OBJECT_DETECTION,
        "human-annotated": "no",
        "creation-date": creation_date,
        "job-name": source,
    }
    return label, metadata


def adjustment_manifest_text(
    images: Iterable[ImageRef], attribute: str, labels: Mapping[ImageRef, tuple[dict[str, Any], dict[str, Any]]]
) -> str:
    """JSON lines of an adjustment job, in a stable order: each image's source-ref, its proposals under `attribute`
    and their metadata under `<attribute>-metadata`. Every image must have its proposals: a line without the prior
    label fails on its own in an adjustment job (sms-data-verify-adjust-prereq.html)."""
    return "".join(
        json.dumps(
            {"source-ref": image.source_ref, attribute: labels[image][0], f"{attribute}-metadata": labels[image][1]},
            ensure_ascii=False,
        )
        + "\n"
        for image in sorted(images)
    )


# The image: the task object where the adjustment task hands one over, else the manifest line's own source-ref.
_ADJUSTMENT_SOURCE = (
    "{% if task.input.taskObject %}{{ task.input.taskObject | grant_read_access }}"
    "{% else %}{{ task.input.manifestLine['source-ref'] | grant_read_access }}{% endif %}"
)
# AWS's Liquid for a prior job's boxes (sms-ui-template-crowd-bounding-box.html, "initial-value"), written as strict
# JSON (quoted keys, no trailing comma) and HTML-escaped inside the attribute, so that the value parses whether the
# element reads it as JSON or as a JavaScript literal. Literal braces are entities, so that Liquid never sees "}}}".
_INITIAL_VALUE = (
    "[{% for box in task.input.manifestLine['@ATTRIBUTE@'].annotations %}"
    "{% capture class_id %}{{ box.class_id }}{% endcapture %}"
    "{% assign label = task.input.manifestLine['@ATTRIBUTE@-metadata']['class-map'][class_id] %}"
    "&#123;&quot;label&quot;: {{ label | to_json | escape }}, &quot;left&quot;: {{ box.left }}, "
    "&quot;top&quot;: {{ box.top }}, &quot;width&quot;: {{ box.width }}, &quot;height&quot;: {{ box.height }}&#125;"
    "{% unless forloop.last %}, {% endunless %}{% endfor %}]"
)


def adjustment_worker_template(settings: PipelineSettings, attribute: str) -> str:
    """crowd-bounding-box with the proposals drawn (`initial-value`, pixels), read from the manifest line
    (`task.input.manifestLine`, as AWS's documentation does for a prior job's boxes). The labels are written into the
    template rather than taken from `task.input.labels`: which inputs the built-in adjustment task hands the template
    is not documented, and the label category file holds the same list."""
    short = _inert_text(settings.short_instructions)
    full = _inert_text(settings.full_instructions)
    header = _inert_text(settings.task_title)
    labels = _inert_text(json.dumps(list(settings.labels), ensure_ascii=False))
    initial_value = _INITIAL_VALUE.replace("@ATTRIBUTE@", attribute)
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>

<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{_ADJUSTMENT_SOURCE}"
    header="{header}"
    labels="{labels}"
    initial-value="{initial_value}"
  >
    <full-instructions header="Bounding box instructions">
      <p>{full}</p>
    </full-instructions>
    <short-instructions>
      <p>{short}</p>
      <p>A model has drawn the boxes it found: move, resize, relabel or delete them, and draw any it missed.</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
