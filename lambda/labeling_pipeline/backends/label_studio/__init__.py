"""Label Studio Community as a labeling backend: the choice for an AWS account without Ground Truth.

- api.py: the REST calls, over urllib3
- parts.py: the deployment's projects of at most projectTaskLimit tasks each (part 1 titled projectTitle)
- project.py: the projects, their S3 storage (presigned image links) and their webhook, kept in step
- service.py: jobs as tagged tasks of one part each (start exactly once, describe, read results)
- results.py: tasks read into the neutral stream (percent to pixels, rotation, clipping, annotators)
- events.py: the webhook (annotation created, updated, deleted) as a job signal
- workers.py: Label Studio accounts, for `gt-labeling workers`
- settings.py: its own settings
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache

from labeling_pipeline.backends import BackendParts, Limits, MakeClient
from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.events import parse_job_event
from labeling_pipeline.backends.label_studio.results import read_tasks
from labeling_pipeline.backends.label_studio.service import LabelStudioBackend
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.settings import PipelineSettings

NAME = "label-studio"
# What a browser shows in Label Studio's image tag; the size bound keeps a worker's page usable (Label Studio
# itself sets none for cloud storage).
LIMITS = Limits(image_suffixes=(".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"), max_image_bytes=40 * 1024 * 1024)


class Resources:
    """Keys of the deployed resources the stack hands to the functions (BACKEND_RESOURCES)."""

    URL = "url"  # Label Studio's base URL as the functions reach it
    BUCKET = "bucket"  # the pipeline's bucket, where the raw task JSON of an ended job goes
    API_TOKEN_SECRET_ARN = "apiTokenSecretArn"  # the pipeline's API token (an admin's legacy token)
    WEBHOOK_SECRET_ARN = "webhookSecretArn"  # the header value the webhook carries


def secret_reader(make_client: MakeClient, region: str, secret_id: str) -> Callable[[], str]:
    """The secret's value, read from Secrets Manager on first use and kept for the container's life."""

    @cache
    def read() -> str:
        if not secret_id:
            return ""
        answer = make_client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_id)
        return str(answer["SecretString"])

    return read


def api(resources: Mapping[str, str], make_client: MakeClient, region: str) -> LabelStudioApi:
    token = secret_reader(make_client, region, resources.get(Resources.API_TOKEN_SECRET_ARN, ""))()
    return LabelStudioApi(resources.get(Resources.URL, ""), token)


def build(
    settings: PipelineSettings, resources: Mapping[str, str], make_client: MakeClient, region: str
) -> LabelStudioBackend:
    return LabelStudioBackend(
        api(resources, make_client, region),
        make_client("s3", region_name=region),
        settings,
        bucket=resources.get(Resources.BUCKET, ""),
        webhook_secret=secret_reader(make_client, region, resources.get(Resources.WEBHOOK_SECRET_ARN, "")),
    )


def read_results_file(
    lines: Iterable[bytes | str], settings: PipelineSettings | None, attribute: str | None, stats: ReadStats | None
) -> Iterator[LabeledImage]:
    """A tasks file kept locally: the pipeline's tasks.jsonl, or Label Studio's own JSON export."""
    return read_tasks(lines, None, stats)


def supporting_stacks(project_name: str) -> tuple[str, ...]:
    return ()


def workers(resources: Mapping[str, str], make_client: MakeClient, region: str) -> LabelStudioWorkers:
    return LabelStudioWorkers(api(resources, make_client, region))


PARTS = BackendParts(
    name=NAME,
    settings=LabelStudioSettings,
    limits=LIMITS,
    build=build,
    parse_job_event=parse_job_event,
    read_results_file=read_results_file,
    supporting_stacks=supporting_stacks,
    workers=workers,
)
