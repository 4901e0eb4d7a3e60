"""Ground Truth's task inputs for one job: the input manifest, the label category file, the worker template."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import liquid

from labeling_pipeline.backends.ground_truth.task_inputs import (
    LABEL_CONFIG_FILE,
    MANIFEST_FILE,
    TEMPLATE_FILE,
    label_category_config,
    manifest_text,
    worker_template,
)
from labeling_pipeline.images import ImageRef
from tests.support import make_settings

BUCKET = "labeling-bucket-example"


def test_task_input_file_names() -> None:
    # The names under jobs/<job>/ that the sandbox demo shows and the folders of earlier jobs hold.
    assert (MANIFEST_FILE, LABEL_CONFIG_FILE, TEMPLATE_FILE) == (
        "input.manifest",
        "label-categories.json",
        "worker-template.liquid.html",
    )


def test_manifest_is_json_lines_of_source_refs_in_a_stable_order() -> None:
    images = [ImageRef(BUCKET, "images/b é.jpg", "2"), ImageRef(BUCKET, "images/a.jpg", "1")]
    text = manifest_text(images)
    assert text == (
        '{"source-ref": "s3://labeling-bucket-example/images/a.jpg"}\n'
        '{"source-ref": "s3://labeling-bucket-example/images/b é.jpg"}\n'
    )
    assert manifest_text(list(reversed(images))) == text


def test_label_category_config() -> None:
    assert label_category_config(["Dog", "Cat"]) == {
        "document-version": "2018-11-28",
        "labels": [{"label": "Dog"}, {"label": "Cat"}],
    }


def test_worker_template_is_the_documented_bounding_box_form() -> None:
    html = worker_template(make_settings(shortInstructions='Say "hi" <b>'))
    assert '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>' in html
    assert 'name="boundingBox"' in html
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in html
    assert 'labels="{{ task.input.labels | to_json | escape }}"' in html
    assert "<full-instructions" in html and "<short-instructions>" in html
    assert "Say &quot;hi&quot; &lt;b&gt;" in html


class _BoundingBoxAttributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: dict[str, str | None] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "crowd-bounding-box":
            self.attributes = dict(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_worker_template_renders_in_liquid_as_ground_truth_would() -> None:
    """Render with python-liquid and the two filters Ground Truth adds; config text stays inert."""
    environment = liquid.Environment()
    environment.filters["grant_read_access"] = lambda uri: "https://signed.example.com/" + uri.removeprefix("s3://")
    environment.filters["to_json"] = json.dumps
    settings = make_settings(fullInstructions="Never type {{ task.input.taskObject }} or {% raw %} here")
    rendered = environment.from_string(worker_template(settings)).render(
        task={"input": {"taskObject": "s3://bucket/images/a b.jpg", "labels": ["Dog", "Cat"]}}
    )
    parser = _BoundingBoxAttributes()
    parser.feed(rendered)
    assert parser.attributes["name"] == "boundingBox"
    assert parser.attributes["src"] == "https://signed.example.com/bucket/images/a b.jpg"
    assert json.loads(parser.attributes["labels"] or "") == ["Dog", "Cat"]
    assert "Never type {{ task.input.taskObject }} or {% raw %} here" in "".join(parser.text)
