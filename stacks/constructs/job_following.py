"""Follow this stack's labeling jobs to their end: the backend's job-end signal -> job-events Lambda ->
exports, ledger update, and a summary on the results topic (emails subscribed from config)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from labeling_pipeline.names import EXPORTS_PREFIX, JOBS_PREFIX, OUTPUT_PREFIX
from labeling_pipeline.names import EnvironmentVariable as Env
from stacks.constructs.encryption_key import LabelingKey, queue_encryption
from stacks.constructs.labeling_backend import BackendWiring
from stacks.constructs.nag import acknowledge, acknowledge_wildcard_resources
from stacks.constructs.pipeline_function import PipelineFunction
from stacks.deployment_settings import LabelingConfig, runtime_settings_json

# Sized from benchmarks/export_throughput.py: 100,000 output lines take about 9 s of CPU for all three
# formats on one core, with 32 MB peak memory that does not grow with the job. 1,024 MB (about 0.6 vCPU)
# leaves room for the ledger's per-image bookkeeping (about 65 MB per 100,000 images), and 10 minutes
# for the exports (about 16 s at 0.6 vCPU), the S3 transfers and 4,000 ledger batch writes.
JOB_EVENTS_MEMORY_MB = 1024
JOB_EVENTS_TIMEOUT = cdk.Duration.minutes(10)
# /tmp holds a job's raw tasks while they stream (Label Studio's tasks.jsonl: 2.2 KB a task with two boxes, as the
# data manager lists it, measured on Label Studio 1.23.2; 220 MB for a job of 100,000) and the spooled exports until
# they are uploaded. Lambda's default of 512 MB leaves no room for jobs with many boxes an image.
JOB_EVENTS_EPHEMERAL_STORAGE = cdk.Size.mebibytes(2048)
# Lambda's asynchronous invocation by a backend's EventBridge rule: retries, then the failed-job-events queue.
RULE_RETRY_ATTEMPTS = 4
RULE_MAX_EVENT_AGE = cdk.Duration.hours(6)


def deliver_to_job_events(
    rule: events.Rule, function: lambda_.IFunction, dead_letter_queue: sqs.IQueue, key: LabelingKey | None, why: str
) -> None:
    """A backend's rule invokes the job-events function asynchronously, with retries, then the failed-events
    queue; `why` names the rule in the key policy."""
    rule.add_target(
        targets.LambdaFunction(
            function,
            retry_attempts=RULE_RETRY_ATTEMPTS,
            max_event_age=RULE_MAX_EVENT_AGE,
            dead_letter_queue=dead_letter_queue,
        )
    )
    if key is not None:
        # EventBridge itself sends undeliverable events to the rule target's dead-letter queue; with a
        # customer-managed key on that queue the key policy must let events.amazonaws.com use it
        # (aws-cdk-lib adds only the queue policy, which is what limits sending to the rule's ARN).
        # The SQS guide's "compatibility with AWS services":
        # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
        key.allow_service(
            "EventBridgeDeadLetters",
            "events.amazonaws.com",
            ["kms:GenerateDataKey", "kms:Decrypt"],
            f"EventBridge (events.amazonaws.com) for {why}",
        )


class JobFollowing(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        bucket: s3.IBucket,
        ledger: dynamodb.ITable,
        backend: BackendWiring,
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
        self.handler = PipelineFunction(
            self,
            "JobEvents",
            description="Exports finished labeling jobs and marks failed ones for relabeling",
            handler="labeling_pipeline.job_events.lambda_handler",
            environment={
                Env.BUCKET_NAME: bucket.bucket_name,
                Env.LEDGER_TABLE_NAME: ledger.table_name,
                Env.RESULTS_TOPIC_ARN: self.topic.topic_arn,
                Env.PIPELINE_SETTINGS: runtime_settings_json(config),
                Env.BACKEND_RESOURCES: stack.to_json_string(dict(backend.resources)),
                # A run that dies keeps the job's lease this long: just past the function timeout.
                Env.JOB_LEASE_SECONDS: str(int(JOB_EVENTS_TIMEOUT.to_seconds()) + 60),
            },
            powertools_layer_version=config.powertools_layer_version,
            metric_namespace=config.metric_namespace,
            timeout=JOB_EVENTS_TIMEOUT,
            memory_size=JOB_EVENTS_MEMORY_MB,
            ephemeral_storage=JOB_EVENTS_EPHEMERAL_STORAGE,
            service_name="labeling-job-events",
            dead_letter_queue=self.failed_events,
            key=key,
        )
        function = self.handler.function
        policy = iam.Policy(
            self,
            "JobEventsAccess",
            statements=[
                *backend.job_events_statements(),
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
            f"{backend.wildcard_reason} S3 access is limited to the jobs/, output/ and exports/ prefixes of this "
            "stack's bucket.",
        )

        backend.follow_job_ends(self, function, self.failed_events)
