"""Amazon SageMaker Ground Truth as a labeling backend.

Ground Truth has been closed to new AWS customers since 2026-07-30 (existing customers keep it):
https://docs.aws.amazon.com/sagemaker/latest/dg/sms.html . A refusal is turned into
`BackendUnavailableError` with a message that says so.

- service.py: the API calls (CreateLabelingJob, DescribeLabelingJob) and the output manifest's location
- task_inputs.py: input manifest, label categories, worker template (with labeling.prelabel, those of a
  bounding-box adjustment job too: the detector's boxes in the manifest, shown by the template)
- job_parts.py: which of a job's images are shown proposals, and the plain job beside the adjustment job
- results.py: the output manifest read into the neutral stream
- worker_responses.py: with several workers per image, each worker's own boxes (Ground Truth's consolidated
  ones become the image's settled boxes)
- events.py: the job-end signal (EventBridge)
- settings.py: its own settings and its limits on the shared ones
- workers.py: the private workforce's members (Cognito), for the CLI
- regions.json: the regions with the built-in bounding-box tasks (plain and adjustment)
Its infrastructure (user pool, workforce, workteam, execution role, job-end rule) is in
stacks/backends/ground_truth/.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from labeling_pipeline.backends import BackendParts, Limits, MakeClient
from labeling_pipeline.backends.ground_truth.events import parse_job_event
from labeling_pipeline.backends.ground_truth.results import read_output_manifest
from labeling_pipeline.backends.ground_truth.service import GroundTruthBackend
from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from labeling_pipeline.backends.ground_truth.workers import supporting_stacks, workers
from labeling_pipeline.labels import LabeledImage, ReadStats
from labeling_pipeline.settings import PipelineSettings

NAME = "ground-truth"
# Image tasks take .jpg, .jpeg and .png files of at most 40 MB (developer guide, "Supported data formats":
# https://docs.aws.amazon.com/sagemaker/latest/dg/sms-supported-data-formats.html).
LIMITS = Limits(image_suffixes=(".jpg", ".jpeg", ".png"), max_image_bytes=40 * 1024 * 1024)


class Resources:
    """Keys of the deployed resources the stack hands to the functions (BACKEND_RESOURCES)."""

    WORKTEAM_ARN = "workteamArn"
    ROLE_ARN = "roleArn"
    OUTPUT_KMS_KEY_ID = "outputKmsKeyId"  # only with labeling.kmsKey


def build(
    settings: PipelineSettings, resources: Mapping[str, str], make_client: MakeClient, region: str
) -> GroundTruthBackend:
    return GroundTruthBackend(
        make_client("sagemaker", region_name=region),
        make_client("s3", region_name=region),
        settings,
        region=region,
        workteam_arn=resources.get(Resources.WORKTEAM_ARN, ""),
        role_arn=resources.get(Resources.ROLE_ARN, ""),
        output_kms_key_id=resources.get(Resources.OUTPUT_KMS_KEY_ID) or None,
    )


def read_results_file(
    lines: Iterable[bytes | str], settings: PipelineSettings | None, attribute: str | None, stats: ReadStats | None
) -> Iterator[LabeledImage]:
    """A local output manifest: the label attribute is the one asked for, else detected (a file may come from a
    job of another deployment, so the configured attribute is not assumed)."""
    return read_output_manifest(lines, attribute, stats)


PARTS = BackendParts(
    name=NAME,
    settings=GroundTruthSettings,
    limits=LIMITS,
    build=build,
    parse_job_event=parse_job_event,
    read_results_file=read_results_file,
    supporting_stacks=supporting_stacks,
    workers=workers,
)
