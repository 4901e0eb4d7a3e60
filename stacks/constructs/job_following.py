"""Follow this stack's labeling jobs to their end: EventBridge rule -> job-events Lambda -> exports,
ledger update, and a summary on the results topic (emails subscribed from config)."""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import LabelingConfig, task_settings_for_lambda
from stacks.constructs.encryption_key import LabelingKey, queue_encryption
from stacks.constructs.labeling_bucket import EXPORTS_PREFIX, JOBS_PREFIX, OUTPUT_PREFIX
from stacks.constructs.nag import acknowledge, acknowledge_wildcard_resources
from stacks.constructs.pipeline_function import PipelineFunction

# Sized from benchmarks/export_throughput.py: 100,000 output lines take about 9 s of CPU for all three
# formats on one core, with 32 MB peak memory that does not grow with the job. 1,024 MB (about 0.6 vCPU)
# leaves room for the ledger's per-image bookkeeping (about 65 MB per 100,000 images), and 10 minutes
# for the exports (about 16 s at 0.6 vCPU), the S3 transfers and 4,000 ledger batch writes.
JOB_EVENTS_MEMORY_MB = 1024
JOB_EVENTS_TIMEOUT = cdk.Duration.minutes(10)
# State-change events: https://docs.aws.amazon.com/sagemaker/latest/dg/sms-monitor-cloud-watch.html
DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"


class JobFollowing(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        bucket: s3.IBucket,
        ledger: dynamodb.ITable,
        ground_truth_role: iam.IRole,
        workteam_arn: str,
        key: LabelingKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # With labeling.kmsKey the topic is encrypted with the customer-managed key; without it, it is not
        # encrypted at all, because the AWS-managed key alias/aws/sns cannot be used by CloudWatch alarms,
        # which publish here (OperationsAlarms gives them the customer-managed key).
        self.topic = sns.Topic(
            self,
            "Results",
            display_name="Labeling job results",
            enforce_ssl=True,
            master_key=key.key if key else None,
        )
        if key is None:
            acknowledge(
                self.topic,
                "AwsSolutions-SNS2",
                "Job summaries hold counts, labels and object keys, no image data; CloudWatch alarms publish here "
                "and cannot use the AWS-managed SNS key. Set labeling.kmsKey to encrypt it with your own key.",
            )
        for email in config.notification_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

        encryption, master_key = queue_encryption(key)
        self.failed_events = sqs.Queue(
            self,
            "FailedJobEvents",
            encryption=encryption,
            encryption_master_key=master_key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        acknowledge(
            self.failed_events,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the job-events function and of its rule target: "
            "events that still fail after the retries wait here.",
        )
        settings = task_settings_for_lambda(config)
        self.handler = PipelineFunction(
            self,
            "JobEvents",
            description="Exports finished labeling jobs and marks failed ones for relabeling",
            handler="labeling_pipeline.job_events.lambda_handler",
            environment={
                "BUCKET_NAME": bucket.bucket_name,
                "LEDGER_TABLE_NAME": ledger.table_name,
                "RESULTS_TOPIC_ARN": self.topic.topic_arn,
                "WORKTEAM_ARN": workteam_arn,
                "GROUND_TRUTH_ROLE_ARN": ground_truth_role.role_arn,
                "TASK_SETTINGS": json.dumps(settings, separators=(",", ":")),
                # A run that dies keeps the job's lease this long: just past the function timeout.
                "JOB_LEASE_SECONDS": str(int(JOB_EVENTS_TIMEOUT.to_seconds()) + 60),
            },
            powertools_layer_version=config.powertools_layer_version,
            timeout=JOB_EVENTS_TIMEOUT,
            memory_size=JOB_EVENTS_MEMORY_MB,
            service_name="labeling-job-events",
            dead_letter_queue=self.failed_events,
            key=key,
        )
        function = self.handler.function
        policy = iam.Policy(
            self,
            "JobEventsAccess",
            statements=[
                iam.PolicyStatement(
                    sid="DescribeJobs",
                    actions=["sagemaker:DescribeLabelingJob"],
                    resources=[stack.format_arn(service="sagemaker", resource="labeling-job", resource_name="*")],
                ),
                iam.PolicyStatement(
                    sid="ReadJobsAndOutput",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{JOBS_PREFIX}*"), bucket.arn_for_objects(f"{OUTPUT_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="WriteExports",
                    actions=["s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{EXPORTS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="Ledger",
                    actions=[
                        "dynamodb:GetItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:BatchWriteItem",
                    ],
                    resources=[ledger.table_arn],
                ),
                iam.PolicyStatement(sid="Announce", actions=["sns:Publish"], resources=[self.topic.topic_arn]),
            ],
        )
        if key is not None:
            # SSE-KMS objects (Decrypt to read jobs/ and output/, GenerateDataKey to write exports/), the
            # encrypted topic (a publisher needs both), and Lambda's own sends of failed asynchronous
            # invocations to the encrypted dead-letter queue, which use this role (aws-cdk-lib grants
            # only sqs:SendMessage for them).
            policy.add_statements(key.use_statement())
        policy.attach_to_role(self.handler.role)
        function.node.add_dependency(policy)
        acknowledge_wildcard_resources(
            policy,
            "Job names are made at run time, so DescribeLabelingJob is scoped to labeling-job/* in this account and "
            "region; S3 access is limited to the jobs/, output/ and exports/ prefixes of this stack's bucket.",
        )

        # Only this stack's jobs: their names start with the configured prefix (ARNs are lower case).
        job_arn_prefix = stack.format_arn(
            service="sagemaker", resource="labeling-job", resource_name=f"{config.job_name_prefix.lower()}-"
        )
        self.rule = events.Rule(
            self,
            "JobStateChanges",
            description="This stack's Ground Truth labeling jobs reaching an end state",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[DETAIL_TYPE],
                resources=events.Match.prefix(job_arn_prefix),
                detail={"LabelingJobStatus": ["Completed", "Failed", "Stopped"]},
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                function,
                retry_attempts=4,
                max_event_age=cdk.Duration.hours(6),
                dead_letter_queue=self.failed_events,
            )
        )
        if key is not None:
            # EventBridge itself sends undeliverable events to the rule target's dead-letter queue; with a
            # customer-managed key on that queue the key policy must let events.amazonaws.com use it
            # (aws-cdk-lib adds only the queue policy, which is what limits sending to this rule's ARN).
            # The SQS guide's "compatibility with AWS services":
            # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
            key.allow_service(
                "EventBridgeDeadLetters",
                "events.amazonaws.com",
                ["kms:GenerateDataKey", "kms:Decrypt"],
                "EventBridge (events.amazonaws.com) for the job-state rule's dead-letter queue",
            )
