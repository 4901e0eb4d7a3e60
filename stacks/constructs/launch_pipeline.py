"""Event path: S3 ObjectCreated under images/ -> SQS (with DLQ) -> launcher Lambda -> labeling jobs."""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct

from labeling_pipeline.ledger_schema import LEDGER_INDEX
from labeling_pipeline.names import INPUT_PREFIX, JOBS_PREFIX
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel.proposals import proposals_prefix
from stacks.constructs.encryption_key import LabelingKey, queue_encryption
from stacks.constructs.labeling_backend import BackendWiring
from stacks.constructs.nag import LAMBDA_BASIC_EXECUTION, acknowledge, acknowledge_wildcard_resources
from stacks.constructs.pipeline_function import PipelineFunction
from stacks.deployment_settings import LabelingConfig, runtime_settings_json

LAUNCHER_TIMEOUT = cdk.Duration.minutes(5)
# Tries of a message that keeps failing for its own reason, 30 minutes apart (the visibility timeout). The
# launcher spends none of them while the labeling service is down: it sends the message back, delayed
# (labeling_pipeline/backoff.py), so an outage of days needs no more.
MAX_RECEIVE_COUNT = 5


@jsii.implements(s3.IBucketNotificationDestination)
class EncryptedQueueDestination:
    """aws-cdk-lib's SqsDestination, less the one grant that cannot work with a bucket and queue under the
    same customer-managed key.

    To let S3 send to a queue encrypted with a customer-managed key, the key policy must allow
    s3.amazonaws.com kms:GenerateDataKey* and kms:Decrypt
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html , and
    "compatibility with AWS services" in
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html).
    SqsDestination adds that statement, and also, through grantSendMessages, a second key policy
    statement conditioned on the bucket's ARN; with the bucket encrypted by the same key that second
    statement makes a cycle (key -> bucket ARN -> key). This destination writes the same queue policy
    (send only from this bucket, aws:SourceArn) and only the unconditioned key statement; the queue
    policy is what limits who may send.
    """

    def __init__(self, queue: sqs.IQueue, key: LabelingKey) -> None:
        self._queue = queue
        self._key = key

    def bind(self, scope: Construct, bucket: IBucketRef) -> s3.BucketNotificationDestinationConfig:
        self._queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                resources=[self._queue.queue_arn],
                conditions={"ArnLike": {"aws:SourceArn": bucket.bucket_ref.bucket_arn}},
            )
        )
        self._key.allow_service(
            "S3NotificationsToUploadQueue",
            "s3.amazonaws.com",
            ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Amazon S3 (s3.amazonaws.com) sending upload notifications to the encrypted queue",
        )
        return s3.BucketNotificationDestinationConfig(
            arn=self._queue.queue_arn,
            type=s3.BucketNotificationDestinationType.QUEUE,
            dependencies=[self._queue],
        )


