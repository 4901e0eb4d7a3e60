"""The role Ground Truth assumes to run a job: read images/ and jobs/, write output/."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from labeling_pipeline.names import INPUT_PREFIX, JOBS_PREFIX, OUTPUT_PREFIX
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.nag import acknowledge_wildcard_resources

# SageMaker's metric namespaces: "AWS/SageMaker/Workteam" for worker metrics
# (https://docs.aws.amazon.com/sagemaker/latest/dg/workteam-private-tracking.html), the labeling-job metrics
# (CloudWatch namespace lists spell it "AWS/Sagemaker/LabelingJobs"), and the "/aws/sagemaker/<...>Jobs"
# namespaces of SageMaker jobs. AWS names no single namespace for what Ground Truth writes with this role,
# so the condition allows SageMaker's namespaces, in both spellings, and no other: not this app's own
# metrics (GroundTruthLabeling, which the alarms watch), nor any other application's.


class GroundTruthRole(Construct):
    """An inline least-privilege policy instead of AmazonSageMakerGroundTruthExecution, which only
    reaches buckets named *sagemaker*/*groundtruth* and grants far more than a job needs.

    The execution role requirements are in
    https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-permission-execution-role.html :
    S3 AbortMultipartUpload, GetObject and PutObject on the input and output locations, ListBucket and
    GetBucketLocation on the buckets, and CloudWatch "to log worker metrics and labeling job statuses":
    cloudwatch:PutMetricData, and CloudWatch Logs for the job's log streams in the
    /aws/sagemaker/LabelingJobs group.

    With a customer-managed key (labeling.kmsKey), Ground Truth reads the SSE-KMS images and task files
    and writes its output under OutputConfig.KmsKeyId with this role. The key policy statement is the one
    https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html asks for ("Encrypt
    Output Data using KMS": the execution role may kms:Encrypt, kms:Decrypt, kms:ReEncrypt*,
    kms:GenerateDataKey* and kms:DescribeKey); the role's own policy grants the same use of that one key
    without wildcards (Decrypt to read input and its own output back, GenerateDataKey and Encrypt to
    write, DescribeKey), which is what counts when the key policy leaves the decision to IAM.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, key: LabelingKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            description="Assumed by SageMaker Ground Truth for this stack's labeling jobs",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            ),
        )
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/LabelingJobs:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        policy = iam.Policy(
            self,
            "Access",
            statements=[
                iam.PolicyStatement(
                    sid="ReadImagesAndTaskDefinitions",
                    actions=["s3:GetObject"],
                    resources=[
                        bucket.arn_for_objects(f"{INPUT_PREFIX}*"),
                        bucket.arn_for_objects(f"{JOBS_PREFIX}*"),
                    ],
                ),
                iam.PolicyStatement(
                    # AWS lists AbortMultipartUpload, GetObject and PutObject as the S3 actions a job
                    # needs; under output/ Ground Truth also reads back what it wrote (worker responses,
                    # intermediate manifests) while the job runs.
                    sid="WriteLabels",
                    actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                    resources=[bucket.arn_for_objects(f"{OUTPUT_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    # A GetBucketLocation request names no prefix, so it cannot share ListBucket's s3:prefix
                    # condition (under it, it was never allowed).
                    sid="LocateBucket",
                    actions=["s3:GetBucketLocation"],
                    resources=[bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="ListLabelingPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={
                        "StringLike": {"s3:prefix": [f"{INPUT_PREFIX}*", f"{JOBS_PREFIX}*", f"{OUTPUT_PREFIX}*"]}
                    },
                ),
                iam.PolicyStatement(
                    sid="JobLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[log_group_arn],
                ),
                iam.PolicyStatement(
                    # As the execution-role page grants it: on "*" and without a condition. PutMetricData
                    # supports no resource-level permissions, and the page names no namespace that Ground Truth
                    # writes to, so a namespace condition would be a guess that could silently drop its metrics.
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                ),
            ],
        )
        if key is not None:
            policy.add_statements(
                key.use_statement(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"])
            )
            key.allow(
                iam.PolicyStatement(
                    sid="GroundTruthExecutionRole",
                    principals=[iam.ArnPrincipal(self.role.role_arn)],
                    actions=[
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    resources=["*"],
                ),
                "the Ground Truth execution role (stack output GroundTruthRoleArn)",
            )
        policy.attach_to_role(self.role)
        acknowledge_wildcard_resources(
            policy,
            "Object wildcards are limited to the images/, jobs/ and output/ prefixes of this stack's bucket; "
            "Ground Truth names its log streams per job, under the one /aws/sagemaker/LabelingJobs group.",
            reasons={
                "*": "cloudwatch:PutMetricData, which the Ground Truth execution-role page grants on * without a "
                "condition, supports no resource-level permissions; it can only add metric data points."
            },
        )
