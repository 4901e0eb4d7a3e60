"""The deployment's work in Label Studio projects of at most ``projectTaskLimit`` tasks, its *parts*.

Label Studio slows down as one project nears 100,000 tasks (upstream issue #9637). Part 1 is the project
titled ``projectTitle`` (what a deployment always had); part n >= 2 is titled ``<projectTitle> (part n)``,
the base cut short when the whole would pass Label Studio's 50 characters. Every part has the same label
configuration, instructions, S3 storage and webhook (project.py). A job's tasks are all in one part.

Two launchers can create the same part at once: every reader takes the lowest project id among the
projects of one part title as that part (`canonical`), and a launcher that has just made a part deletes
the others while they are empty (project.create_part). A duplicate that is not empty stays, and its jobs
are still found: `list_parts` lists every project with a part title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.settings import MAX_PROJECT_TITLE, REVIEW_SUFFIX

PART_TITLE = re.compile(r"^.* \(part (?P<number>[1-9][0-9]*)\)$")
# Every part's title holds the first LISTED_PREFIX characters of projectTitle (those of up to 9,999,999
# parts), which is what the listing asks Label Studio for; the exact titles are then picked here.
LISTED_PREFIX = MAX_PROJECT_TITLE - len(" (part 9999999)")
# What a listing of the parts asks for: `include` narrows both the counts Label Studio computes and the
# fields it returns (REST_FLEX_FIELDS' FIELDS_PARAM in label_studio/core/settings/base.py; the counts in
# ProjectManager.with_counts_annotate, label_studio/projects/models.py). ``task_number`` is the project's
# task count (annotate_task_number, label_studio/projects/functions/__init__.py).
PART_FIELDS = ("id", "title", "task_number")
# The model version of the consolidated boxes shown to a reviewer (a project shows workers only its model_version).
CONSOLIDATED_VERSION = "consolidated"


def part_title(title: str, number: int) -> str:
    """Part `number`'s title: `title` itself for part 1; else ``<title> (part n)`` within 50 characters,
    cutting the end of `title` when needed (the same cut for every reader)."""
    if number == 1:
        return title
    suffix = f" (part {number})"
    return title[: MAX_PROJECT_TITLE - len(suffix)] + suffix


def review_title(title: str) -> str:
    """The review project's title: `title` cut short to leave room for the suffix (all of it up to LISTED_PREFIX
    characters at least, so that a listing of the parts finds it too)."""
    return title[: MAX_PROJECT_TITLE - len(REVIEW_SUFFIX)] + REVIEW_SUFFIX


def part_number(title: str, candidate: str) -> int | None:
    """Which part of the deployment titled `title` a project titled `candidate` is (None: not one)."""
    if candidate == title:
        return 1
    match = PART_TITLE.match(candidate)
    if match is None:
        return None
    number = int(match["number"])
    return number if number >= 2 and part_title(title, number) == candidate else None


@dataclass(frozen=True)
class Part:
    number: int
    id: int
    task_number: int


def list_parts(api: LabelStudioApi, title: str) -> list[Part]:
    """Every project with one of the deployment's part titles, by part number then id."""
    found = []
    for project in api.projects_containing(title[:LISTED_PREFIX], fields=PART_FIELDS):
        number = part_number(title, str(project.get("title")))
        if number is not None:
            found.append(Part(number, int(project["id"]), int(project.get("task_number") or 0)))
    return sorted(found, key=lambda part: (part.number, part.id))


def canonical(parts: Iterable[Part]) -> dict[int, Part]:
    """Each part number's project: the lowest id among the projects with its title."""
    chosen: dict[int, Part] = {}
    for part in parts:
        if part.number not in chosen or part.id < chosen[part.number].id:
            chosen[part.number] = part
    return chosen
