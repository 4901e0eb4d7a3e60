"""What export and review were given: a local output manifest, or the name of a job to look up in AWS."""

from __future__ import annotations

import os
import re
from pathlib import Path

from labeling_cli.stack import CliError

# The pipeline names its jobs <prefix>-<yyyymmdd>-<12 hex> (job_naming.py), letters, digits and single hyphens
# within 63 characters: anything else given as a source is meant as a file.
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")
JOB_EXAMPLE = "bbox-20261125-76341079bd56"


def local_manifest(source: str) -> Path | None:
    """The local output manifest that SOURCE names, or None when SOURCE is a job name to look up in AWS.

    A SOURCE that cannot be a job name (a path separator, a .manifest suffix, any character outside
    letters, digits and hyphens) is a file the user expects to be there: when it is not, the error says
    so before any AWS lookup, which would only ask for a region or credentials it does not need."""
    path = Path(source)
    if path.is_file():
        return path
    if JOB_NAME.fullmatch(source):
        return None  # also when a folder of that name exists here: job names are looked up in AWS
    if path.exists():
        raise CliError(f"{source} is a folder, not an output manifest: name the output.manifest file in it")
    where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
    separators = ("/", os.sep, os.altsep or os.sep)
    if any(separator in source for separator in separators) or source.lower().endswith(MANIFEST_SUFFIXES):
        raise CliError(
            f"{source} does not exist{where}: give the path of a local output.manifest, "
            f"or a job name such as {JOB_EXAMPLE}"
        )
    raise CliError(
        f"{source} is neither a file that exists{where} nor a job name "
        f"(letters, digits and hyphens, e.g. {JOB_EXAMPLE})"
    )
