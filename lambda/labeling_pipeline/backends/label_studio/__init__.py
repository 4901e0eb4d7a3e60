"""Label Studio Community as a labeling backend: the choice for an AWS account without Ground Truth.

- api.py: the REST calls, over urllib3
- parts.py: the deployment's projects of at most projectTaskLimit tasks each (part 1 titled projectTitle)
- project.py: the projects, their S3 storage (presigned image links) and their webhook, kept in step
- service.py: jobs as tagged tasks of one part each (start exactly once, describe, read results)
- results.py: tasks read into the neutral stream (percent to pixels, rotation, clipping, annotators)
- events.py: the webhook (annotation created, updated, deleted) as a job signal
- workers.py: Label Studio accounts, for `bbox-labeling workers`
- rotation.py: a new API token and administrator password, for `bbox-labeling rotate-credentials`
- settings.py: its own settings
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

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


class SecretValue:
    """A secret's value, read from Secrets Manager on first use and kept for the container's life; `refresh`
    reads it again (after a rotation: Label Studio refused the kept value)."""

    def __init__(self, make_client: MakeClient, region: str, secret_id: str) -> None:
        self._make_client = make_client
        self._region = region
        self._secret_id = secret_id
        self._value: str | None = None

    def __call__(self) -> str:
        if self._value is None:
            self._value = self._read()
        return self._value

    def refresh(self) -> str:
        self._value = self._read()
        return self._value

    def _read(self) -> str:
        if not self._secret_id:
            return ""
        client = self._make_client("secretsmanager", region_name=self._region)
        return str(client.get_secret_value(SecretId=self._secret_id)["SecretString"])


def secret_reader(make_client: MakeClient, region: str, secret_id: str) -> SecretValue:
    return SecretValue(make_client, region, secret_id)


def api(resources: Mapping[str, str], make_client: MakeClient, region: str) -> LabelStudioApi:
    token = secret_reader(make_client, region, resources.get(Resources.API_TOKEN_SECRET_ARN, ""))
    return LabelStudioApi(resources.get(Resources.URL, ""), token(), refresh_token=token.refresh)


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


def rotate_credentials(resources: Mapping[str, str], make_client: MakeClient, region: str) -> list[str]:
    from labeling_pipeline.backends.label_studio.rotation import rotate_credentials as rotate

    return rotate(resources, make_client, region)


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
    rotate_credentials=lambda resources, make_client, region: rotate_credentials(resources, make_client, region),
)
