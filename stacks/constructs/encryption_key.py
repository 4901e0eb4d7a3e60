"""The optional customer-managed KMS key (``labeling.kmsKey``) for the bucket, the queues, the results
topic, the Lambda log groups and the labeling backend's output.

- ``create``: the stack creates a symmetric key with yearly automatic rotation. Its key policy keeps
  CDK's default statement (the account's IAM policies decide, so the Lambda roles and CLI users are
  granted by IAM) and gets one statement for each principal that is not an IAM identity of this
  account (services) plus those the labeling backend's documentation asks for, added by the construct
  that wires that service up, through `allow`.
- an existing key ARN: the stack cannot change that key's policy. The same statements are then the
  owner's job; `allow` records each of them and synth prints a warning naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from labeling_pipeline.settings import SettingsError as ConfigError
from stacks.deployment_settings import KMS_KEY_ARN_PATTERN, KMS_KEY_CREATE, LabelingConfig


class LabelingKey(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LabelingConfig) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.created = config.kms_key == KMS_KEY_CREATE
        # Statements an existing key's owner must add, by Sid (empty for a created key).
        self.owner_statements: dict[str, iam.PolicyStatement] = {}
        self._sids: set[str] = set()
        self.key: kms.IKey
        if self.created:
            retain = config.removal_policy == "retain"
            # Kept with the bucket by default: objects encrypted under a deleted key are lost for good.
            self.key = kms.Key(
                self,
                "Key",
                description=f"{config.project_name}: labeling bucket, queues, topic, logs and labeling output",
                enable_key_rotation=True,
                removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
                pending_window=None if retain else cdk.Duration.days(7),
            )
        else:
            arn = config.kms_key_arn
            assert arn is not None, "parse_config only lets 'none', 'create' or a key ARN through"
            match = KMS_KEY_ARN_PATTERN.match(arn)
            assert match is not None
            # SSE-KMS, SQS and SNS need a key in the resources' own region.
            if not cdk.Token.is_unresolved(stack.region) and match["region"] != stack.region:
                raise ConfigError(
                    f"labeling.kmsKey: the key is in {match['region']} but the stack deploys to {stack.region}; "
                    "S3, SQS and SNS need a key in their own region"
                )
            self.key = kms.Key.from_key_arn(self, "Key", arn)

    @property
    def key_arn(self) -> str:
        return self.key.key_arn

    def use_statement(self, actions: Sequence[str] = ("kms:Decrypt", "kms:GenerateDataKey")) -> iam.PolicyStatement:
        """The identity-policy statement that lets one of this stack's roles use the key."""
        return iam.PolicyStatement(sid="UseLabelingKey", actions=list(actions), resources=[self.key_arn])

    def allow_service(
        self,
        sid: str,
        service: str,
        actions: Sequence[str],
        who: str,
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        """Let an AWS service principal use the key (a key policy statement; IAM cannot grant services)."""
        self.allow(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.ServicePrincipal(service)],
                actions=list(actions),
                resources=["*"],
                conditions=dict(conditions) if conditions else None,
            ),
            who,
        )

    def allow(self, statement: iam.PolicyStatement, who: str) -> None:
        """Let a principal that IAM policies cannot grant (a service, or a role the docs name) use the key.

        Every statement has a Sid, so that a construct used twice (two log groups) adds it once.
        """
        sid = statement.sid
        assert sid, "key policy statements carry a Sid"
        if sid in self._sids:
            return
        self._sids.add(sid)
        if self.created:
            self.key.add_to_resource_policy(statement)
            return
        self.owner_statements[sid] = statement
        actions = ", ".join(statement.actions)
        cdk.Annotations.of(self).add_warning_v2(
            f"labeling:kms-key-policy:{sid}",
            f"labeling.kmsKey is an existing key: its key policy must allow {who} to use {actions} "
            f"(statement {sid}; see docs/security.md, section Customer-managed KMS key)",
        )


def queue_encryption(key: LabelingKey | None) -> tuple[sqs.QueueEncryption, kms.IKey | None]:
    """SSE-SQS by default; the customer-managed key when there is one."""
    if key is None:
        return sqs.QueueEncryption.SQS_MANAGED, None
    return sqs.QueueEncryption.KMS, key.key
