"""Label Studio's REST API, the calls the pipeline makes, over urllib3 (which every Lambda Python runtime
ships with botocore).

Not label-studio-sdk: version 2.1.2 installs 509 MB with its dependencies (pip install into an empty venv,
2026-12-01), twice Lambda's 250 MB limit for a function and its layers, and its client imports Faker and
jsf. The tests drive Label Studio with the SDK and a real browser, as people and other tools do.

Errors are sorted for the launcher's retry rule: the server down, 5xx, 429 or a timeout is
`LabelStudioUnavailable` (transient: SQS delivers the message again); a refused token or a missing project
is a `PermanentBackendError` whose message says what to fix.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import urllib3

from labeling_pipeline.backends import PermanentBackendError, TransientBackendError

# The data manager's page size for tasks (its own UI asks for 100 at a time) and the projects API's maximum
# (`max_page_size` in label_studio/projects/api.py). Larger task pages save little, the cost being per task:
# 0.98x the time at 1,000 and 0.84x at 2,000 (benchmarks/label_studio_side_by_side.py --parts export).
PAGE_SIZE = 100
# Task ids per request to the export endpoint (`ids[]` in the query string): 300 ids of up to 8 digits keep the URL
# near 6 KB, under CloudFront's 8,192-byte limit on a URL (Amazon CloudFront Developer Guide, "Quotas").
EXPORT_CHUNK = 300
# The format Label Studio's data manager parses a Datetime filter's value with (DATETIME_FORMAT in
# label_studio/data_manager/managers.py), a time in UTC (its TIME_ZONE).
FILTER_DATETIME = "%Y-%m-%dT%H:%M:%S.%fZ"
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0


class LabelStudioUnavailable(TransientBackendError):
    """Label Studio did not answer, or answered 5xx or 429: it may answer later. `maybe_done`: the request
    reached it (or may have), so what it asked for may have been done, or may still be under way; only a
    refused connection and a 429 say for sure that nothing was done. `finished`: the answer is Label Studio's
    own error (a 500 with the body of custom_exception_handler, label_studio/core/utils/common.py), so it has
    stopped working on the request, its database-locked replays included (DatabaseIsLockedRetryMiddleware in
    label_studio/core/middleware.py replays before it answers): what it did is all it will do."""

    def __init__(self, message: str, *, maybe_done: bool, finished: bool = False) -> None:
        super().__init__(message)
        self.maybe_done = maybe_done
        self.finished = finished


class PredictionsNotMade(Exception):
    """An import made its tasks but fewer predictions than it carried (``prediction_count`` of the answer):
    the tasks are there, and a new import would make them twice."""

    def __init__(self, task_ids: list[int], sent: int, made: int | None) -> None:
        super().__init__(f"Label Studio made {made} of the {sent} predictions imported with tasks {task_ids[:5]}...")
        self.task_ids = task_ids
        self.sent = sent
        self.made = made


class LabelStudioRefused(PermanentBackendError):
    """A 4xx that no retry will change."""

    def __init__(self, message: str, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        # The answer's own {"detail": ...}, when it has one: what Label Studio (or its access rules) said.
        self.detail = detail


class LabelStudioNotFound(LabelStudioRefused):
    pass


class LabelStudioApi:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        pool: urllib3.PoolManager | None = None,
        timeout: urllib3.Timeout | None = None,
        task_page_size: int = PAGE_SIZE,
        refresh_token: Callable[[], str] | None = None,
    ) -> None:
        """refresh_token: reads the token again when Label Studio refuses the one held (401): after a rotation
        (`rotate-credentials`), a warm function holds the old one until then."""
        self.base_url = base_url.rstrip("/")
        self._refresh_token = refresh_token
        self.task_page_size = task_page_size
        self._headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self._pool = pool or urllib3.PoolManager(num_pools=2, maxsize=4)
        self._timeout = timeout or urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)

    # --- transport ------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        try:
            return self._request(method, path, body=body, query=query)
        except LabelStudioRefused as error:
            if error.status != 401 or self._refresh_token is None:
                raise
            token = self._refresh_token()
            if self._headers["Authorization"] == f"Token {token}":
                raise
            self._headers["Authorization"] = f"Token {token}"
            return self._request(method, path, body=body, query=query)

    def _request(self, method: str, path: str, *, body: Any, query: Mapping[str, Any] | None) -> Any:
        url = f"{self.base_url}{path}"
        if query:
            url += "?" + urlencode(query, doseq=True)
        try:
            response = self._pool.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as error:
            # No connection (refused, or not made in time; NewConnectionError is a ConnectTimeoutError): the
            # request was never sent. Anything later (a read timeout, a dropped connection) may follow its work.
            raise LabelStudioUnavailable(
                f"Label Studio at {self.base_url} did not answer {method} {path}: {error}",
                maybe_done=not isinstance(error, urllib3.exceptions.ConnectTimeoutError),
            ) from None
        status = response.status
        text = response.data.decode("utf-8", "replace")
        if status >= 500 or status == 429:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.base_url} answered {method} {path} with HTTP {status}: {text[:200]}",
                maybe_done=status != 429,
                finished=status == 500 and _own_error(text),
            )
        if status in (401, 403):
            raise LabelStudioRefused(
                f"Label Studio at {self.base_url} refused the pipeline's API token (HTTP {status} on {method} "
                f"{path}): put a valid token of an active Label Studio user in the API token secret, then "
                "redrive the dead-letter queue",
                status,
            )
        if status == 404:
            raise LabelStudioNotFound(
                f"Label Studio at {self.base_url} has no {path} (HTTP 404)", status, _detail(text)
            )
        if status >= 400:
            raise LabelStudioRefused(
                f"Label Studio at {self.base_url} refused {method} {path} with HTTP {status}: {text[:500]}",
                status,
                _detail(text),
            )
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            # A proxy's HTML error page with a 200: the server is not (yet) the API we expect.
            raise LabelStudioUnavailable(
                f"Label Studio at {self.base_url} answered {method} {path} with something that is not JSON: "
                f"{text[:120]!r}",
                maybe_done=True,
            ) from None

    # --- projects -------------------------------------------------------------------------------
    def projects_containing(self, text: str, fields: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every project whose title contains `text`, in any case (the title filter is ``icontains``:
        ProjectFilterSet in label_studio/projects/api.py), by id. `fields` narrows the answer to those fields
        and the counts named among them (``include``); without it every count is computed."""
        found: list[dict[str, Any]] = []
        page = 1
        query: dict[str, Any] = {"title": text, "page_size": PAGE_SIZE, "ordering": "id"}
        if fields:
            query["include"] = ",".join(fields)
        while True:
            answer = self.request("GET", "/api/projects", query={**query, "page": page})
            found.extend(answer["results"])
            if not answer.get("next"):
                return sorted(found, key=lambda project: int(project["id"]))
            page += 1

    def project(self, project_id: int, fields: Sequence[str] = ()) -> dict[str, Any]:
        query = {"include": ",".join(fields)} if fields else None
        found: dict[str, Any] = self.request("GET", f"/api/projects/{project_id}", query=query)
        return found

    def create_project(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", "/api/projects", body=dict(fields))
        return created

    def update_project(self, project_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        updated: dict[str, Any] = self.request("PATCH", f"/api/projects/{project_id}", body=dict(fields))
        return updated

    def delete_project(self, project_id: int) -> None:
        """Deletes the project with its tasks (label_studio/projects/api.py, ProjectAPI.perform_destroy)."""
        with contextlib.suppress(LabelStudioNotFound):  # already gone
            self.request("DELETE", f"/api/projects/{project_id}")

    # --- tasks ----------------------------------------------------------------------------------
    def tasks(
        self,
        project_id: int,
        data_filters: Mapping[str, str],
        *,
        with_annotations: bool,
        updated_after: str | None = None,
    ) -> Iterator[dict]:
        """The project's tasks whose data fields equal `data_filters` (and, with `updated_after`, whose
        ``updated_at`` is later than that time, in FILTER_DATETIME), by id, page by page."""
        page = 1
        while True:
            extra = [_updated_after(updated_after)] if updated_after is not None else []
            params = self._task_query(project_id, data_filters, extra, ["tasks:id"], self.task_page_size)
            params["page"] = page
            if with_annotations:
                params["fields"] = "all"
            try:
                answer = self.request("GET", "/api/tasks", query=params)
            except LabelStudioNotFound:
                # The data manager answers a page past the end with 404; on the first page it means the
                # project is gone (its first page is there even when empty).
                if page == 1:
                    raise
                return
            tasks = answer.get("tasks", [])
            yield from tasks
            if len(tasks) < self.task_page_size:
                return
            page += 1

    @staticmethod
    def _task_query(
        project_id: int,
        data_filters: Mapping[str, str],
        extra: Sequence[Mapping[str, Any]],
        ordering: Sequence[str],
        page_size: int,
    ) -> dict[str, Any]:
        items = [
            {"filter": f"filter:tasks:data.{field}", "operator": "equal", "type": "String", "value": value}
            for field, value in data_filters.items()
        ]
        query = {"filters": {"conjunction": "and", "items": [*items, *extra]}, "ordering": list(ordering)}
        return {
            "project": project_id,
            "page_size": page_size,
            "query": json.dumps(query),
            # The task's data as imported (s3://...), not the links Label Studio makes for a browser.
            "resolve_uri": "false",
        }

    def count_matching(self, project_id: int, data_filters: Mapping[str, str]) -> int:
        """How many of the project's tasks match `data_filters`, in one request whatever their number (the data
        manager's ``total``)."""
        return self._total(self._task_query(project_id, data_filters, [], [], 1))

    def export_tasks(self, project_id: int, task_ids: Sequence[int]) -> list[dict[str, Any]]:
        """These tasks of the project as Label Studio's JSON export writes them (annotations in full, predictions
        as ids), answered or not; a task that is gone is left out. EXPORT_CHUNK ids at most."""
        if len(task_ids) > EXPORT_CHUNK:
            raise ValueError(f"{len(task_ids)} task ids in one export request; at most {EXPORT_CHUNK}")
        query = {
            "exportType": "JSON",
            "download_all_tasks": "true",
            "ids[]": [str(int(task_id)) for task_id in task_ids],
        }
        found: list[dict[str, Any]] = self.request("GET", f"/api/projects/{project_id}/export", query=query)
        return found

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """The tasks' ids, in the order given. Raises PredictionsNotMade when the tasks carried predictions and
        the answer counts fewer (its ``prediction_count``, data_import/api.py ImportAPI.sync_import)."""
        answer = self.request(
            "POST", f"/api/projects/{project_id}/import", body=list(tasks), query={"return_task_ids": "true"}
        )
        task_ids = [int(task_id) for task_id in answer.get("task_ids", [])]
        sent = sum(len(task.get("predictions") or ()) for task in tasks)
        made = answer.get("prediction_count")
        if sent and made != sent:
            raise PredictionsNotMade(task_ids, sent, made)
        return task_ids

    def create_prediction(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """One prediction of one task (``task``, ``result``, ``score``, ``model_version``): PredictionAPI in
        label_studio/tasks/api.py, each checked on its own (Prediction.prepare_prediction_result)."""
        created: dict[str, Any] = self.request("POST", "/api/predictions/", body=dict(fields))
        return created

    def model_versions(self, project_id: int) -> dict[str, int]:
        """The model versions of the project's predictions, with their counts (Project.get_model_versions)."""
        found = self.request("GET", f"/api/projects/{project_id}/model-versions/") or {}
        return {str(version): int(count or 0) for version, count in found.items()}

    def delete_task(self, task_id: int) -> None:
        with contextlib.suppress(LabelStudioNotFound):  # already gone
            self.request("DELETE", f"/api/tasks/{task_id}")

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """The data manager's bulk delete of these tasks of the project, in one request (the action
        ``delete_tasks`` in label_studio/data_manager/actions/basic.py)."""
        self.request(
            "POST",
            "/api/dm/actions",
            query={"id": "delete_tasks", "project": project_id},
            body={"selectedItems": {"all": False, "included": [int(task_id) for task_id in task_ids]}},
        )

    def count_tasks(self, project_id: int, *, id_at_most: int) -> int:
        """How many of the project's tasks have an id up to `id_at_most` (the data manager's ``total``)."""
        up_to = {"filter": "filter:tasks:id", "operator": "less_or_equal", "type": "Number", "value": id_at_most}
        return self._total(self._task_query(project_id, {}, [up_to], [], 1))

    def _total(self, params: Mapping[str, Any]) -> int:
        answer = self.request("GET", "/api/tasks", query=params)
        return int(answer.get("total") or 0)

    # --- storages and webhooks --------------------------------------------------------------------
    def s3_import_storages(self, project_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request("GET", "/api/storages/s3", query={"project": project_id})
        return found

    def create_s3_import_storage(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", "/api/storages/s3", body=dict(fields))
        return created

    def update_s3_import_storage(self, storage_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        updated: dict[str, Any] = self.request("PATCH", f"/api/storages/s3/{storage_id}", body=dict(fields))
        return updated

    def delete_s3_import_storage(self, storage_id: int) -> None:
        with contextlib.suppress(LabelStudioNotFound):  # already gone
            self.request("DELETE", f"/api/storages/s3/{storage_id}")

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request("GET", "/api/webhooks/", query={"project": project_id})
        return found

    def create_webhook(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", "/api/webhooks/", body=dict(fields))
        return created

    def update_webhook(self, webhook_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        updated: dict[str, Any] = self.request("PATCH", f"/api/webhooks/{webhook_id}/", body=dict(fields))
        return updated

    def delete_webhook(self, webhook_id: int) -> None:
        with contextlib.suppress(LabelStudioNotFound):  # already gone
            self.request("DELETE", f"/api/webhooks/{webhook_id}/")

    # --- users ----------------------------------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request("GET", "/api/users")
        return found

    def current_user(self) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", "/api/current-user/whoami")
        return found


def _updated_after(moment: str) -> dict[str, Any]:
    return {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": moment}


def _own_error(text: str) -> bool:
    """Whether an error's body is the one Label Studio's exception handler writes (not a proxy's page)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("status_code") == 500 and "version" in answer


def _detail(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return ""
    return str(answer.get("detail", "")) if isinstance(answer, dict) else ""
