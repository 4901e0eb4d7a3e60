"""The pre-label stage: S3 upload events -> queue -> pre-label function -> the launcher's queue.

The function writes the detector's proposals for each image version under prelabels/<model version>/ and
forwards every event, with or without proposals, so a detector that is down, slow or broken costs proposals and
never images. Its own dead-letter queue keeps what it could not forward.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from labeling_pipeline.names import INPUT_PREFIX
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.prelabel.proposals import proposals_prefix
from labeling_pipeline.prelabel.settings import PrelabelSettings
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.launch_pipeline import consume_statement, notify_uploads, upload_queue
from stacks.constructs.nag import acknowledge_wildcard_resources
from stacks.constructs.pipeline_function import PipelineFunction
from stacks.constructs.prelabel.runtime_layer import DetectorRuntimeLayer
from stacks.deployment_settings import LabelingConfig, runtime_settings_json

PRELABEL_TIMEOUT = cdk.Duration.minutes(5)
# 1,769 MB is one full vCPU (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html): the
# detector's inference is CPU-bound, and a YOLO of the n or s size with its runtime stays under 1 GB.
PRELABEL_MEMORY_MB = 2048
# Ten events a batch: inference takes a fraction of a second an image, so a batch ends well inside the timeout,
# and a batch that must be retried repeats little work.
PRELABEL_BATCH_SIZE = 10
SERVICE_NAME = "labeling-prelabel"


def model_object_arn(stack: cdk.Stack, model_uri: str) -> str:
    bucket, _, key = model_uri.removeprefix("s3://").partition("/")
    return f"arn:{stack.partition}:s3:::{bucket}/{key}"


def endpoint_arn(stack: cdk.Stack, endpoint_name: str) -> str:
    # SageMaker writes resource names into ARNs in lower case, and IAM compares ARNs case-sensitively: a policy
    # naming "My-Detector" is refused for the endpoint My-Detector (philschmid/cdk-samples#2).
    return stack.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint_name.lower())


class PrelabelStage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelingConfig,
        prelabel: PrelabelSettings,
        bucket: s3.IBucket,
        launch_queue: sqs.IQueue,
        key: LabelingKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.queue, self.dead_letter_queue = upload_queue(self, PRELABEL_TIMEOUT, key)
        notify_uploads(self, bucket, self.queue, key)

        runtime = DetectorRuntimeLayer(self, "DetectorRuntime")
        self.runtime_layer = runtime.layer
        self._proposals = bucket.arn_for_objects(proposals_prefix(prelabel.model_version) + "*")
        self.handler = PipelineFunction(
            self,
            "Function",
            description="Proposes boxes for each uploaded image with the configured detector, then forwards it",
            handler="labeling_pipeline.prelabel.handler.lambda_handler",
            environment={
                Env.BUCKET_NAME: bucket.bucket_name,
                Env.LAUNCH_QUEUE_URL: launch_queue.queue_url,
                Env.PIPELINE_SETTINGS: runtime_settings_json(config),
            },
            powertools_layer_version=config.powertools_layer_version,
            metric_namespace=config.metric_namespace,
            timeout=PRELABEL_TIMEOUT,
            memory_size=PRELABEL_MEMORY_MB,
            service_name=SERVICE_NAME,
            key=key,
        )
        self.function = self.handler.function
        self.function.add_layers(runtime.layer)

        statements = [
            iam.PolicyStatement(
                # GetObjectVersion: the image is read at the version the event names, never a newer upload.
                sid="ReadUploads",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{INPUT_PREFIX}*")],
            ),
            iam.PolicyStatement(
                # GetObject also answers HeadObject: a retry finds the proposals it wrote and does not predict again.
                sid="WriteProposals",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self._proposals],
            ),
            iam.PolicyStatement(sid="ForwardUploads", actions=["sqs:SendMessage"], resources=[launch_queue.queue_arn]),
            consume_statement(self.queue),
        ]
        if prelabel.model_uri is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadModel", actions=["s3:GetObject"], resources=[model_object_arn(stack, prelabel.model_uri)]
                )
            )
        if prelabel.endpoint_name is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="InvokeDetector",
                    actions=["sagemaker:InvokeEndpoint"],
                    resources=[endpoint_arn(stack, prelabel.endpoint_name)],
                )
            )
        policy = iam.Policy(self, "Access", statements=statements)
        if key is not None:
            # Images and proposals under the key (Decrypt, GenerateDataKey), the encrypted launch queue (an SQS
            # producer needs both) and its own queue (the poller decrypts what it receives).
            policy.add_statements(key.use_statement())
        policy.attach_to_role(self.handler.role)
        acknowledge_wildcard_resources(
            policy,
            "S3 access is limited to this stack's bucket: reading under images/ and, for this model version, "
            "reading and writing under its prelabels/ prefix, one object per image version.",
        )
        self.function.node.add_dependency(policy)
        self.function.add_event_source_mapping(
            f"SqsEventSource:{cdk.Names.node_unique_id(self.queue.node)}",
            event_source_arn=self.queue.queue_arn,
            # No batching window here: the launcher's window gathers images into jobs; one here would only add
            # to the time from upload to an openable task.
            batch_size=PRELABEL_BATCH_SIZE,
            report_batch_item_failures=True,
        )

    def serve_job_end(self, handler: PipelineFunction) -> None:
        """The job end writes the pre-label report: it reads the proposals and needs numpy (the runtime layer)."""
        handler.function.add_layers(self.runtime_layer)
        policy = iam.Policy(
            self,
            "JobEndReadsProposals",
            statements=[iam.PolicyStatement(sid="Proposals", actions=["s3:GetObject"], resources=[self._proposals])],
        )
        policy.attach_to_role(handler.role)
        acknowledge_wildcard_resources(
            policy, "Reads the proposals of this model version only: one object per image version under prelabels/."
        )
        handler.function.node.add_dependency(policy)