def upload_queue(
    scope: Construct, function_timeout: cdk.Duration, key: LabelingKey | None
) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue of upload events for a function, and its dead-letter queue (as "UploadEvents" and
    "DeadLetterQueue" under `scope`): SSE-SQS, or the customer-managed key when labeling.kmsKey sets one."""
    encryption, master_key = queue_encryption(key)
    dead_letter_queue = sqs.Queue(
        scope,
        "DeadLetterQueue",
        encryption=encryption,
        encryption_master_key=master_key,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )
    queue = sqs.Queue(
        scope,
        "UploadEvents",
        encryption=encryption,
        encryption_master_key=master_key,
        enforce_ssl=True,
        # Lambda's guidance: at least six times the function timeout, so a slow batch is not redelivered.
        visibility_timeout=cdk.Duration.seconds(6 * function_timeout.to_seconds()),
        retention_period=cdk.Duration.days(14),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
    )
    return queue, dead_letter_queue


def consume_statement(queue: sqs.IQueue) -> iam.PolicyStatement:
    """What Lambda's SQS poller calls with the function's role (the AWS managed policy
    AWSLambdaSQSQueueExecutionRole holds these three;
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html). aws-cdk-lib's SqsEventSource would
    grant grantConsumeMessages instead, which adds ChangeMessageVisibility and GetQueueUrl that neither the poller
    nor the code call."""
    return iam.PolicyStatement(
        sid="ConsumeUploadEvents",
        actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        resources=[queue.queue_arn],
    )


def notify_uploads(scope: Construct, bucket: s3.IBucket, queue: sqs.IQueue, key: LabelingKey | None) -> None:
    """S3 sends every object created under images/ to `queue`: not only *.jpg, as S3 suffix filters are
    case-sensitive and a filter would drop "IMG_1.Jpg" without a trace (the launcher logs and counts what it
    skips). One queue per bucket and prefix: S3 refuses two notifications of one event on overlapping prefixes."""
    destination: s3.IBucketNotificationDestination = (
        s3n.SqsDestination(queue) if key is None else EncryptedQueueDestination(queue, key)
    )
    bucket.add_event_notification(
        s3.EventType.OBJECT_CREATED, destination, s3.NotificationKeyFilter(prefix=INPUT_PREFIX)
    )
    stack = cdk.Stack.of(scope)
    notifications_handler = stack.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
    if notifications_handler is not None:
        acknowledge(
            notifications_handler,
            LAMBDA_BASIC_EXECUTION,
            "CDK's bucket-notification handler runs once per deploy to write the notification "
            "configuration; its role and logging policy come from aws-cdk-lib.",
        )


class LaunchPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        bucket: s3.IBucket,
        backend: BackendWiring,
        key: LabelingKey | None = None,
        receive_uploads: bool = True,
    ) -> None:
        """`receive_uploads` False: another stage (the pre-label stage) takes the bucket's upload events and
        forwards them to `queue`."""
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.ledger = dynamodb.Table(
            self,
            "Ledger",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY,
        )
        # The one sparse index that status and dataset exports query instead of scanning the table
        # (labeling_pipeline/ledger_schema.py, which the Ledger and the tests' moto table share). One, so that
        # a deployed table takes it in one update: CloudFormation creates at most one per table update.
        self.ledger.add_global_secondary_index(
            index_name=LEDGER_INDEX.name,
            partition_key=dynamodb.Attribute(name=LEDGER_INDEX.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=LEDGER_INDEX.sort_key, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(LEDGER_INDEX.projected),
        )

        self.queue, self.dead_letter_queue = upload_queue(self, LAUNCHER_TIMEOUT, key)
        if receive_uploads:
            notify_uploads(self, bucket, self.queue, key)
        self.receives_uploads = receive_uploads

        environment: dict[str, str] = {
            Env.BUCKET_NAME: bucket.bucket_name,
            Env.LEDGER_TABLE_NAME: self.ledger.table_name,
            Env.DEAD_LETTER_QUEUE_URL: self.dead_letter_queue.queue_url,
            # Its own queue, where it sends a message back, delayed, while the labeling service is down.
            Env.LAUNCH_QUEUE_URL: self.queue.queue_url,
            Env.PIPELINE_SETTINGS: runtime_settings_json(config),
            Env.BACKEND_RESOURCES: stack.to_json_string(dict(backend.resources)),
        }
        self.launcher = PipelineFunction(
            self,
            "Launcher",
            description="Turns uploaded images into bounding-box labeling jobs",
            handler="labeling_pipeline.handler.lambda_handler",
            environment=environment,
            powertools_layer_version=config.powertools_layer_version,
            metric_namespace=config.metric_namespace,
            timeout=LAUNCHER_TIMEOUT,
            memory_size=512,
            service_name="labeling-launcher",
            key=key,
        )
        self.function = self.launcher.function
        policy = iam.Policy(
            self,
            "LauncherAccess",
            statements=[
                *backend.launcher_statements(),
                iam.PolicyStatement(
                    sid="TaskDefinitions",
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{JOBS_PREFIX}*")],
                ),
                *(
                    [
                        iam.PolicyStatement(
                            # The detector's proposals for the images of a job it starts (one model version).
                            sid="Proposals",
                            actions=["s3:GetObject"],
                            resources=[bucket.arn_for_objects(proposals_prefix(config.prelabel.model_version) + "*")],
                        )
                    ]
                    if config.prelabel is not None
                    else []
                ),
                iam.PolicyStatement(
                    # PutItem: the claims (TransactWriteItems Puts) and the job record; BatchGetItem: owners and
                    # created jobs. No GetItem: Ledger.job_created is only reached by Launcher.finish(checked=
                    # False), which the handler never calls.
                    sid="Ledger",
                    actions=["dynamodb:PutItem", "dynamodb:BatchGetItem"],
                    resources=[self.ledger.table_arn],
                ),
                iam.PolicyStatement(
                    sid="DeadLetter",
                    actions=["sqs:SendMessage"],
                    resources=[self.dead_letter_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    # The back-off (labeling_pipeline/backoff.py): while the labeling service is down, a message
                    # goes back to this queue, delayed, instead of using up its receives.
                    sid="BackOff",
                    actions=["sqs:SendMessage"],
                    resources=[self.queue.queue_arn],
                ),
                consume_statement(self.queue),
            ],
        )
        if key is not None:
            # SSE-KMS objects under jobs/ (GenerateDataKey to write, Decrypt to read), the encrypted
            # dead-letter queue (an SQS producer needs both) and the encrypted upload queue (the poller
            # decrypts what it receives; the back-off sends to it).
            policy.add_statements(key.use_statement())
        policy.attach_to_role(self.launcher.role)
        acknowledge_wildcard_resources(
            policy,
            f"{backend.wildcard_reason} S3 access is limited to the jobs/ prefix of this stack's bucket.",
        )

        self.function.node.add_dependency(policy)
        # The mapping SqsEventSource would make (same construct id, so the same logical id), without its
        # grant: the ConsumeUploadEvents statement above is the poller's permission.
        self.function.add_event_source_mapping(
            f"SqsEventSource:{cdk.Names.node_unique_id(self.queue.node)}",
            event_source_arn=self.queue.queue_arn,
            batch_size=config.batch_size,
            max_batching_window=cdk.Duration.seconds(config.batching_window_seconds),
            report_batch_item_failures=True,
        )
