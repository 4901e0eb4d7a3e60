"""HTTPS for the deployed Label Studio without a domain of one's own: a CloudFront distribution whose origin is a
CloudFront VPC origin on the internal Application Load Balancer, so the load balancer and the tasks stay in
private subnets and CloudFront is the only way in.

- Viewers: HTTPS only (HTTP is redirected), TLS from CloudFront's certificate for ``<id>.cloudfront.net``, or
  labeling.labelStudioDomain with labelStudioCertificateArn (an ACM certificate in us-east-1; a CNAME from the
  domain to the distribution is the owner's to add; output LabelStudioDistributionDomain).
- Nothing is cached (CachePolicy.CACHING_DISABLED): every page and API answer depends on the signed-in user; all
  the viewer's headers, cookies and query strings go to Label Studio (OriginRequestPolicy.ALL_VIEWER), whose
  CSRF check compares the Origin header with the site's URL.
- The load balancer's security group admits only CloudFront's VPC origin: the security group CloudFront creates
  for VPC origins in the VPC (``CloudFront-VPCOrigins-Service-SG``, whose id CloudFormation does not return; a
  deploy-time ``ec2:DescribeSecurityGroups`` finds it, as aws-cdk-lib's aws-cloudfront-origins README shows).
- Access logs of the distribution and of the load balancer go to a log bucket of the site's own.
- A CloudFront Function on every viewer request (edge/viewer_request.js) is the outer, coarse filter: it refuses
  what no browser or client of the pipeline sends, so that nothing between the viewer and Django can read a path
  differently from Django (dot segments, encoded dots, slashes and backslashes, ``;`` parameters, doubled
  slashes, method-override headers, unknown methods: 400 or 405), and closes Django's admin site and the job
  queue's pages (/admin, /django-rq, any case: 403). It holds no credential. Who may do what is decided inside
  Label Studio, where the caller is known: the labeling_gate plugin (label_studio_plugin/) applies its rule table
  to the route Django resolved.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.nag import acknowledge, acknowledge_aws_custom_resource_provider

# The security group CloudFront creates in the VPC for its VPC origins (aws-cdk-lib 2.275.0,
# aws-cloudfront-origins/README.md, "The VPC origin service security group").
VPC_ORIGINS_SECURITY_GROUP = "CloudFront-VPCOrigins-Service-SG"
ORIGIN_HTTP_PORT = 80
# CloudFront waits up to 60 s for the origin's answer (the most it allows without a quota increase:
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesOrigin.html#DownloadDistValuesOriginResponseTimeout);
# the pipeline imports 500 tasks per request and Label Studio can take seconds for one.
ORIGIN_READ_TIMEOUT = cdk.Duration.seconds(60)
ORIGIN_CONNECTION_TIMEOUT = cdk.Duration.seconds(10)
LOG_DAYS = 365
VIEWER_REQUEST_CODE = Path(__file__).resolve().parent / "edge" / "viewer_request.js"


class LabelStudioSite(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        load_balancer: elbv2.ApplicationLoadBalancer,
        load_balancer_security_group: ec2.ISecurityGroup,
        domain: str | None,
        certificate_arn: str | None,
        removal_policy: cdk.RemovalPolicy,
        key: LabelingKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        destroy = removal_policy == cdk.RemovalPolicy.DESTROY
        # SSE-S3: the only encryption that load balancer access logs and CloudFront standard logs are delivered
        # to. CloudFront's standard logging writes with an ACL, so the bucket keeps ACLs for its owner.
        self.logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=cdk.Duration.days(LOG_DAYS), noncurrent_version_expiration=cdk.Duration.days(90)
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.logs_bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket of Label Studio's distribution and load balancer; logging it into "
            "itself would loop.",
        )
        if cdk.Token.is_unresolved(stack.region):
            # The bucket policy for load balancer logs names the region's Elastic Load Balancing account, so
            # aws-cdk-lib needs the region. Without one (a synth without AWS configuration) the template is only a
            # preview: `make deploy` refuses to deploy without a region, and with it the logs are on.
            acknowledge(
                load_balancer,
                "AwsSolutions-ELB2",
                "Synthesized without a region, which the access-log bucket policy needs (the region's Elastic Load "
                "Balancing account); this template cannot be deployed as is, and a deployment's has the logs on.",
            )
        else:
            load_balancer.log_access_logs(self.logs_bucket, prefix="load-balancer")

        # The outer filter only: what each caller may do is labeling_gate's decision, inside Label Studio.
        self.viewer_request = cloudfront.Function(
            self,
            "ViewerRequest",
            comment="Label Studio: refuses ambiguous paths, method overrides, unknown methods; /admin, /django-rq",
            code=cloudfront.FunctionCode.from_file(file_path=str(VIEWER_REQUEST_CODE)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn) if certificate_arn else None
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Label Studio of {stack.stack_name}",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.VpcOrigin.with_application_load_balancer(
                    load_balancer,
                    http_port=ORIGIN_HTTP_PORT,
                    protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY,
                    read_timeout=ORIGIN_READ_TIMEOUT,
                    connection_timeout=ORIGIN_CONNECTION_TIMEOUT,
                    connection_attempts=3,
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER,
                compress=True,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.viewer_request, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            domain_names=[domain] if domain else None,
            certificate=certificate,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if certificate else None,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_ALL,
            enable_logging=True,
            log_bucket=self.logs_bucket,
            log_file_prefix="cloudfront/",
        )
        distribution_url = f"https://{self.distribution.distribution_domain_name}"
        self.site_url = f"https://{domain}" if domain else distribution_url
        # Every origin a browser may sign in from: the site's URL and, with a domain, the distribution's own
        # address, which answers too.
        self.origins = [self.site_url, distribution_url] if domain else [self.site_url]
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "Annotators may work from any country; Label Studio's own sign-in (no self sign-up) decides who enters.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "No AWS WAF web ACL by default (its monthly and per-request charges would exceed the rest of a small "
            "deployment's edge cost): Label Studio requires a signed-in user or an API token for everything but "
            "its sign-in page, and CloudFront's standard AWS Shield protection applies. Attach a web ACL with "
            "rate-based rules to the distribution if the site draws abuse.",
        )
        if certificate is None:
            acknowledge(
                self.distribution,
                "AwsSolutions-CFR4",
                "Without labeling.labelStudioDomain the site uses CloudFront's default *.cloudfront.net "
                "certificate, whose security policy CloudFront fixes (TLSv1 minimum) and no setting changes; with "
                "a domain and its certificate the policy is TLSv1.2_2021.",
            )

        # Only CloudFront's VPC origin may reach the load balancer.
        lookup_logs = logs.LogGroup(
            self,
            "VpcOriginsSecurityGroupLookupLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=key.key if key else None,
        )
        describe = cr.AwsSdkCall(
            service="ec2",
            action="describeSecurityGroups",
            parameters={
                "Filters": [
                    {"Name": "vpc-id", "Values": [vpc.vpc_id]},
                    {"Name": "group-name", "Values": [VPC_ORIGINS_SECURITY_GROUP]},
                ]
            },
            physical_resource_id=cr.PhysicalResourceId.of(VPC_ORIGINS_SECURITY_GROUP),
            output_paths=["SecurityGroups.0.GroupId"],
        )
        lookup = cr.AwsCustomResource(
            self,
            "VpcOriginsSecurityGroup",
            on_create=describe,
            on_update=describe,
            log_group=lookup_logs,
            # ec2:DescribeSecurityGroups supports no resource-level permissions (Service Authorization Reference,
            # Amazon EC2 actions), so its one statement names "*".
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ec2:DescribeSecurityGroups"], resources=["*"])]
            ),
            install_latest_aws_sdk=False,
        )
        # The security group exists once the distribution's VPC origin does.
        lookup.node.add_dependency(self.distribution)
        self.origin_ingress = ec2.CfnSecurityGroupIngress(
            self,
            "FromVpcOrigin",
            group_id=load_balancer_security_group.security_group_id,
            source_security_group_id=lookup.get_response_field("SecurityGroups.0.GroupId"),
            ip_protocol="tcp",
            from_port=ORIGIN_HTTP_PORT,
            to_port=ORIGIN_HTTP_PORT,
            description="CloudFront's VPC origin to the load balancer's HTTP listener",
        )
        acknowledge(
            lookup,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeSecurityGroups supports no resource-level permissions; it only reads the id of "
            "CloudFront's VPC origin security group at deploy time.",
        )
        acknowledge_aws_custom_resource_provider(stack)
