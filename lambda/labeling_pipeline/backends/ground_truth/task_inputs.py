"""Ground Truth's task inputs for one job: input manifest, label category file, worker template.

Formats from the Ground Truth developer guide:
- input manifest, one JSON object per line with "source-ref":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-input-data-input-manifest.html
- label category configuration file, "document-version": "2018-11-28":
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-label-cat-config-attributes.html
- bounding-box worker template (crowd-bounding-box):
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-bounding-box.html
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from labeling_pipeline.images import ImageRef
from labeling_pipeline.settings import PipelineSettings

LABEL_CONFIG_DOCUMENT_VERSION = "2018-11-28"
MANIFEST_FILE = "input.manifest"
LABEL_CONFIG_FILE = "label-categories.json"
TEMPLATE_FILE = "worker-template.liquid.html"


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
