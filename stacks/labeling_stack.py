"""The pipeline stack: bucket, event path, job end, and the labeling backend's part (composes constructs only)."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from labeling_pipeline.names import INPUT_PREFIX, StackOutput
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.job_following import JobFollowing
from stacks.constructs.labeling_backend import BackendInfrastructure
from stacks.constructs.labeling_bucket import LabelingBucket
from stacks.constructs.launch_pipeline import LaunchPipeline
from stacks.constructs.operations_alarms import OperationsAlarms
from stacks.constructs.prelabel.stage import SERVICE_NAME as PRELABEL_SERVICE
from stacks.constructs.prelabel.stage import PrelabelStage
from stacks.deployment_settings import KMS_KEY_NONE, LabelingConfig, runtime_settings_json


class LabelingPipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        backend: BackendInfrastructure,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY
        self.key = LabelingKey(self, "Encryption", config=config) if config.kms_key != KMS_KEY_NONE else None
        storage = LabelingBucket(
            self, "Storage", removal_policy=removal, encryption_key=self.key.key if self.key else None
        )
        wiring = backend.wire(self, config=config, bucket=storage.bucket, key=self.key)
        self.pipeline = LaunchPipeline(
            self,
            "Launch",
            config=config,
            bucket=storage.bucket,
            backend=wiring,
            key=self.key,
            receive_uploads=config.prelabel is None,
        )
        self.prelabel = (
            PrelabelStage(
                self,
                "Prelabel",
                config=config,
                prelabel=config.prelabel,
                bucket=storage.bucket,
                launch_queue=self.pipeline.queue,
                key=self.key,
            )
            if config.prelabel is not None
            else None
        )
        self.storage = storage
        self.following = JobFollowing(
            self,
            "Follow",
            config=config,
            bucket=storage.bucket,
            ledger=self.pipeline.ledger,
            backend=wiring,
            key=self.key,
        )
        if self.prelabel is not None:
            self.prelabel.serve_job_end(self.following.handler)
        self.alarms = OperationsAlarms(
            self,
            "Alarms",
            topic=self.following.topic,
            launcher=self.pipeline.function,
            job_events=self.following.handler.function,
            dead_letter_queues={
                "UploadDeadLetterQueue": self.pipeline.dead_letter_queue,
                "FailedJobEventsQueue": self.following.failed_events,
                **({"PrelabelDeadLetterQueue": self.prelabel.dead_letter_queue} if self.prelabel else {}),
            },
            metric_namespace=config.metric_namespace,
            retry_reasons=wiring.retry_reasons,
            key=self.key,
            prelabel=self.prelabel.function if self.prelabel else None,
            prelabel_service=PRELABEL_SERVICE,
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
        # The launcher's queue: a dead-lettered upload is sent back here (past the pre-label stage, if any).
        cdk.CfnOutput(self, "UploadQueueUrl", value=self.pipeline.queue.queue_url)
        if self.prelabel is not None:
            cdk.CfnOutput(self, "PrelabelDeadLetterQueueUrl", value=self.prelabel.dead_letter_queue.queue_url)
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=self.pipeline.dead_letter_queue.queue_url)
        cdk.CfnOutput(self, "LedgerTableName", value=self.pipeline.ledger.table_name)
        cdk.CfnOutput(self, "ResultsTopicArn", value=self.following.topic.topic_arn)
        # For the bbox-labeling CLI: the backend, its settings (class ids in exports follow their label order)
        # and its resources, as the functions get them.
        cdk.CfnOutput(self, StackOutput.LABELING_BACKEND, value=config.backend)
        cdk.CfnOutput(self, StackOutput.PIPELINE_SETTINGS, value=runtime_settings_json(config))
        cdk.CfnOutput(self, StackOutput.BACKEND_RESOURCES, value=self.to_json_string(dict(wiring.resources)))
        cdk.CfnOutput(self, "FailedJobEventsQueueUrl", value=self.following.failed_events.queue_url)
        if self.key is not None:
            # Whoever uploads, exports or reviews with the CLI needs kms:GenerateDataKey/kms:Decrypt on it.
            cdk.CfnOutput(self, "KmsKeyArn", value=self.key.key_arn)
