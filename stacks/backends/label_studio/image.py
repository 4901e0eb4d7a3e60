"""Label Studio's image in an ECR repository of the stack's own, copied from Docker Hub at deploy time.

The tasks reach the internet through one NAT gateway, one IPv4 address, and Docker Hub allows 10 anonymous pulls an
hour per address: a few task restarts, a failed deployment's retries or a scale-out in the same hour would leave
tasks unable to start. ECR has no such limit, so the tasks pull the image from here.

The copy is cdklabs' cdk-ecr-deployment (pinned in requirements.txt): a custom resource whose Lambda function, a
prebuilt Go binary shipped in the package (synthesis needs no Docker), copies the image by tag with
containers/image, skopeo's library. It runs when it is created and whenever its properties change (a new
LABEL_STUDIO_VERSION, hence a new tag), outside the VPC, pulling from Docker Hub over Lambda's own internet access.
Its role is this construct's, with only what a copy into this one repository needs: the construct's own statements
(every ECR action and s3:GetObject on "*") are never added to it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_ecr_deployment import DockerImageName, ECRDeployment
from constructs import Construct

from stacks.backends.label_studio.version import LABEL_STUDIO_VERSION, UPSTREAM_IMAGE
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.nag import acknowledge

# The tasks run on X86_64 (server.py); without this the copy takes whatever the tag's index lists first.
ARCHITECTURE = "amd64"
# The current image and a few before it, for a rollback by hand; the copy writes one tag per release.
KEEP_IMAGES = 5
# A copy that fails fails the whole deployment, which CloudFormation then rolls back; a dropped connection or
# throttled ECR request is worth two more tries first (layers already pushed are not sent again).
COPY_RETRIES = {"numAttempts": 3, "baseDelay": 5, "maxDelay": 30}
# As the stack's other log groups (logs.RetentionDays.THREE_MONTHS).
LOG_RETENTION_DAYS = 90
# The construct path of the copy's function: aws-cdk-lib's SingletonFunction puts it at the stack's root, named
# after the construct's lambdaPurpose and its singleton id (which carries the default 512 MiB).
COPY_FUNCTION = "Custom::CDKECRDeploymentbd07c930edb94112a20f03f096f53666512MiB"
# ECR's token is for the whole registry: GetAuthorizationToken has no resource-level permissions.
SIGN_IN_ACTIONS = ["ecr:GetAuthorizationToken"]
# What containers/image calls to check, upload and tag layers and the manifest (aws-cdk-lib's grantPullPush).
COPY_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
]


class LabelStudioImage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy,
        key: LabelingKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.repository = ecr.Repository(
            self,
            "Repository",
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS if key else ecr.RepositoryEncryption.AES_256,
            encryption_key=key.key if key else None,
            # Mutable: a rollback (or any change to the copy's other properties) copies the same tag again, and
            # ECR refuses to push an existing tag into an immutable repository even when the image is identical
            # (cdklabs/cdk-ecr-deployment#207), which would leave the stack in UPDATE_ROLLBACK_FAILED. Of the
            # stack's roles, only the copy's may push here.
            image_tag_mutability=ecr.TagMutability.MUTABLE,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description=f"Keep the {KEEP_IMAGES} newest images",
                    max_image_count=KEEP_IMAGES,
                    tag_status=ecr.TagStatus.ANY,
                )
            ],
            removal_policy=removal_policy,
            empty_on_delete=removal_policy == cdk.RemovalPolicy.DESTROY,
        )
        self.tag = LABEL_STUDIO_VERSION

        role = iam.Role(
            self,
            "CopyRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Copies {UPSTREAM_IMAGE} into the Label Studio image repository at deploy time",
        )
        self.copy = ECRDeployment(
            self,
            "Copy",
            src=DockerImageName(UPSTREAM_IMAGE),
            dest=DockerImageName(f"{self.repository.repository_uri}:{self.tag}"),
            image_arch=[ARCHITECTURE],
            retry_configs=COPY_RETRIES,
            role=role.without_policy_updates(),
        )
        handler = self.copy.node.find_child("CustomResourceHandler")
        assert isinstance(handler, lambda_.SingletonFunction)
        assert cdk.Stack.of(self).node.try_find_child(COPY_FUNCTION) is not None, "checkov_skips.py names it"
        self._keep_logs_like_the_others(handler.log_group, key)

        policy = iam.Policy(
            self,
            "CopyAccess",
            statements=[
                iam.PolicyStatement(sid="SignInToEcr", actions=SIGN_IN_ACTIONS, resources=["*"]),
                iam.PolicyStatement(
                    sid="CopyIntoRepository", actions=COPY_ACTIONS, resources=[self.repository.repository_arn]
                ),
                iam.PolicyStatement(
                    sid="Logs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[handler.log_group.log_group_arn],
                ),
            ],
        )
        policy.attach_to_role(role)
        # The role's policy is separate from the role, so nothing else orders the copy after it.
        self.copy.node.add_dependency(policy)
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken supports no resource-level permissions (Service Authorization Reference, "
            "Amazon ECR); every other ECR action of the copy names this one repository.",
        )

    @staticmethod
    def _keep_logs_like_the_others(log_group: logs.ILogGroup, key: LabelingKey | None) -> None:
        """The log group aws-cdk-lib makes for the copy's function (@aws-cdk/aws-lambda:useCdkManagedLogGroup),
        kept and encrypted as the stack's other log groups are."""
        log_group.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        cfn = log_group.node.default_child
        assert isinstance(cfn, logs.CfnLogGroup)
        cfn.retention_in_days = LOG_RETENTION_DAYS
        if key is not None:
            cfn.kms_key_id = key.key_arn
