"""The settings that only the deployment reads (the Lambda functions never see them).

Limits: Lambda's SQS event source takes batches of up to 10,000 messages and a batching window of up to
300 s (at least 1 s above 10 messages). KMS key ARNs:
https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-ARN (a key id is a UUID,
or ``mrk-`` and 32 hex digits for a multi-Region key).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import StrictInt, StrictStr, model_validator

from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.settings import Name, PipelineSettings, SettingsModel, between, length, to_json

MAX_SQS_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW = 300
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# labeling.kmsKey: "none" (AWS-managed encryption, the default), "create" (the stack creates a
# customer-managed key with rotation), or the ARN of an existing symmetric key (not an alias: key
# policies and IAM grants name the key itself).
KMS_KEY_NONE = "none"
KMS_KEY_CREATE = "create"
KMS_KEY_ARN_PATTERN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):key/"
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)

Emails = tuple[StrictStr, ...]


def emails_problem(emails: tuple[str, ...]) -> str | None:
    for email in emails:
        if not EMAIL_PATTERN.match(email):
            return f"{email!r} is not an email address"
    lowered = [email.lower() for email in emails]
    if len(set(lowered)) != len(lowered):
        return "an email address is listed twice"
    return None


class DeploymentSettings(SettingsModel):
    project_name: Annotated[Name, length(1, 40)] = "gt-labeling"
    batching_window_seconds: Annotated[StrictInt, between(0, MAX_BATCHING_WINDOW)] = 60
    batch_size: Annotated[StrictInt, between(1, MAX_SQS_BATCH_SIZE)] = 1000
    removal_policy: Literal["retain", "destroy"] = "retain"
    powertools_layer_version: Annotated[StrictInt, between(1, 10_000)] = 36
    notification_emails: Emails = ()
    kms_key: StrictStr = KMS_KEY_NONE

    @property
    def kms_key_arn(self) -> str | None:
        """The existing key's ARN, or None when the key is created here or there is none."""
        return self.kms_key if self.kms_key not in (KMS_KEY_NONE, KMS_KEY_CREATE) else None

    @model_validator(mode="after")
    def _deployment_rules(self) -> DeploymentSettings:
        if self.batch_size > 10 and self.batching_window_seconds < 1:
            raise ValueError(
                "batchingWindowSeconds: must be at least 1 when batchSize is above 10 (an SQS event source rule)"
            )
        problem = emails_problem(self.notification_emails)
        if problem:
            raise ValueError(f"notificationEmails: {problem}")
        if not (self.kms_key in (KMS_KEY_NONE, KMS_KEY_CREATE) or KMS_KEY_ARN_PATTERN.match(self.kms_key)):
            hint = " (an alias cannot be used: give the key's own ARN)" if ":alias/" in self.kms_key else ""
            raise ValueError(
                f"kmsKey: {self.kms_key!r} must be 'none', 'create', or a KMS key ARN "
                f"like arn:aws:kms:<region>:<account>:key/<key id>{hint}"
            )
        return self


class LabelingConfig(DeploymentSettings, PipelineSettings):
    """Every setting of a deployment that every backend has; each backend's config model extends it."""


def runtime_settings_json(config: LabelingConfig) -> str:
    """What the Lambda functions parse at cold start (EnvironmentVariable.PIPELINE_SETTINGS)."""
    return to_json(config, settings_model(config.backend))
