"""Ground Truth's side of the pipeline stack: the workforce stack it depends on, the execution role, the
launcher's and job-events function's API grants, and the EventBridge rule for the job-end signal."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from labeling_pipeline.backends.ground_truth import Resources
from labeling_pipeline.backends.ground_truth.events import DETAIL_TYPE, ENDED_STATUSES, EVENT_SOURCE
from labeling_pipeline.names import OUTPUT_PREFIX
from stacks.backends.ground_truth.execution_role import GroundTruthRole
from stacks.backends.ground_truth.region_check import check_region
from stacks.backends.ground_truth.settings import GroundTruthConfig
from stacks.backends.ground_truth.workforce_stack import WorkforceStack
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.job_following import deliver_to_job_events
from stacks.deployment_settings import LabelingConfig


class GroundTruthWiring:
    def __init__(
        self,
        stack: cdk.Stack,
        *,
        config: GroundTruthConfig,
        bucket: s3.IBucket,
        key: LabelingKey | None,
        workteam_arn: str,
    ) -> None:
        self._stack = stack
        self._config = config
        self._key = key
        self._bucket = bucket
        self.role = GroundTruthRole(stack, "GroundTruth", bucket=bucket, key=key).role
        resources = {Resources.WORKTEAM_ARN: workteam_arn, Resources.ROLE_ARN: self.role.role_arn}
        if key is not None:
            # CreateLabelingJob's OutputConfig.KmsKeyId: Ground Truth encrypts its output with this key.
            resources[Resources.OUTPUT_KMS_KEY_ID] = key.key_arn
        self._resources = resources
        cdk.CfnOutput(stack, "GroundTruthRoleArn", value=self.role.role_arn)

    @property
    def resources(self) -> Mapping[str, str]:
        return self._resources

    @property
    def wildcard_reason(self) -> str:
        return (
            "Job names are made at run time, so the labeling-job actions are scoped to labeling-job/* in this "
            "account and region."
        )

    @property
    def retry_reasons(self) -> str:
        return "CreateLabelingJob throttled or failing for a moment"

    def _labeling_jobs_arn(self) -> str:
        return self._stack.format_arn(service="sagemaker", resource="labeling-job", resource_name="*")

    def launcher_statements(self) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                sid="CreateLabelingJobs",
                actions=["sagemaker:CreateLabelingJob", "sagemaker:DescribeLabelingJob", "sagemaker:AddTags"],
                resources=[self._labeling_jobs_arn()],
            ),
            iam.PolicyStatement(
                sid="PassGroundTruthRole",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        ]

    def job_events_statements(self) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="DescribeJobs", actions=["sagemaker:DescribeLabelingJob"], resources=[self._labeling_jobs_arn()]
            )
        ]
        if self._config.workers_per_image > 1:
            # The job end lists each job's worker-response files (its own reads are GetObject on output/), for
            # the workers' agreement (backends/ground_truth/worker_responses.py).
            statements.append(
                iam.PolicyStatement(
                    sid="ListWorkerResponses",
                    actions=["s3:ListBucket"],
                    resources=[self._bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{OUTPUT_PREFIX}*"]}},
                )
            )
        return statements

    def follow_job_ends(self, scope: Construct, function: lambda_.IFunction, dead_letter_queue: sqs.IQueue) -> None:
        # Only this stack's jobs: their names start with the configured prefix (ARNs are lower case).
        job_arn_prefix = self._stack.format_arn(
            service="sagemaker", resource="labeling-job", resource_name=f"{self._config.job_name_prefix.lower()}-"
        )
        rule = events.Rule(
            scope,
            "JobStateChanges",
            description="This stack's Ground Truth labeling jobs reaching an end state",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[DETAIL_TYPE],
                resources=events.Match.prefix(job_arn_prefix),
                detail={"LabelingJobStatus": list(ENDED_STATUSES)},
            ),
        )
        deliver_to_job_events(rule, function, dead_letter_queue, self._key, "the job-state rule's dead-letter queue")


class GroundTruthInfrastructure:
    def __init__(self) -> None:
        self._workforce: WorkforceStack | None = None

    def check_region(self, region: str | None) -> None:
        check_region(region)

    def supporting_stacks(self, app: cdk.App, config: LabelingConfig, env: cdk.Environment) -> list[cdk.Stack]:
        assert isinstance(config, GroundTruthConfig)
        self._workforce = WorkforceStack(app, f"{config.project_name}-workforce", config=config, env=env)
        return [self._workforce]

    def wire(
        self, stack: cdk.Stack, *, config: LabelingConfig, bucket: s3.IBucket, key: LabelingKey | None
    ) -> GroundTruthWiring:
        assert isinstance(config, GroundTruthConfig) and self._workforce is not None
        return GroundTruthWiring(
            stack, config=config, bucket=bucket, key=key, workteam_arn=self._workforce.workteam_arn
        )
