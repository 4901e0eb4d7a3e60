"""The checkov findings on Label Studio's own resources that do not apply, each with its reason (the format
and the rules of stacks/checkov_skips.py): `SKIPS` for the pipeline's side (with any server), `SERVER_SKIPS` for the
server this stack deploys without labeling.labelStudioUrl."""

from __future__ import annotations

import aws_cdk as cdk

from stacks.backends.label_studio.image import COPY_FUNCTION
from stacks.checkov_skips import CheckovSkip
from stacks.deployment_settings import LabelingConfig

# The custom resource's setup function and aws-cdk-lib's Provider framework function in front of it.
SETUP_FUNCTIONS = ("LabelStudio/Project/Setup/Function", "LabelStudio/Project/Provider/framework-onEvent")

SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "CKV_AWS_258",
        "AWS::Lambda::Url",
        "Label Studio's webhook is the caller and cannot sign requests with SigV4, so the job-events function's "
        "URL takes no IAM auth. The function itself refuses (HTTP 403) any request without the webhook secret's "
        "header, compared in constant time with the secret in Secrets Manager, or about another project; and a "
        "request it accepts only makes it re-read that job's state from Label Studio.",
        paths=("Follow/JobEvents/Function/FunctionUrl",),
    ),
    CheckovSkip(
        "CKV_AWS_149",
        "AWS::SecretsManager::Secret",
        "Secrets Manager encrypts the secrets at rest with its AWS-managed key (aws/secretsmanager), which only "
        "this account's principals allowed to read the secret can use. With labeling.kmsKey they are encrypted "
        "with the customer-managed key and pass.",
        paths=("LabelStudio/Secrets",),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "CloudWatch Logs encrypts log data at rest with its own keys; the setup logs hold the project id and what "
        "changed, no secret. With labeling.kmsKey the log groups use the customer-managed key and pass.",
        paths=("LabelStudio/Project/Setup/Logs", "LabelStudio/Project/ProviderLogs"),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        "The Label Studio project's custom resource: CloudFormation invokes the framework function, which invokes "
        "the setup function, both synchronously, and reports a failure as a failed deployment; a dead-letter "
        "queue would never receive anything.",
        paths=SETUP_FUNCTIONS,
    ),
    CheckovSkip(
        "CKV_AWS_173",
        "AWS::Lambda::Function",
        "The environment holds Powertools' settings and, for the framework function, the setup function's ARN: "
        "no secret (the custom resource names the secrets by ARN, and the setup function reads them from Secrets "
        "Manager). Lambda encrypts it at rest with an AWS-managed key.",
        paths=SETUP_FUNCTIONS,
    ),
)


class WithoutDomainSkip(CheckovSkip):
    """A skip that applies only while the deployed site has no domain of its own (labeling.labelStudioDomain)."""

    def applies_to(self, resource: cdk.CfnResource, config: LabelingConfig) -> bool:
        if getattr(config, "label_studio_domain", None) is not None:
            return False
        return super().applies_to(resource, config)


# The Label Studio server this stack deploys without labeling.labelStudioUrl (server.py and its parts).
SERVER = "LabelStudio/Server"
DATABASE = f"{SERVER}/Database/Instance"
LISTENER = f"{SERVER}/LoadBalancer/Http"
IMAGE_REPOSITORY = f"{SERVER}/Image/Repository"

