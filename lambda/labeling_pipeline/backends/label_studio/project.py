"""The deployment's Label Studio projects (its parts, parts.py), their S3 storage and their webhook, made and
kept in step with the configuration: `ensure_project` is idempotent, and what the deployment runs on every
create and update (the tests and the demo call it as the deployment does). It creates part 1 and brings
every part in step; the launcher creates the other parts as they are needed (`create_part`), with part
1's storage and webhook.

- The project: title, the label configuration (a `RectangleLabels` per configured label), the instructions,
  ``maximum_annotations`` = workersPerImage, skips counted as answers (IGNORE_SKIPPED), the skip button shown.
  A label that existing annotations use stays in the configuration after it leaves ``labels`` (Label Studio
  refuses to drop it, and the annotations keep it); the export gives it the next class id and lists it.
- The S3 import storage: only so that Label Studio hands the browser presigned URLs for the tasks'
  ``s3://`` images (the pipeline imports tasks itself and never syncs: a sync rescans the whole prefix; a
  sync started by hand matches no key).
  No access keys: Label Studio uses its own role's credentials.
- The webhook: annotation created, updated and deleted, to the job-end function, with the secret header.
- With pre-labels (``labeling.prelabel``): predictions shown to workers, and the project's ``model_version``
  the configured one (`keep_model_version`, also called when a job starts: until then Label Studio refuses it).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from labeling_pipeline.backends import PermanentBackendError
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioNotFound
from labeling_pipeline.backends.label_studio.parts import (
    CONSOLIDATED_VERSION,
    LISTED_PREFIX,
    Part,
    canonical,
    list_parts,
    part_title,
    review_title,
)
from labeling_pipeline.backends.label_studio.results import TaskData
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.settings import PipelineSettings

CONTROL_NAME = "label"
SECRET_HEADER = "X-Labeling-Webhook-Secret"
# ANNOTATIONS_CREATED: many annotations at once, from the data manager's "Create Annotations From
# Predictions" (label_studio/data_manager/actions/predictions_to_annotations.py), one webhook for them all.
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
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


def project_fields(settings: PipelineSettings, kept_labels: Iterable[str] = (), part: int = 1) -> dict[str, Any]:
    assert isinstance(settings, LabelStudioSettings)
    fields = {
        "title": part_title(settings.project_title, part),
        "description": settings.task_description,
        "label_config": label_config(settings, kept_labels),
        "expert_instruction": instructions(settings),
        "show_instruction": True,
        "maximum_annotations": settings.workers_per_image,
        "skip_queue": "IGNORE_SKIPPED",
        "show_skip_button": True,
        "enable_empty_annotation": True,
    }
    if settings.prelabel is not None:
        # Workers see predictions only with it on (Task.get_predictions_for_prelabeling, tasks/models.py), and
        # turning it off empties the project's model_version (ProjectSerializer.update, projects/serializers.py).
        fields["show_collab_predictions"] = True
    return fields


def new_project_fields(settings: PipelineSettings, part: int = 1) -> dict[str, Any]:
    """A new part's fields. With pre-labels, its model_version too: Label Studio checks a model_version
    against the project's predictions only when a project is updated (ProjectSerializer.validate_model_version,
    projects/serializers.py), and a new part has none yet."""
    fields = project_fields(settings, part=part)
    if settings.prelabel is not None:
        fields["model_version"] = settings.prelabel.model_version
    return fields


REVIEW_INSTRUCTIONS = (
    "<p><b>Review.</b> The boxes shown are the annotators' boxes consolidated into one set. Correct them: move, "
    "resize, relabel, delete, add. Your answer is final; submit it even when you change nothing.</p>"
)


def review_project_fields(settings: PipelineSettings, kept_labels: Iterable[str] = ()) -> dict[str, Any]:
    """The review project's fields: part 1's, one answer per task (the reviewer's), the consolidated boxes shown."""
    fields = project_fields(settings, kept_labels)
    fields["title"] = review_title(fields["title"])
    fields["maximum_annotations"] = 1
    fields["show_collab_predictions"] = True
    fields["expert_instruction"] = REVIEW_INSTRUCTIONS + fields["expert_instruction"]
    return fields


def review_project_ids(api: LabelStudioApi, settings: PipelineSettings) -> list[int]:
    """The projects titled as the deployment's review project, lowest id first (the lowest is the one used)."""
    assert isinstance(settings, LabelStudioSettings)
    title = review_title(settings.project_title)
    return sorted(
        int(project["id"])
        for project in api.projects_containing(settings.project_title[:LISTED_PREFIX], fields=("id", "title"))
        if project.get("title") == title
    )


def review_project(api: LabelStudioApi, settings: PipelineSettings) -> tuple[int, bool]:
    """The review project's id, and whether this call made it (as `create_part` makes a part: of two made at once
    the lowest id stays, the other is deleted while empty)."""
    found = review_project_ids(api, settings)
    if found:
        return found[0], False
    api.create_project({**review_project_fields(settings), "model_version": CONSOLIDATED_VERSION})
    found = review_project_ids(api, settings)
    for extra in found[1:]:
        if int(api.project(extra, fields=("id", "task_number")).get("task_number") or 0) == 0:
            api.delete_project(extra)
    return found[0], True


def ensure_review_project(api: LabelStudioApi, settings: PipelineSettings, bucket: str) -> int:
    """The review project's id, made when missing, with part 1's storage and webhook, and its fields in step."""
    assert isinstance(settings, LabelStudioSettings)
    chosen, _made = review_project(api, settings)
    first = canonical(list_parts(api, settings.project_title)).get(1)
    if first is None:
        raise PermanentBackendError(
            f"Label Studio has no project titled {settings.project_title!r} to copy the review project's storage "
            "and webhook from: run `make deploy`, then redrive the dead-letter queue"
        )
    _ensure_review_fields(api, settings, chosen)
    copy_setup(api, settings, first.id, chosen, bucket)
    return chosen


def _ensure_review_fields(api: LabelStudioApi, settings: PipelineSettings, project_id: int) -> list[str]:
    wanted = review_project_fields(settings, used_labels(api, project_id))
    project = api.project(project_id, fields=("id", "model_version", *wanted))
    stale = {key: value for key, value in wanted.items() if project.get(key) != value}
    changes = []
    if stale:
        api.update_project(project_id, stale)
        changes.append(f"review project fields {', '.join(sorted(stale))}")
    if project.get("model_version") != CONSOLIDATED_VERSION:
        changes += keep_model_version(api, project_id, CONSOLIDATED_VERSION)
    return changes


@dataclass
class ProjectReport:
    project_id: int  # part 1's
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
    """Part 1 made if missing; every part (each project with a part title) in step with the settings."""
    assert isinstance(settings, LabelStudioSettings)
    parts = list_parts(api, settings.project_title)
    report = ProjectReport(0)
    created = None
    if 1 not in canonical(parts):
        created = int(api.create_project(new_project_fields(settings))["id"])
        parts.insert(0, Part(1, created, 0))
        report.changed.append("project")
    report.project_id = canonical(parts)[1].id
    for part in parts:
        label = "" if part.id == report.project_id else f"part {part.number} (project {part.id}): "
        changes = [] if part.id == created else _ensure_fields(api, settings, part)
        changes += _ensure_storage(api, part.id, settings, bucket=bucket, region=region, s3_endpoint=s3_endpoint)
        if webhook_url:
            changes += _ensure_webhook(api, part.id, webhook_url, webhook_secret or "")
        report.changed.extend(label + change for change in changes)
    if settings.review is not None:
        review_id, made = review_project(api, settings)
        changes = ["made"] if made else []
        changes += _ensure_review_fields(api, settings, review_id)
        changes += _ensure_storage(api, review_id, settings, bucket=bucket, region=region, s3_endpoint=s3_endpoint)
        if webhook_url:
            changes += _ensure_webhook(api, review_id, webhook_url, webhook_secret or "")
        report.changed.extend(f"review project ({review_id}): {change}" for change in changes)
    return report


def _ensure_fields(api: LabelStudioApi, settings: PipelineSettings, part: Part) -> list[str]:
    wanted = project_fields(settings, used_labels(api, part.id), part.number)
    project = api.project(part.id, fields=("id", "model_version", *wanted))
    stale = {key: value for key, value in wanted.items() if project.get(key) != value}
    changes = []
    if stale:
        api.update_project(part.id, stale)
        changes.append(f"project fields {', '.join(sorted(stale))}")
    if settings.prelabel is not None and project.get("model_version") != settings.prelabel.model_version:
        changes += keep_model_version(api, part.id, settings.prelabel.model_version)
    return changes


def keep_model_version(api: LabelStudioApi, project_id: int, model_version: str) -> list[str]:
    """Make `model_version` the project's, the only one whose predictions Label Studio shows workers (the import
    sets it only while it is empty: add_predictions in tasks/serializers.py). Label Studio refuses a version
    that none of the project's predictions has (ProjectSerializer.validate_model_version), so until the first
    job with the new version's predictions starts (which calls this again), the project keeps showing the
    old one. Whatever this changes, the open tasks of older versions show their predictions no more."""
    project = api.project(project_id, fields=("id", "model_version"))
    if project.get("model_version") == model_version or api.model_versions(project_id).get(model_version, 0) == 0:
        return []
    api.update_project(project_id, {"model_version": model_version})
    return [f"model_version {model_version}"]


def create_part(api: LabelStudioApi, settings: PipelineSettings, number: int) -> int:
    """Part `number`'s project id, created now unless another launcher created it first: of the projects
    with its title, the lowest id is the part, and the others are deleted while they hold no task (the one
    this call made, and any other: on SQLite, Label Studio replays a request that met a locked database,
    DatabaseIsLockedRetryMiddleware in label_studio/core/middleware.py, so one create can make two).
    Storage and webhook: `copy_setup`."""
    assert isinstance(settings, LabelStudioSettings)
    made = int(api.create_project(new_project_fields(settings, number))["id"])
    same = {part.id: part.task_number for part in list_parts(api, settings.project_title) if part.number == number}
    if made not in same:  # not listed yet, or deleted already by another launcher (it was empty)
        with contextlib.suppress(LabelStudioNotFound):
            same[made] = int(api.project(made, fields=("id", "task_number")).get("task_number") or 0)
    chosen = min(same, default=made)
    for project_id, task_number in same.items():
        if project_id != chosen and task_number == 0:
            api.delete_project(project_id)
    return chosen


def copy_setup(
    api: LabelStudioApi, settings: PipelineSettings, first_id: int, project_id: int, bucket: str
) -> list[str]:
    """Give project `project_id` the S3 storage and the webhook that part 1 (`first_id`) has: the
    deployment made those with what only it knows (the webhook's URL and secret, the storage's region and
    endpoint). Idempotent."""
    assert isinstance(settings, LabelStudioSettings)
    storages = api.s3_import_storages(first_id)
    ours = [storage for storage in storages if storage.get("bucket") == bucket] or storages
    if not ours:
        raise PermanentBackendError(
            f"Label Studio project {first_id} ({settings.project_title!r}) has no S3 storage to copy to a new "
            "part: run `make deploy` (it makes the storage), then redrive the dead-letter queue"
        )
    storage = ours[0]
    changes = _ensure_storage(
        api,
        project_id,
        settings,
        bucket=str(storage["bucket"]),
        region=str(storage.get("region_name") or ""),
        s3_endpoint=storage.get("s3_endpoint") or None,
    )
    hooks = [hook for hook in api.webhooks(first_id) if SECRET_HEADER in (hook.get("headers") or {})]
    if hooks:
        hook = max(hooks, key=lambda found: int(found["id"]))
        changes += _ensure_webhook(api, project_id, str(hook["url"]), str(hook["headers"][SECRET_HEADER]))
    return changes


def _ensure_storage(
    api: LabelStudioApi,
    project_id: int,
    settings: LabelStudioSettings,
    *,
    bucket: str,
    region: str,
    s3_endpoint: str | None,
) -> list[str]:
    wanted: dict[str, Any] = {
        "project": project_id,
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
    existing = _by_id(storage for storage in api.s3_import_storages(project_id) if storage.get("bucket") == bucket)
    changes = []
    if not existing:
        api.create_s3_import_storage(wanted)
        changes.append("S3 storage")
        # Two launchers that set up a new part at once each make one: the oldest is kept.
        existing = _by_id(storage for storage in api.s3_import_storages(project_id) if storage.get("bucket") == bucket)
    for extra in existing[1:]:
        if extra.get("title") == STORAGE_TITLE:
            api.delete_s3_import_storage(int(extra["id"]))
            changes.append("duplicate S3 storage removed")
    stale = {key: value for key, value in wanted.items() if _differs(existing[0].get(key), value)}
    if stale:
        api.update_s3_import_storage(int(existing[0]["id"]), stale)
        changes.append(f"S3 storage {', '.join(sorted(stale))}")
    return changes


def _by_id(found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(found, key=lambda item: int(item["id"]))


def _differs(have: Any, want: Any) -> bool:
    return (have or "") != (want or "") if isinstance(want, str) else have != want


def _ensure_webhook(api: LabelStudioApi, project_id: int, url: str, secret: str) -> list[str]:
    wanted: dict[str, Any] = {
        "project": project_id,
        "url": url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": list(WEBHOOK_ACTIONS),
        "headers": {SECRET_HEADER: secret},
        "is_active": True,
    }
    existing = _by_id(hook for hook in api.webhooks(project_id) if hook.get("url") == url)
    changes = []
    if not existing:
        api.create_webhook(wanted)
        changes.append("webhook")
        existing = _by_id(hook for hook in api.webhooks(project_id) if hook.get("url") == url)
    for extra in existing[1:]:  # two launchers' copies: every annotation would be sent twice
        if SECRET_HEADER in (extra.get("headers") or {}):
            api.delete_webhook(int(extra["id"]))
            changes.append("duplicate webhook removed")
    hook: Mapping[str, Any] = existing[0]
    stale = {
        key: value
        for key, value in wanted.items()
        if (sorted(hook.get(key) or []) != sorted(value) if key == "actions" else hook.get(key) != value)
    }
    if stale:
        # Always with its actions: Label Studio sets a webhook's actions to those of the update, none when
        # the update names none (WebhookSerializer.validate and .update, label_studio/webhooks/serializers.py).
        api.update_webhook(int(hook["id"]), {**stale, "actions": wanted["actions"]})
        changes.append("webhook " + ", ".join(sorted(stale)))
    return changes
