"""The one typed, validated configuration object, read from `cdk.json` context.

Every setting lives under the context key ``labeling``. A whole object can be given with
``-c labeling='{"labels": ["Car"]}'`` and a single field with ``-c labeling.labels='["Car"]'``.
Validation runs at synth: a bad value fails ``cdk synth`` with the key and the rule it broke.

Limits come from AWS documentation (checked 2026-11):
- Ground Truth input limits: https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-input.html
  (at most 50 labels for bounding boxes, each at most 256 characters; 100,000 objects per job)
- CreateLabelingJob API reference and botocore's SageMaker model (title 1-128, description 1-255,
  workers per object 1-9, task time limit 30-28,800 s for image tasks, availability 60 s to 30 days
  for a private workforce, max concurrent tasks 1-5000, keywords 1-5 matching [A-Za-z0-9]+( [A-Za-z0-9]+)*).
- Lambda SQS event source: batch size up to 10,000, batching window up to 300 s.
- KMS key ARNs: https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-ARN
  (a key id is a UUID, or ``mrk-`` and 32 hex digits for a multi-Region key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

CONTEXT_KEY = "labeling"

MAX_BOUNDING_BOX_LABELS = 50
MAX_LABEL_LENGTH = 256
MAX_TASK_TITLE = 128
MAX_TASK_DESCRIPTION = 255
MAX_WORKERS_PER_OBJECT = 9
MIN_TASK_TIME_LIMIT = 30
MAX_TASK_TIME_LIMIT_IMAGE = 28_800
MIN_TASK_AVAILABILITY = 60
MAX_TASK_AVAILABILITY_PRIVATE = 30 * 24 * 3600
MAX_CONCURRENT_TASKS = 5000
MAX_OBJECTS_PER_JOB = 100_000
MAX_SQS_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW = 300
# A job name is <prefix>-<yyyymmdd>-<12 hex>: 22 characters after the prefix, 63 in all.
MAX_JOB_NAME_PREFIX = 63 - 22

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
KEYWORD_PATTERN = re.compile(r"^[A-Za-z0-9]+( [A-Za-z0-9]+)*$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Cognito domain prefixes: lowercase letters, digits and hyphens; no "aws", "amazon" or "cognito".
DOMAIN_PREFIX_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_DOMAIN_WORDS = ("aws", "amazon", "cognito")
# labeling.kmsKey: "none" (AWS-managed encryption, the default), "create" (the stack creates a
# customer-managed key with rotation), or the ARN of an existing symmetric key (not an alias: key
# policies and IAM grants name the key itself).
KMS_KEY_NONE = "none"
KMS_KEY_CREATE = "create"
KMS_KEY_ARN_PATTERN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):key/"
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


class ConfigError(ValueError):
    """A configuration value broke a rule; the message names the key and the rule."""


@dataclass(frozen=True)
class LabelingConfig:
    project_name: str = "gt-labeling"
    labels: tuple[str, ...] = ("Dog", "Cat")
    worker_emails: tuple[str, ...] = ()
    task_title: str = "Draw a box around each object"
    task_description: str = "Draw a tight bounding box around every visible object of each label."
    task_keywords: tuple[str, ...] = ("Images", "Bounding Box")
    short_instructions: str = "Draw one tight box around each visible object and pick its label."
    full_instructions: str = (
        "Draw one box per object. Keep the box tight to the visible edges. "
        "Include partly hidden objects; leave out reflections and drawings of objects."
    )
    workers_per_image: int = 1
    task_time_limit_seconds: int = 600
    task_availability_seconds: int = 10 * 24 * 3600
    max_concurrent_task_count: int = 1000
    batching_window_seconds: int = 60
    batch_size: int = 1000
    max_images_per_job: int = 1000
    label_attribute_name: str = "labels"
    job_name_prefix: str = "bbox"
    removal_policy: str = "retain"
    cognito_domain_prefix: str | None = None
    powertools_layer_version: int = 36
    notification_emails: tuple[str, ...] = ()
    kms_key: str = KMS_KEY_NONE

    @property
    def kms_key_arn(self) -> str | None:
        """The existing key's ARN, or None when the key is created here or there is none."""
        return self.kms_key if self.kms_key not in (KMS_KEY_NONE, KMS_KEY_CREATE) else None