SERVER_SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "CKV_AWS_149",
        "AWS::SecretsManager::Secret",
        "Secrets Manager encrypts the database credentials, the first user's password and Django's secret key at "
        "rest with its AWS-managed key (aws/secretsmanager), usable only by this account's principals allowed to "
        "read them (the tasks' execution role). With labeling.kmsKey they use the customer-managed key and pass.",
        paths=(SERVER,),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "CloudWatch Logs encrypts log data at rest with its own keys; Label Studio's container log, the VPC flow "
        "logs, the deploy-time lookup's log and the image copy's log hold requests, addresses, image names and "
        "ids, no secret and no image. With labeling.kmsKey the log groups use the customer-managed key and pass.",
        paths=(SERVER, COPY_FUNCTION),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_136",
        "AWS::ECR::Repository",
        "The repository holds Label Studio's public image, as published on Docker Hub, and ECR encrypts it at rest "
        "with AES-256 (its default, SSE with Amazon S3-managed keys). With labeling.kmsKey it is encrypted with "
        "the customer-managed key and passes.",
        paths=(IMAGE_REPOSITORY,),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_51",
        "AWS::ECR::Repository",
        "The tag is written by the deploy-time copy, which CloudFormation runs again on a rollback or when the "
        "copy's properties change, and ECR refuses to push an existing tag into an immutable repository even for "
        "the identical image (cdklabs/cdk-ecr-deployment#207): the rollback itself would fail. Of the stack's roles "
        "only the copy's may push to the repository, and the tag names the pinned Label Studio release.",
        paths=(IMAGE_REPOSITORY,),
    ),
    CheckovSkip(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        "cdk-ecr-deployment's copy function, invoked synchronously by CloudFormation for its custom resource, "
        "which reports a failure as a failed deployment; a dead-letter queue would never receive anything.",
        paths=(COPY_FUNCTION,),
    ),
    CheckovSkip(
        "CKV_AWS_157",
        "AWS::RDS::DBInstance",
        "Single-AZ by default to keep a small labeling team's cost down: a zone outage pauses labeling (uploads "
        "wait in their queue) and the automated backups restore the data. labeling.labelStudioDatabaseMultiAz "
        "adds a standby in the second zone.",
        paths=(DATABASE,),
    ),
    CheckovSkip(
        "CKV_AWS_118",
        "AWS::RDS::DBInstance",
        "RDS's standard CloudWatch metrics (CPU, free storage, connections) feed this stack's database alarms; "
        "Enhanced Monitoring's per-process metrics would add a monitoring role with an AWS-managed policy and "
        "CloudWatch Logs charges for a database that serves a few annotators.",
        paths=(DATABASE,),
    ),
    CheckovSkip(
        "CKV_AWS_161",
        "AWS::RDS::DBInstance",
        "Label Studio connects with a user name and password (POSTGRE_USER/POSTGRE_PASSWORD) and cannot use IAM "
        "database authentication tokens; the password is generated in Secrets Manager and reaches the container "
        "as an ECS secret.",
        paths=(DATABASE,),
    ),
    CheckovSkip(
        "CKV_AWS_2",
        "AWS::ElasticLoadBalancingV2::Listener",
        "The load balancer is internal, in private subnets, and its security group admits only CloudFront's VPC "
        "origin, which reaches it inside the VPC; viewers get HTTPS from CloudFront (HTTP is redirected). HTTPS "
        "to the load balancer would need a certificate for a domain this deployment does not have.",
        paths=(LISTENER,),
    ),
    CheckovSkip(
        "CKV_AWS_103",
        "AWS::ElasticLoadBalancingV2::Listener",
        "The listener is plain HTTP inside the VPC, reached only by CloudFront's VPC origin (no TLS policy to "
        "set); the TLS that viewers use ends at CloudFront with TLS 1.2 or later for a custom domain.",
        paths=(LISTENER,),
    ),
    CheckovSkip(
        "CKV_AWS_18",
        "AWS::S3::Bucket",
        "This is the access-log bucket of Label Studio's distribution and load balancer; logging it into itself "
        "would loop (the same reason as the cdk-nag AwsSolutions-S1 acknowledgement).",
        paths=(f"{SERVER}/Site/AccessLogs",),
    ),
    CheckovSkip(
        "CKV_AWS_68",
        "AWS::CloudFront::Distribution",
        "No AWS WAF web ACL by default: its monthly and per-request charges would exceed the rest of a small "
        "deployment's edge cost. Label Studio requires a signed-in user or an API token for everything but its "
        "sign-in page, and AWS Shield Standard protects the distribution. Attach a web ACL if the site draws abuse.",
        paths=(f"{SERVER}/Site/Distribution",),
    ),
    WithoutDomainSkip(
        "CKV_AWS_174",
        "AWS::CloudFront::Distribution",
        "Without labeling.labelStudioDomain the site uses CloudFront's default *.cloudfront.net certificate, whose "
        "security policy CloudFront fixes and no setting changes. With a domain and its ACM certificate the "
        "distribution's minimum protocol is TLSv1.2_2021 and the check passes.",
        paths=(f"{SERVER}/Site/Distribution",),
    ),
)
