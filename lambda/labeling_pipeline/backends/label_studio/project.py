"""The deployment's Label Studio project, its S3 storage and its webhook, made and kept in step with the
configuration: `ensure_project` is idempotent, and what the deployment runs on every create and update
(the tests and the demo call it as the deployment does).

- The project: title, the label configuration (a `RectangleLabels` per configured label), the instructions,
  ``maximum_annotations`` = workersPerImage, skips counted as answers (IGNORE_SKIPPED), the skip button shown.
  A label that existing annotations use stays in the configuration after it leaves ``labels`` (Label Studio
  refuses to drop it, and the annotations keep it); the export gives it the next class id and lists it.
- The S3 import storage: only so that Label Studio hands the browser presigned URLs for the tasks'
  ``s3://`` images (the pipeline imports tasks itself and never syncs: a sync rescans the whole prefix; a
  sync started by hand matches no key).
  No access keys: Label Studio uses its own role's credentials.
- The webhook: annotation created, updated and deleted, to the job-end function, with the secret header.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.results import TaskData
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.settings import PipelineSettings

CONTROL_NAME = "label"
SECRET_HEADER = "X-Labeling-Webhook-Secret"
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
NOTHING = "(?!)"  # a regular expression that matches no key
STORAGE_TITLE = "Pipeline bucket (images are imported by the pipeline; do not sync)"


def label_config(settings: PipelineSettings, kept_labels: Iterable[str] = ()) -> str:
    labels = list(settings.labels) + [label for label in kept_labels if label not in settings.labels]
    lines = [
        "<View>",
        f"  <Header value={quoteattr(settings.task_title)}/>",
        f'  <Image name="{TaskData.IMAGE}" value="${TaskData.IMAGE}" zoom="true"/>',
        f'  <RectangleLabels name="{CONTROL_NAME}" toName="{TaskData.IMAGE}" strokeWidth="2">',
        *(f"    <Label value={quoteattr(label)}/>" for label in labels),
        "  </RectangleLabels>",
        "</View>",
    ]
    return "\n".join(lines)


def instructions(settings: PipelineSettings) -> str:
    paragraphs = [settings.short_instructions, *settings.full_instructions.split("\n\n")]
    return "".join(f"<p>{html.escape(text).replace(chr(10), '<br/>')}</p>" for text in paragraphs if text.strip())


def project_fields(settings: PipelineSettings, kept_labels: Iterable[str] = ()) -> dict[str, Any]:
    assert isinstance(settings, LabelStudioSettings)
    return {
        "title": settings.project_title,
        "description": settings.task_description,
        "label_config": label_config(settings, kept_labels),
        "expert_instruction": instructions(settings),
        "show_instruction": True,
        "maximum_annotations": settings.workers_per_image,
        "skip_queue": "IGNORE_SKIPPED",
        "show_skip_button": True,
        "enable_empty_annotation": True,
    }


@dataclass
class ProjectReport:
    project_id: int
    changed: list[str] = field(default_factory=list)  # what was created or updated, for the log


def used_labels(api: LabelStudioApi, project_id: int) -> list[str]:
    summary = api.request("GET", f"/api/projects/{project_id}/summary") or {}
    return sorted((summary.get("created_labels") or {}).get(CONTROL_NAME, {}))


def ensure_project(
    api: LabelStudioApi,
    settings: PipelineSettings,
    *,
    bucket: str,
    region: str,
    webhook_url: str | None,
    webhook_secret: str | None,
    s3_endpoint: str | None = None,
) -> ProjectReport:
    assert isinstance(settings, LabelStudioSettings)
    found = api.projects_titled(settings.project_title)
    if found:
        project = found[0]
        report = ProjectReport(int(project["id"]))
        wanted = project_fields(settings, used_labels(api, report.project_id))
        stale = {key: value for key, value in wanted.items() if project.get(key) != value}
        if stale:
            api.update_project(report.project_id, stale)
            report.changed.append(f"project fields {', '.join(sorted(stale))}")
    else:
        project = api.create_project(project_fields(settings))
        report = ProjectReport(int(project["id"]), ["project"])
    _ensure_storage(api, report, settings, bucket=bucket, region=region, s3_endpoint=s3_endpoint)
    if webhook_url:
        _ensure_webhook(api, report, webhook_url, webhook_secret or "")
    return report


def _ensure_storage(
    api: LabelStudioApi,
    report: ProjectReport,
    settings: LabelStudioSettings,
    *,
    bucket: str,
    region: str,
    s3_endpoint: str | None,
) -> None:
    wanted: dict[str, Any] = {
        "project": report.project_id,
        "title": STORAGE_TITLE,
        "bucket": bucket,
        # Label Studio resolves a task's s3:// image by bucket alone. With a prefix it would refuse to create
        # the storage of a bucket that holds no image yet (its check lists the prefix and wants one key); with
        # none it checks the bucket exists (io_storages/s3/models.py, validate_connection).
        "prefix": "",
        # A sync by hand (the UI's button) must import nothing: the pipeline imports every task itself.
        "regex_filter": NOTHING,
        "presign": True,
        "presign_ttl": settings.presign_minutes,
        "use_blob_urls": False,
        "recursive_scan": True,
        "region_name": region,
        "s3_endpoint": s3_endpoint or "",
    }
    existing = [storage for storage in api.s3_import_storages(report.project_id) if storage.get("bucket") == bucket]
    if not existing:
        api.create_s3_import_storage(wanted)
        report.changed.append("S3 storage")
        return
    stale = {key: value for key, value in wanted.items() if _differs(existing[0].get(key), value)}
    if stale:
        api.update_s3_import_storage(int(existing[0]["id"]), stale)
        report.changed.append(f"S3 storage {', '.join(sorted(stale))}")


def _differs(have: Any, want: Any) -> bool:
    return (have or "") != (want or "") if isinstance(want, str) else have != want


def _ensure_webhook(api: LabelStudioApi, report: ProjectReport, url: str, secret: str) -> None:
    wanted: dict[str, Any] = {
        "project": report.project_id,
        "url": url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": list(WEBHOOK_ACTIONS),
        "headers": {SECRET_HEADER: secret},
        "is_active": True,
    }
    existing = [hook for hook in api.webhooks(report.project_id) if hook.get("url") == url]
    if not existing:
        api.create_webhook(wanted)
        report.changed.append("webhook")
        return
    hook: Mapping[str, Any] = existing[0]
    stale = {
        key: value
        for key, value in wanted.items()
        if (sorted(hook.get(key) or []) != sorted(value) if key == "actions" else hook.get(key) != value)
    }
    if stale:
        api.update_webhook(int(hook["id"]), stale)
        report.changed.append("webhook " + ", ".join(sorted(stale)))
