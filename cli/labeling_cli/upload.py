"""bbox-labeling upload DIR: parallel upload to images/<dataset>/, skipping what the labeling backend cannot take."""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from labeling_cli.stack import CliError
from labeling_pipeline.images import ImageLimits, UploadedObject, skip_reason
from labeling_pipeline.names import INPUT_PREFIX

DATASET_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"uploaded {len(self.uploaded)} image(s)"]
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            out.append(
                f"skipped {len(self.skipped)} file(s): " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            )
            out += [f"  skipped {path}: {reason}" for path, reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                out.append(f"  ... and {len(self.skipped) - 20} more")
        out += [f"FAILED {path}: {error}" for path, error in self.failed]
        return out


def plan(
    directory: Path, dataset: str, bucket: str, limits: ImageLimits
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Which files to upload (path, key) and which to skip (path, reason), by the launcher's own rules."""
    if not directory.is_dir():
        raise CliError(f"{directory} is not a folder")
    if not DATASET_PATTERN.match(dataset):
        raise CliError(f"dataset name {dataset!r}: use letters, digits, '.', '_' or '-' (at most 128)")
    to_upload, skipped = [], []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        key = f"{INPUT_PREFIX}{dataset}/{relative}"
        uploaded = UploadedObject(bucket, key, path.stat().st_size, "ObjectCreated:Put", None, "")
        reason = skip_reason(uploaded, bucket, limits)
        if reason is None:
            to_upload.append((path, key))
        else:
            skipped.append((relative, reason.value))
    return to_upload, skipped


def upload(s3: Any, bucket: str, directory: Path, dataset: str, limits: ImageLimits, workers: int = 8) -> UploadReport:
    to_upload, skipped = plan(directory, dataset, bucket, limits)
    report = UploadReport(skipped=skipped)
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(to_upload), unit="img", disable=None) as bar:
        futures = {pool.submit(s3.upload_file, str(path), bucket, key): (path, key) for path, key in to_upload}
        for future in as_completed(futures):
            path, key = futures[future]
            try:
                future.result()
                report.uploaded.append(key)
            except Exception as error:
                report.failed.append((str(path), str(error)))
            bar.update(1)
    report.uploaded.sort()
    return report
