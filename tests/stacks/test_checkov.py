"""checkov on every synthesized template, with and without labeling.kmsKey: one run per session.

checkov pins a boto3 that conflicts with this project's, so `make setup` installs it into its own venv
(.venv-scan, from requirements-scan.txt). A finding fails the test unless stacks/checkov_skips.py lists
it with its reason (the list is written into the templates as checkov's own skip metadata).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks.checkov_skips import SKIPS
from tests.stacks.conftest import Synthesized

CHECKOV = Path(__file__).resolve().parents[2] / ".venv-scan" / "bin" / "checkov"


@dataclass
class CheckovRun:
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    passed: int
    seconds: float
    variant_of: dict[str, str]  # template path -> "default" | "kms"

    def where(self, finding: dict[str, Any]) -> str:
        return f"{self.variant_of[finding['file_abs_path']]}: {finding['check_id']} {finding['resource']}"

    def skips(self) -> set[tuple[str, str, str]]:
        """(variant, check, reason) of every skipped check."""
        return {
            (
                self.variant_of[finding["file_abs_path"]],
                finding["check_id"],
                finding["check_result"]["suppress_comment"],
            )
            for finding in self.skipped
        }


def run_checkov(variant_of: dict[str, str]) -> CheckovRun:
    """checkov once over the given templates (path -> variant name), offline, from its own venv."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make setup`")
    files = [arg for path in variant_of for arg in ("--file", path)]
    started = time.monotonic()
    result = subprocess.run(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json", *files],
        capture_output=True,
        text=True,
        check=False,
        # Offline and quiet: no Prisma Cloud download (--skip-download), no PyPI update check.
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )
    seconds = time.monotonic() - started
    # 0: nothing failed; 1: findings (judged by the tests); anything else: checkov itself broke.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    [cloudformation] = report if isinstance(report, list) else [report]
    assert cloudformation["check_type"] == "cloudformation"
    assert cloudformation["summary"]["parsing_errors"] == 0
    results = cloudformation["results"]
    return CheckovRun(
        failed=results["failed_checks"],
        skipped=results["skipped_checks"],
        passed=len(results["passed_checks"]),
        seconds=seconds,
        variant_of={str(Path(path).resolve()): variant for path, variant in variant_of.items()},
    )


@pytest.fixture(scope="session")
def checkov(synthesized: Synthesized, synthesized_kms: Synthesized) -> CheckovRun:
    variant_of = {
        str(path.resolve()): variant
        for variant, outdir in (("default", synthesized.outdir), ("kms", synthesized_kms.outdir))
        for path in sorted(Path(outdir).glob("*.template.json"))
    }
    assert len(variant_of) == 4
    return run_checkov(variant_of)


def test_checkov_has_no_finding_that_is_not_fixed_or_listed(checkov: CheckovRun) -> None:
    assert checkov.passed > 100
    if checkov.failed:
        pytest.fail(
            "checkov findings neither fixed nor listed in stacks/checkov_skips.py:\n"
            + "\n".join(f"  {checkov.where(finding)}: {finding['check_name']}" for finding in checkov.failed)
        )


def test_every_listed_skip_is_used_with_its_reason(checkov: CheckovRun) -> None:
    skipped = {
        (checkov.variant_of[finding["file_abs_path"]], finding["check_id"], finding["check_result"]["suppress_comment"])
        for finding in checkov.skipped
    }
    for skip in SKIPS:
        assert len(skip.reason) >= 80, skip
        # Every entry still matches a resource: the default deployment always, the KMS one unless the key
        # fixes the finding there.
        assert ("default", skip.check, skip.reason) in skipped, skip
        assert (("kms", skip.check, skip.reason) in skipped) is not skip.without_kms, skip


def test_the_customer_managed_key_fixes_the_encryption_findings(checkov: CheckovRun) -> None:
    kms_skips = {checkov.where(f) for f in checkov.skipped if checkov.variant_of[f["file_abs_path"]] == "kms"}
    assert not any("CKV_AWS_27" in where for where in kms_skips)
    # The workforce stack cannot use the pipeline stack's key: only its deploy-time provider's log group.
    [provider_logs] = [where for where in kms_skips if "CKV_AWS_158" in where]
    assert provider_logs.startswith("kms: CKV_AWS_158 AWS::Logs::LogGroup.PrivateWorkforcePortalClientUrlsLogs")
    assert [where for where in kms_skips if "CKV_AWS_26" in where] == [
        "kms: CKV_AWS_26 AWS::SNS::Topic.PrivateWorkforceWorkerNotifications50F39D9A"
    ]