_JSON_NAMES = {
    "project_name": "projectName",
    "labels": "labels",
    "worker_emails": "workerEmails",
    "task_title": "taskTitle",
    "task_description": "taskDescription",
    "task_keywords": "taskKeywords",
    "short_instructions": "shortInstructions",
    "full_instructions": "fullInstructions",
    "workers_per_image": "workersPerImage",
    "task_time_limit_seconds": "taskTimeLimitSeconds",
    "task_availability_seconds": "taskAvailabilitySeconds",
    "max_concurrent_task_count": "maxConcurrentTaskCount",
    "batching_window_seconds": "batchingWindowSeconds",
    "batch_size": "batchSize",
    "max_images_per_job": "maxImagesPerJob",
    "label_attribute_name": "labelAttributeName",
    "job_name_prefix": "jobNamePrefix",
    "removal_policy": "removalPolicy",
    "cognito_domain_prefix": "cognitoDomainPrefix",
    "powertools_layer_version": "powertoolsLayerVersion",
    "notification_emails": "notificationEmails",
    "kms_key": "kmsKey",
}
_FIELD_BY_JSON = {json_name: name for name, json_name in _JSON_NAMES.items()}


def _key(name: str) -> str:
    return f"{CONTEXT_KEY}.{_JSON_NAMES[name]}"


def _decode(value: Any) -> Any:
    """`-c` values arrive as strings; JSON lists, objects and numbers are decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def merge_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Gather ``labeling`` and any ``labeling.<field>`` overrides into one raw mapping."""
    base = _decode(context.get(CONTEXT_KEY, {}))
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise ConfigError(f"{CONTEXT_KEY}: must be a JSON object, got {type(base).__name__}")
    raw = dict(base)
    prefix = CONTEXT_KEY + "."
    for key, value in context.items():
        if key.startswith(prefix):
            raw[key[len(prefix) :]] = _decode(value)
    return raw


def _string(raw: Mapping[str, Any], name: str, default: str, max_len: int, min_len: int = 1) -> str:
    value = raw.get(_JSON_NAMES[name], default)
    if not isinstance(value, str):
        raise ConfigError(f"{_key(name)}: must be a string, got {value!r}")
    if not min_len <= len(value) <= max_len:
        raise ConfigError(f"{_key(name)}: must be {min_len} to {max_len} characters, got {len(value)}")
    return value


def _single_line(raw: Mapping[str, Any], name: str, default: str, max_len: int) -> str:
    # The model's pattern for TaskDescription is `.+`, which the service (Java regex) reads without line breaks.
    value = _string(raw, name, default, max_len)
    if any(char in value for char in "\r\n\u0085\u2028\u2029"):
        raise ConfigError(f"{_key(name)}: must be one line (CreateLabelingJob refuses line breaks)")
    return value


