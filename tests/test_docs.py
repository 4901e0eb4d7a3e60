"""The README and docs/ stay a front door and pages that answer: links that resolve, a short README that starts
with the two commands, a settings reference in step with the models, and an architecture picture a browser
shows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from functools import cache
from pathlib import Path

import pytest

from scripts import architecture_svg, settings_reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
MAX_README_LINES = 260

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the text may hold one level of brackets. Inline code is removed first.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link in a code block is text, not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text()):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(page: Path) -> list[str]:
    targets = []
    for line in prose_lines(page.read_text()):
        targets += HTML_LINK.findall(line)
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading or anchor #{anchor} in {destination.relative_to(ROOT)}")
        elif anchor and destination.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
    return broken


def test_the_checker_reads_links_and_anchors_as_github_does() -> None:
    assert slug("Configuration: every setting, its default") == "configuration-every-setting-its-default"
    assert slug("`labeling.prelabel`") == "labelingprelabel"
    assert slug("How it is tested (`make test`)") == "how-it-is-tested-make-test"
    assert slug("Label Studio's alarms") == "label-studios-alarms"
    assert slug("Exactly once: each image version is labeled by one job") == (
        "exactly-once-each-image-version-is-labeled-by-one-job"
    )
    line = 'See [a](docs/a.md#x), ![pic](docs/p.svg "title"), `[not](a-link.md)` and [b [c]](b.md).'
    assert LINK.findall(CODE_SPAN.sub("", line)) == ["docs/a.md#x", "docs/p.svg", "b.md"]
    assert prose_lines("a\n```\n[x](y.md)\n```\nb") == ["a", "b"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(README)
        if not is_external(target) and target.partition("#")[0]
    }
    unreached = [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked]
    assert unreached == []


def test_the_readme_is_a_front_door_that_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    start = "\n".join(lines[:25])
    assert "make deploy" in start and "make test" in start
    first_block = README.read_text().split("\n```", 2)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert commands[:2] == ["make deploy", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^deploy:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


def test_the_settings_reference_is_in_step_with_the_models() -> None:
    page = settings_reference.PAGE.read_text()
    assert settings_reference.generated_part(page) == settings_reference.render(), (
        "docs/configuration.md's settings tables differ from the models: run "
        ".venv/bin/python scripts/settings_reference.py --write"
    )
    missing = [key for key in settings_reference.all_keys() if f"`{key}`" not in page]
    assert missing == []


def test_the_settings_reference_covers_every_field_of_every_model() -> None:
    keys = set(settings_reference.all_keys())
    for model in settings_reference.config_models().values():
        assert {field.alias for field in model.model_fields.values()} <= keys
    assert {"labels", "workerEmails", "labelStudioUrl", "prelabel.classMap", "review.sampleShare"} <= keys


def test_the_architecture_picture_is_an_svg_that_names_both_backends() -> None:
    path = DOCS / "architecture.svg"
    root = ElementTree.parse(path).getroot()
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{namespace}svg"
    texts = " ".join("".join(text.itertext()) for text in root.iter(f"{namespace}text"))
    for words in ("Ground Truth", "Label Studio", "Launcher Lambda", "Ledger (DynamoDB)", "EventBridge", "Webhook"):
        assert words in texts
    sizes = [float(text.get("font-size", "0")) for text in root.iter(f"{namespace}text")]
    assert min(sizes) >= 12, "text smaller than 12 px is hard to read"
    assert path.read_text() == architecture_svg.draw(), "run .venv/bin/python scripts/architecture_svg.py --write"
    for page in (README, DOCS / "how-it-works.md"):
        assert "architecture.svg)" in page.read_text()
