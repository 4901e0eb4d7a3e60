"""The checkov findings on Ground Truth's own resources that do not apply, each with its reason (the format
and the rules of stacks/checkov_skips.py)."""

from __future__ import annotations

from stacks.checkov_skips import CheckovSkip

SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "CKV_AWS_26",
        "AWS::SNS::Topic",
        "Ground Truth publishes the workteam's new-task notifications to this topic itself, which the "
        "AWS-managed SNS key forbids; Ground Truth documents no key policy for an encrypted workteam topic, and "
        "labeling.kmsKey's key lives in the pipeline stack, which depends on this one. The messages only say "
        "that tasks are waiting (no image data).",
        paths=("PrivateWorkforce/WorkerNotifications",),
    ),
    CheckovSkip(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "The log group of aws-cdk-lib's AwsCustomResource provider, which runs only at deploy to set the app "
        "client's portal URLs; CloudWatch Logs encrypts it at rest with its own keys. labeling.kmsKey's key "
        "lives in the pipeline stack, which depends on this one, so it cannot encrypt this log group.",
        paths=("PrivateWorkforce/PortalClientUrlsLogs",),
    ),
)
