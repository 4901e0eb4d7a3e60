"""The Label Studio requests a benchmark's pipeline makes, each timed at the client: `time_requests()` wraps
`LabelStudioApi.request` for the whole process, and `api_requests` holds (kind, seconds) in call order, a kind
being the method and the path without its ids; `exported_task_ids` the number of task ids of each request to the
export endpoint."""

from __future__ import annotations

import time
from typing import Any

from labeling_pipeline.backends.label_studio.api import LabelStudioApi

api_requests: list[tuple[str, float]] = []
exported_task_ids: list[int] = []
_request = LabelStudioApi.request


def _timed_request(self: LabelStudioApi, method: str, path: str, **options: Any) -> Any:
    query = options.get("query") or {}
    if "ids[]" in query:
        exported_task_ids.append(len(query["ids[]"]))
    started = time.perf_counter()
    try:
        return _request(self, method, path, **options)
    finally:
        api_requests.append((f"{method} {path.rstrip('0123456789/')}", time.perf_counter() - started))


def time_requests() -> None:
    LabelStudioApi.request = _timed_request  # type: ignore[method-assign]
