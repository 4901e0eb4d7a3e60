"""The pipeline stack: bucket, Ground Truth role and event path (composes constructs only)."""

from __future__ import annotations

import json

import aws_cdk as cdk
from constructs import Construct

from stacks.config import KMS_KEY_NONE, LabelingConfig
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.ground_truth_role import GroundTruthRole
from stacks.constructs.job_following import JobFollowing
from stacks.constructs.labeling_bucket import INPUT_PREFIX, LabelingBucket
from stacks.constructs.launch_pipeline import LaunchPipeline
from stacks.constructs.operations_alarms import OperationsAlarms


class LabelingPipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        workteam_arn: str,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY
        self.key = LabelingKey(self, "Encryption", config=config) if config.kms_key != KMS_KEY_NONE else None
        storage = LabelingBucket(
            self, "Storage", removal_policy=removal, encryption_key=self.key.key if self.key else None
        )
        role = GroundTruthRole(self, "GroundTruth", bucket=storage.bucket, key=self.key)
        self.pipeline = LaunchPipeline(
            self,
            "Launch",
            config=config,
            bucket=storage.bucket,
            ground_truth_role=role.role,
            workteam_arn=workteam_arn,
            key=self.key,
        )
        self.storage = storage
        self.following = JobFollowing(
            self,
            "Follow",
            config=config,
            bucket=storage.bucket,
            ledger=self.pipeline.ledger,
            ground_truth_role=role.role,
            workteam_arn=workteam_arn,
            key=self.key,
        )
        self.alarms = OperationsAlarms(
            self,
            "Alarms",
            topic=self.following.topic,
            launcher=self.pipeline.function,
            job_events=self.following.handler.function,
            dead_letter_queues={
                "UploadDeadLetterQueue": self.pipeline.dead_letter_queue,
                "FailedJobEventsQueue": self.following.failed_events,
            },
            key=self.key,
        )
        cdk.CfnOutput(self, "BucketName", value=storage.bucket.bucket_name)
        cdk.CfnOutput(
            self,
            "UploadCommand",
            description="Upload a folder of images; each upload starts labeling",
            value=cdk.Fn.join(
                "",
                [
                    "aws s3 cp --recursive ./my-images s3://",
                    storage.bucket.bucket_name,
                    f"/{INPUT_PREFIX}my-dataset/",
                ],
            ),
        )
        cdk.CfnOutput(self, "GroundTruthRoleArn", value=role.role.role_arn)
        cdk.CfnOutput(self, "UploadQueueUrl", value=self.pipeline.queue.queue_url)
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=self.pipeline.dead_letter_queue.queue_url)
        cdk.CfnOutput(self, "LedgerTableName", value=self.pipeline.ledger.table_name)
        cdk.CfnOutput(self, "ResultsTopicArn", value=self.following.topic.topic_arn)
        # For the gt-labeling CLI: class ids in exports follow this label order.
        cdk.CfnOutput(self, "Labels", value=json.dumps(list(config.labels)))
        cdk.CfnOutput(self, "LabelAttributeName", value=config.label_attribute_name)
        cdk.CfnOutput(self, "FailedJobEventsQueueUrl", value=self.following.failed_events.queue_url)
        if self.key is not None:
            # Whoever uploads, exports or reviews with the CLI needs kms:GenerateDataKey/kms:Decrypt on it.
            cdk.CfnOutput(self, "KmsKeyArn", value=self.key.key_arn)