def _integer(raw: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = raw.get(_JSON_NAMES[name], default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_key(name)}: must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{_key(name)}: must be between {low} and {high}, got {value}")
    return value


def _string_list(raw: Mapping[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(_JSON_NAMES[name], list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{_key(name)}: must be a list of strings, got {value!r}")
    return tuple(value)


def _name(raw: Mapping[str, Any], name: str, default: str, max_len: int) -> str:
    value = _string(raw, name, default, max_len)
    if not NAME_PATTERN.match(value):
        raise ConfigError(
            f"{_key(name)}: {value!r} must be letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


def _validate_labels(labels: tuple[str, ...]) -> None:
    key = _key("labels")
    if not labels:
        raise ConfigError(f"{key}: at least one label is required")
    if len(labels) > MAX_BOUNDING_BOX_LABELS:
        raise ConfigError(
            f"{key}: Ground Truth allows at most {MAX_BOUNDING_BOX_LABELS} labels for bounding boxes, got {len(labels)}"
        )
    seen: set[str] = set()
    for label in labels:
        if not label.strip():
            raise ConfigError(f"{key}: labels must not be empty or blank")
        if len(label) > MAX_LABEL_LENGTH:
            raise ConfigError(f"{key}: label {label[:20]!r}... is longer than {MAX_LABEL_LENGTH} characters")
        if label in seen:
            raise ConfigError(f"{key}: duplicate label {label!r}; labels must be unique")
        seen.add(label)


def _validate_emails(name: str, emails: tuple[str, ...]) -> None:
    for email in emails:
        if not EMAIL_PATTERN.match(email):
            raise ConfigError(f"{_key(name)}: {email!r} is not an email address")
    lowered = [email.lower() for email in emails]
    if len(set(lowered)) != len(lowered):
        raise ConfigError(f"{_key(name)}: an email address is listed twice")


def _kms_key(raw: Mapping[str, Any]) -> str:
    value = raw.get(_JSON_NAMES["kms_key"], KMS_KEY_NONE)
    if not isinstance(value, str):
        raise ConfigError(f"{_key('kms_key')}: must be a string, got {value!r}")
    if value in (KMS_KEY_NONE, KMS_KEY_CREATE) or KMS_KEY_ARN_PATTERN.match(value):
        return value
    hint = " (an alias cannot be used: give the key's own ARN)" if ":alias/" in value else ""
    raise ConfigError(
        f"{_key('kms_key')}: {value!r} must be 'none', 'create', or a KMS key ARN "
        f"like arn:aws:kms:<region>:<account>:key/<key id>{hint}"
    )


def parse_config(context: Mapping[str, Any]) -> LabelingConfig:
    """Build the validated config from CDK context (a plain mapping, for testability)."""
    raw = merge_context(context)
    unknown = sorted(set(raw) - set(_FIELD_BY_JSON))
    if unknown:
        raise ConfigError(f"{CONTEXT_KEY}: unknown setting(s) {', '.join(unknown)}")
    default = LabelingConfig()

    labels = _string_list(raw, "labels", default.labels)
    _validate_labels(labels)
    worker_emails = _string_list(raw, "worker_emails", default.worker_emails)
    _validate_emails("worker_emails", worker_emails)
    notification_emails = _string_list(raw, "notification_emails", default.notification_emails)
    _validate_emails("notification_emails", notification_emails)

    keywords = _string_list(raw, "task_keywords", default.task_keywords)
    if not 1 <= len(keywords) <= 5:
        raise ConfigError(f"{_key('task_keywords')}: must hold 1 to 5 keywords, got {len(keywords)}")
    for keyword in keywords:
        if not KEYWORD_PATTERN.match(keyword):
            raise ConfigError(
                f"{_key('task_keywords')}: {keyword!r} must be letters and digits separated by single spaces"
            )

    label_attribute_name = _name(raw, "label_attribute_name", default.label_attribute_name, 127)
    if label_attribute_name.endswith(("-metadata", "-ref")):
        raise ConfigError(
            f"{_key('label_attribute_name')}: must not end in '-metadata' or '-ref' (Ground Truth reserves them)"
        )

    removal_policy = _string(raw, "removal_policy", default.removal_policy, 10)
    if removal_policy not in ("retain", "destroy"):
        raise ConfigError(f"{_key('removal_policy')}: must be 'retain' or 'destroy', got {removal_policy!r}")

    domain_prefix = raw.get(_JSON_NAMES["cognito_domain_prefix"])
    if domain_prefix is not None:
        if not isinstance(domain_prefix, str) or not DOMAIN_PREFIX_PATTERN.match(domain_prefix):
            raise ConfigError(
                f"{_key('cognito_domain_prefix')}: {domain_prefix!r} must be 1-63 lowercase letters, digits "
                "or hyphens, not starting or ending with a hyphen"
            )
        if any(word in domain_prefix for word in RESERVED_DOMAIN_WORDS):
            raise ConfigError(
                f"{_key('cognito_domain_prefix')}: {domain_prefix!r} must not contain 'aws', 'amazon' or 'cognito'"
            )

    batch_size = _integer(raw, "batch_size", default.batch_size, 1, MAX_SQS_BATCH_SIZE)
    batching_window = _integer(raw, "batching_window_seconds", default.batching_window_seconds, 0, MAX_BATCHING_WINDOW)
    if batch_size > 10 and batching_window < 1:
        raise ConfigError(
            f"{_key('batching_window_seconds')}: must be at least 1 when batchSize is above 10 "
            "(an SQS event source rule)"
        )

    return LabelingConfig(
        project_name=_name(raw, "project_name", default.project_name, 40),
        labels=labels,
        worker_emails=worker_emails,
        task_title=_string(raw, "task_title", default.task_title, MAX_TASK_TITLE),
        task_description=_single_line(raw, "task_description", default.task_description, MAX_TASK_DESCRIPTION),
        task_keywords=keywords,
        short_instructions=_string(raw, "short_instructions", default.short_instructions, 10_000),
        full_instructions=_string(raw, "full_instructions", default.full_instructions, 100_000),
        workers_per_image=_integer(raw, "workers_per_image", default.workers_per_image, 1, MAX_WORKERS_PER_OBJECT),
        task_time_limit_seconds=_integer(
            raw,
            "task_time_limit_seconds",
            default.task_time_limit_seconds,
            MIN_TASK_TIME_LIMIT,
            MAX_TASK_TIME_LIMIT_IMAGE,
        ),
        task_availability_seconds=_integer(
            raw,
            "task_availability_seconds",
            default.task_availability_seconds,
            MIN_TASK_AVAILABILITY,
            MAX_TASK_AVAILABILITY_PRIVATE,
        ),
        max_concurrent_task_count=_integer(
            raw, "max_concurrent_task_count", default.max_concurrent_task_count, 1, MAX_CONCURRENT_TASKS
        ),
        batching_window_seconds=batching_window,
        batch_size=batch_size,
        max_images_per_job=_integer(raw, "max_images_per_job", default.max_images_per_job, 1, MAX_OBJECTS_PER_JOB),
        label_attribute_name=label_attribute_name,
        job_name_prefix=_name(raw, "job_name_prefix", default.job_name_prefix, MAX_JOB_NAME_PREFIX),
        removal_policy=removal_policy,
        cognito_domain_prefix=domain_prefix,
        notification_emails=notification_emails,
        powertools_layer_version=_integer(raw, "powertools_layer_version", default.powertools_layer_version, 1, 10_000),
        kms_key=_kms_key(raw),
    )


def task_settings_for_lambda(config: LabelingConfig) -> dict[str, Any]:
    """The part of the config the launcher needs at run time, passed as one JSON env var."""
    return {
        "labels": list(config.labels),
        "taskTitle": config.task_title,
        "taskDescription": config.task_description,
        "taskKeywords": list(config.task_keywords),
        "shortInstructions": config.short_instructions,
        "fullInstructions": config.full_instructions,
        "workersPerImage": config.workers_per_image,
        "taskTimeLimitSeconds": config.task_time_limit_seconds,
        "taskAvailabilitySeconds": config.task_availability_seconds,
        "maxConcurrentTaskCount": config.max_concurrent_task_count,
        "labelAttributeName": config.label_attribute_name,
        "jobNamePrefix": config.job_name_prefix,
        "maxImagesPerJob": config.max_images_per_job,
    }


assert set(_JSON_NAMES) == {f.name for f in fields(LabelingConfig)}, "every field needs a JSON name"
