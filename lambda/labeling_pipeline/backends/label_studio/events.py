"""Label Studio's webhook, as the job-end function receives it through its function URL.

Label Studio posts ``{"action", "project", "task", "annotation"}`` (lists of each for annotations created
in bulk; ``{"action", "project", "annotations"}``, ids only, for a deletion) with the custom headers of the
webhook, once, with a 1-second timeout and no retry; the scheduled reconciler catches what is lost. The
secret header is checked by the backend (`LabelStudioBackend.authenticate`), against the secret in Secrets
Manager.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from labeling_pipeline.backends import JobEvent, NotAJobEvent
from labeling_pipeline.backends.label_studio.project import SECRET_HEADER, WEBHOOK_ACTIONS
from labeling_pipeline.backends.label_studio.results import TaskData


def _body(event: Mapping[str, Any]) -> Any:
    body = event.get("body")
    if not isinstance(body, str):
        raise NotAJobEvent("not a webhook request: no body")
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        return json.loads(body)
    except ValueError:
        raise NotAJobEvent("webhook body is not JSON") from None


def parse_job_event(event: dict[str, Any]) -> JobEvent:
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    if "requestContext" not in event:
        raise NotAJobEvent("not a webhook request (no requestContext)")
    payload = _body(event)
    if not isinstance(payload, Mapping):
        raise NotAJobEvent("webhook body is not a JSON object")
    action = str(payload.get("action"))
    credential = headers.get(SECRET_HEADER.lower())
    project = payload.get("project")
    project_id = project.get("id") if isinstance(project, Mapping) else project
    if action not in WEBHOOK_ACTIONS:
        raise NotAJobEvent(f"webhook action {action!r} is not one the pipeline follows")
    if action == "ANNOTATIONS_DELETED":
        # Only ids: which job lost an annotation is not said, so the recently ended jobs are checked.
        return JobEvent(None, action, results_changed=True, credential=credential, project=str(project_id))
    task = payload.get("task")
    # ANNOTATIONS_CREATED carries a list of tasks (WebhookAction.ACTIONS in label_studio/webhooks/models.py).
    tasks = task if isinstance(task, list) else [task]
    jobs = {_job_of(one) for one in tasks} - {None}
    if not jobs:
        raise NotAJobEvent(f"{action}: the task carries no data.{TaskData.JOB} (not one the pipeline imported)")
    # Tasks of several jobs answered at once: the recent jobs are checked, and the reconciler asks the rest.
    job = jobs.pop() if len(jobs) == 1 else None
    return JobEvent(job, action, results_changed=True, credential=credential, project=str(project_id))


def _job_of(task: Any) -> str | None:
    data = task.get("data") if isinstance(task, Mapping) else None
    job = data.get(TaskData.JOB) if isinstance(data, Mapping) else None
    return job if isinstance(job, str) and job else None
