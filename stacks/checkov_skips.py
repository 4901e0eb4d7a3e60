"""The one reviewed list of checkov findings that do not apply to this app, each with its reason.

`make test` runs checkov (tests/stacks/test_checkov.py) on every synthesized template, with and
without labeling.kmsKey, and fails on any finding that is not listed here. Each entry is written into
the matching resources' template as checkov's own suppression (``Metadata: checkov: skip: [{id,
comment}]``), so checkov run by hand on ``cdk.out/`` reports the same: the finding as skipped, with
this reason. An entry names the CloudFormation type and, unless it applies to every resource of that
type, the construct paths (under the stack) of the resources it covers; ``without_kms`` entries apply
only to the default deployment, because the customer-managed key fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import IConstruct

from stacks.constructs.nag import AWS_CUSTOM_RESOURCE_PROVIDER
from stacks.deployment_settings import KMS_KEY_NONE, LabelingConfig


@dataclass(frozen=True)
class CheckovSkip:
    check: str
    resource_type: str
    reason: str
    paths: tuple[str, ...] = ()
    without_kms: bool = False

    def applies_to(self, resource: cdk.CfnResource, config: LabelingConfig) -> bool:
        if self.without_kms and config.kms_key != KMS_KEY_NONE:
            return False
        if resource.cfn_resource_type != self.resource_type:
            return False
        path = resource.node.path.split("/", 1)[1] + "/"
        return not self.paths or any(path.startswith(prefix + "/") for prefix in self.paths)


# CDK's own deploy-time Lambdas: the S3 notification writer and the AwsCustomResource provider.
CDK_PROVIDER_FUNCTIONS = (
    "BucketNotificationsHandler050a0587b7544547bf325f094a3db834",
    AWS_CUSTOM_RESOURCE_PROVIDER,
)

SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "CKV_AWS_18",
        "AWS::S3::Bucket",
        "This is the access-log bucket of the labeling bucket; logging it into itself would loop (the same "
        "reason as the cdk-nag AwsSolutions-S1 acknowledgement).",
        paths=("Storage/AccessLogs",),
    ),
    CheckovSkip(
        "CKV_AWS_119",
        "AWS::DynamoDB::Table",
        "The ledger holds object keys, version ids and job names, no image data, and DynamoDB encrypts it at "
        "rest with an AWS-owned key. A customer-managed key would make every ledger reader (both Lambdas and "
        "every CLI user) need key permissions; labeling.kmsKey covers the bucket, queues, topic, logs and "
        "the labeling backend's output.",
        paths=("Launch/Ledger",),
    ),
    CheckovSkip(
        "CKV_AWS_27",
        "AWS::SQS::Queue",
        "The queues are encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which this check does not "
        "recognise: it looks only for KmsMasterKeyId. With labeling.kmsKey they use the customer-managed key "
        "and pass.",
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_26",
        "AWS::SNS::Topic",
        "CloudWatch alarms publish to the results topic, and AWS services cannot publish to a topic under the "
        "AWS-managed key alias/aws/sns. Its messages hold counts, labels and object keys, no image data. "
        "With labeling.kmsKey it is encrypted with the customer-managed key and passes.",
        paths=("Follow/Results",),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "CloudWatch Logs encrypts log data at rest with its own keys; the Lambda logs hold object keys and "
        "job names, no image data. With labeling.kmsKey the log groups use the customer-managed key and pass.",
        paths=("Launch/Launcher/Logs", "Follow/JobEvents/Logs", "Prelabel/Function/Logs"),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        "The launcher is invoked synchronously by its SQS event source, where a Lambda dead-letter queue never "
        "applies: failed messages go to the upload queue's own DLQ after 5 receives (redrive policy). The same "
        "holds for the pre-label function and its queue's DLQ.",
        paths=("Launch/Launcher/Function", "Prelabel/Function/Function"),
    ),
    CheckovSkip(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        "aws-cdk-lib's deploy-time provider, invoked synchronously by CloudFormation, which reports a failure "
        "as a failed deployment; a dead-letter queue would never receive anything.",
        paths=CDK_PROVIDER_FUNCTIONS,
    ),
    CheckovSkip(
        "CKV_AWS_117",
        "AWS::Lambda::Function",
        "The functions call AWS APIs (S3, SQS, DynamoDB, SNS, Secrets Manager) and the labeling service's "
        "public HTTPS endpoint, and reach no private resource; a VPC would add a NAT gateway or interface "
        "endpoints, their cost and a failure point, for no gain.",
    ),
    CheckovSkip(
        "CKV_AWS_115",
        "AWS::Lambda::Function",
        "Reserved concurrency is taken from the account's pool, and the deployment fails where the account's "
        "quota leaves less than Lambda's unreserved minimum (new accounts can have a quota of 10). Load is "
        "bounded elsewhere: the launcher by its SQS batching window, the job-events function by the number of "
        "jobs ending, CDK's providers by deployments.",
    ),
    CheckovSkip(
        "CKV_AWS_173",
        "AWS::Lambda::Function",
        "The environment holds resource names, ARNs and task settings, no secret; Lambda encrypts it at rest "
        "with an AWS-managed key. Nothing would gain from a customer-managed key here.",
        paths=("Launch/Launcher/Function", "Follow/JobEvents/Function", "Prelabel/Function/Function"),
    ),
)


def add_checkov_skips(scope: IConstruct, config: LabelingConfig, backend_skips: tuple[CheckovSkip, ...] = ()) -> None:
    """Write each applicable skip (these and the backend's own) into its resources' ``Metadata.checkov.skip``,
    as checkov reads it."""
    for construct in scope.node.find_all():
        if not cdk.CfnResource.is_cfn_resource(construct):
            continue
        resource: cdk.CfnResource = construct  # type: ignore[assignment]
        skips = [
            {"id": skip.check, "comment": skip.reason}
            for skip in (*SKIPS, *backend_skips)
            if skip.applies_to(resource, config)
        ]
        if skips:
            resource.add_metadata("checkov", {"skip": skips})
