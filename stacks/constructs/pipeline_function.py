"""A Lambda function of this pipeline: the lambda/ folder as its code, Powertools from the AWS-managed
layer, its own log group, and a role whose only built-in right is writing to that log group."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from labeling_pipeline.names import EnvironmentVariable
from stacks.constructs.encryption_key import LabelingKey

LAMBDA_SOURCE = Path(__file__).resolve().parents[2] / "lambda"
# Powertools for AWS Lambda ships as an AWS-managed layer, published by account 017000801446:
# https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer
POWERTOOLS_LAYER = "arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:{version}"


class PipelineFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        handler: str,
        environment: Mapping[str, str],
        powertools_layer_version: int,
        metric_namespace: str,
        timeout: cdk.Duration,
        memory_size: int,
        service_name: str,
        dead_letter_queue: sqs.IQueue | None = None,
        key: LabelingKey | None = None,
        ephemeral_storage: cdk.Size | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=key.key if key else None,
        )
        if key is not None:
            # CloudWatch Logs encrypts with the key itself, so the key policy must let the regional Logs
            # service principal use it for this account's log groups (the encryption context names the
            # log group): https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
            # The log groups' own ARNs would make a cycle (the log group needs the key first).
            log_groups = stack.format_arn(
                service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
            )
            key.allow_service(
                "CloudWatchLogsOfThisAccount",
                f"logs.{stack.region}.amazonaws.com",
                ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                f"CloudWatch Logs (logs.{stack.region}.amazonaws.com) for this account's log groups",
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", POWERTOOLS_LAYER.format(region=stack.region, version=powertools_layer_version)
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=lambda_.Code.from_asset(str(LAMBDA_SOURCE), exclude=["**/__pycache__", "**/*.pyc"]),
            layers=[powertools],
            role=self.role,
            log_group=self.log_group,
            memory_size=memory_size,
            ephemeral_storage_size=ephemeral_storage,
            timeout=timeout,
            # For asynchronous invocations (EventBridge): what still fails after Lambda's two retries
            # is kept here, not dropped.
            dead_letter_queue=dead_letter_queue,
            retry_attempts=2 if dead_letter_queue is not None else None,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": service_name,
                EnvironmentVariable.METRIC_NAMESPACE: metric_namespace,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
