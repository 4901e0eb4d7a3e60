"""Label Studio deployed in the user's account when labeling.labelStudioUrl is not given: the network, the
database, the Fargate service behind an internal load balancer, and the CloudFront site in front of it.

The container is Label Studio's published image, copied into the stack's ECR repository at deploy time (image.py,
version.py), configured through its environment (label_studio/core/settings/base.py and label_studio.py of 1.23.2).
It does not run the image's own start: its entry point fetches the labeling_gate plugin (label_studio_plugin/, an
S3 asset of this stack) and runs labeling_gate.start (label_studio_plugin/fetch_and_start.py), which migrates the
database, applies the administrator's credentials and serves Label Studio with uwsgi, as upstream runs it in
production, with labeling_gate deciding what each signed-in user may do. Every start applies the secrets' current
values (LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD, LABEL_STUDIO_USER_TOKEN), so a put-secret-value followed by a
new deployment of the service rotates them.

Secrets reach the container only as ECS secrets from Secrets Manager, never as plain environment values: the
database password, the first user's password, the pipeline's API token (LABEL_STUDIO_USER_TOKEN, the legacy token
the pipeline uses) and Django's SECRET_KEY. Label Studio would otherwise generate SECRET_KEY into each task's own
disk, and its sessions are signed cookies (SESSION_ENGINE signed_cookies), so every restarted or added task would
sign everybody out.

Label Studio presigns the workers' image links with its task role (the S3 storage has no access keys): the role
reads images/ of the pipeline's bucket, the plugin's one asset object, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IDependable

from labeling_pipeline.names import INPUT_PREFIX
from stacks.backends.label_studio.database import DATABASE_NAME, DATABASE_USER, LabelStudioDatabase, protect_secret
from stacks.backends.label_studio.image import LabelStudioImage
from stacks.backends.label_studio.network import LabelStudioNetwork
from stacks.backends.label_studio.settings import LabelStudioConfig
from stacks.backends.label_studio.site import ORIGIN_HTTP_PORT, LabelStudioSite
from stacks.backends.label_studio.version import CONTAINER_PORT, HEALTH_CHECK_PATH
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.nag import acknowledge

# One task: 1 vCPU and 2 GiB, what Label Studio's own Docker guidance starts from for a small team.
TASK_CPU = 1024
TASK_MEMORY_MIB = 2048
# Scale out when the tasks' average CPU stays above this.
SCALE_ON_CPU_PERCENT = 70
# The first start migrates an empty database (about a minute on this project's 2-core test machine, with
# SQLite); health checks do not count until then.
HEALTH_CHECK_GRACE = cdk.Duration.minutes(10)
# Above CloudFront's 60-second origin read timeout, so that the load balancer never cuts a request first.
LOAD_BALANCER_IDLE_TIMEOUT = cdk.Duration.seconds(120)
DEREGISTRATION_DELAY = cdk.Duration.seconds(30)
ADMIN_PASSWORD_LENGTH = 32
# Django's own generated keys are 50 characters (django.core.management.utils.get_random_secret_key).
DJANGO_SECRET_KEY_LENGTH = 50
CONTAINER_NAME = "label-studio"
# The labeling_gate plugin, which the container fetches from its S3 asset at every start: the folder as it is, no
# build. fetch_and_start.py is the container's first command (its text, through python3 -c).
PLUGIN_DIR = Path(__file__).resolve().parents[3] / "label_studio_plugin"
PLUGIN_START = PLUGIN_DIR / "fetch_and_start.py"
PLUGIN_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/tests"]


class LabelStudioServer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelStudioConfig,
        bucket: s3.IBucket,
        api_token: secretsmanager.ISecret,
        key: LabelingKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        retain = config.removal_policy == "retain"
        removal = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        self.network = LabelStudioNetwork(self, "Network", key=key)
        vpc = self.network.vpc
        private = self.network.private_subnets
        self.database = LabelStudioDatabase(
            self,
            "Database",
            vpc=vpc,
            subnets=private,
            instance_type=config.label_studio_database_instance_type,
            backup_days=config.label_studio_database_backup_days,
            multi_az=config.label_studio_database_multi_az,
            retain=retain,
            key=key,
        )

        # --- the load balancer (internal) and the site in front of it ---------------------------------------
        self.load_balancer_security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="Label Studio internal load balancer: only the CloudFront VPC origin connects",
            allow_all_outbound=False,
        )
        # aws-cdk-lib writes an egress rule towards another security group as a separate
        # AWS::EC2::SecurityGroupEgress and drops the group's own placeholder rule, and a group created without
        # inline egress keeps EC2's default allow-all egress. So the load balancer (whose targets would add that
        # rule) gets a view of its group that takes no rules, and the group's one egress rule, to the tasks, is
        # written inline below.
        balancer_group = ec2.SecurityGroup.from_security_group_id(
            self,
            "LoadBalancerGroupView",
            self.load_balancer_security_group.security_group_id,
            allow_all_outbound=False,
            mutable=False,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            vpc_subnets=private,
            internet_facing=False,
            security_group=balancer_group,
            drop_invalid_header_fields=True,
            idle_timeout=LOAD_BALANCER_IDLE_TIMEOUT,
        )
        self.site = LabelStudioSite(
            self,
            "Site",
            vpc=vpc,
            load_balancer=self.load_balancer,
            load_balancer_security_group=self.load_balancer_security_group,
            domain=config.label_studio_domain,
            certificate_arn=config.label_studio_certificate_arn,
            removal_policy=removal,
            key=key,
        )
        self.site_url = self.site.site_url

        # --- secrets the container gets ------------------------------------------------------------------
        self.admin_password = secretsmanager.Secret(
            self,
            "AdminPassword",
            description=(
                f"The password of Label Studio's first user ({config.label_studio_admin_email}), an administrator "
                "(LABEL_STUDIO_PASSWORD). Every task start applies its current value: after put-secret-value, a new "
                "deployment of the service changes the password in Label Studio."
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=ADMIN_PASSWORD_LENGTH, exclude_punctuation=True, include_space=False
            ),
            removal_policy=removal,
        )
        protect_secret(
            self.admin_password,
            key,
            "labeling_gate.start sets the first user's password from it at every task start: `bbox-labeling "
            "rotate-credentials` puts a new value and redeploys the service, rotating it with the API token in "
            "one command. A Secrets Manager rotation function would have to run the same redeployment.",
        )
        self.django_secret_key = secretsmanager.Secret(
            self,
            "DjangoSecretKey",
            description="Django's SECRET_KEY for Label Studio (signs its session cookies), shared by all its tasks",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=DJANGO_SECRET_KEY_LENGTH, exclude_punctuation=True, include_space=False
            ),
            removal_policy=removal,
        )
        protect_secret(
            self.django_secret_key,
            key,
            "Changing Django's SECRET_KEY signs every user out; rotate it by hand (put-secret-value, then a new "
            "deployment of the service) when that is wanted. There is no rotation function for it.",
        )

        # --- the task ------------------------------------------------------------------------------------
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=key.key if key else None,
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=(
                "Label Studio's tasks: fetch the labeling_gate plugin at start, presign the workers' image links "
                "(read images/ of the pipeline bucket)"
            ),
        )
        self.plugin = s3_assets.Asset(self, "Plugin", path=str(PLUGIN_DIR), exclude=PLUGIN_EXCLUDE)
        task_statements = [
            # The one object the container fetches at start (not Asset.grant_read, which would also let it list
            # the whole CDK assets bucket and read every object in it).
            iam.PolicyStatement(
                sid="ReadPlugin",
                actions=["s3:GetObject"],
                resources=[self.plugin.bucket.arn_for_objects(self.plugin.s3_object_key)],
            ),
            iam.PolicyStatement(
                sid="ReadImages",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{INPUT_PREFIX}*")],
            ),
            # Label Studio checks the S3 storage when it is saved: list_objects_v2 and head_bucket
            # (io_storages/s3/models.py, validate_connection); HeadBucket is authorized by s3:ListBucket
            # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
            iam.PolicyStatement(sid="CheckBucket", actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
        ]
        if key is not None:
            # Presigned GETs of SSE-KMS objects are decrypted with the signer's (this role's) permissions.
            task_statements.append(key.use_statement(["kms:Decrypt"]))
        task_policy = iam.Policy(self, "TaskAccess", statements=task_statements)
        task_policy.attach_to_role(self.task_role)
        acknowledge(
            task_policy,
            f"AwsSolutions-IAM5[Resource::<{_logical_id(bucket)}.Arn>/{INPUT_PREFIX}*]",
            "Label Studio presigns links to any uploaded image, whose keys are made by uploaders: read access is "
            f"limited to the {INPUT_PREFIX} prefix of the pipeline's bucket.",
        )

        self.image = LabelStudioImage(self, "Image", removal_policy=removal, key=key)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=TASK_CPU,
            memory_limit_mib=TASK_MEMORY_MIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
            task_role=self.task_role,
        )
        environment = {
            # PostgreSQL (label_studio/core/settings/base.py: DJANGO_DB "default" is its PostgreSQL entry).
            "DJANGO_DB": "default",
            "POSTGRE_NAME": DATABASE_NAME,
            "POSTGRE_USER": DATABASE_USER,
            "POSTGRE_HOST": self.database.host,
            "POSTGRE_PORT": self.database.port,
            # The public base URL (links, redirects) and the origins Django's CSRF check trusts: requests reach
            # Django over plain HTTP from the load balancer, so it cannot tell the viewer's https:// by itself.
            # With a domain the distribution's own address answers too; Label Studio splits the list on commas.
            "LABEL_STUDIO_HOST": self.site_url,
            "CSRF_TRUSTED_ORIGINS": ",".join(self.site.origins),
            # Cookies only over HTTPS (the site redirects HTTP). base.py parses these two as integers.
            "SESSION_COOKIE_SECURE": "1",
            "CSRF_COOKIE_SECURE": "1",
            # Accounts only through `bbox-labeling workers add` (a one-use invite), no open sign-up.
            "DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # No call home: no version check against PyPI, no analytics, no Sentry.
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            # Webhooks to private and reserved addresses stay refused; the job-events function's URL is public.
            "SSRF_PROTECTION_ENABLED": "true",
            # The pipeline's token is a legacy token, set from LABEL_STUDIO_USER_TOKEN on the first user.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_USERNAME": config.label_studio_admin_email,
            # Where fetch_and_start.py finds the plugin (the asset is in the stack's region).
            "LABELING_PLUGIN_S3_URI": self.plugin.s3_object_url,
            "LABELING_PLUGIN_REGION": cdk.Stack.of(self).region,
        }
        self.container = self.task_definition.add_container(
            "LabelStudio",
            container_name=CONTAINER_NAME,
            image=ecs.ContainerImage.from_ecr_repository(self.image.repository, tag=self.image.tag),
            # The plugin's start replaces the image's own (its entry point script and the development server);
            # the arguments after the code go to labeling_gate.start.
            entry_point=["python3", "-c", PLUGIN_START.read_text()],
            command=["--bind", "0.0.0.0", "--port", str(CONTAINER_PORT)],
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment=environment,
            secrets={
                "POSTGRE_PASSWORD": ecs.Secret.from_secrets_manager(self.database.credentials, "password"),
                "LABEL_STUDIO_PASSWORD": ecs.Secret.from_secrets_manager(self.admin_password),
                "LABEL_STUDIO_USER_TOKEN": ecs.Secret.from_secrets_manager(api_token),
                "SECRET_KEY": ecs.Secret.from_secrets_manager(self.django_secret_key),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="label-studio", log_group=self.log_group),
            essential=True,
        )
        execution_role = self.task_definition.obtain_execution_role()
        acknowledge(
            execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ECS signs in to ECR before pulling the image, and ecr:GetAuthorizationToken supports no resource-level "
            "permissions (Service Authorization Reference, Amazon ECR); the pull actions name the stack's one "
            "image repository.",
        )
        if key is not None:
            # The secrets are encrypted with the customer-managed key; ECS reads them with this role.
            execution_role.add_to_principal_policy(key.use_statement(["kms:Decrypt"]))
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds Label Studio's settings (database host, site URL, feature switches, the admin's "
            "email) and the plugin's S3 location: no secret. The four secrets reach the container as ECS secrets "
            "from Secrets Manager.",
        )

        # --- the service ---------------------------------------------------------------------------------
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.task_security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=vpc,
            description="Label Studio tasks: in from the load balancer, out to the internet (image, webhook)",
            allow_all_outbound=True,
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=config.label_studio_min_tasks,
            vpc_subnets=private,
            security_groups=[self.task_security_group],
            assign_public_ip=False,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=HEALTH_CHECK_GRACE,
            platform_version=ecs.FargatePlatformVersion.LATEST,
        )
        # Tasks start only once the image is in the repository.
        self.service.node.add_dependency(self.image.copy)
        self.database.security_group.add_ingress_rule(
            self.task_security_group,
            ec2.Port.tcp(5432),
            "Label Studio's tasks to PostgreSQL",
        )
        # The only place the load balancer sends anything, its health checks included.
        self.load_balancer_security_group.add_egress_rule(
            ec2.Peer.security_group_id(self.task_security_group.security_group_id),
            ec2.Port.tcp(CONTAINER_PORT),
            "The load balancer to Label Studio's tasks (requests and health checks)",
        )
        listener = self.load_balancer.add_listener(
            "Http", port=ORIGIN_HTTP_PORT, protocol=elbv2.ApplicationProtocol.HTTP, open=False
        )
        self.target_group = listener.add_targets(
            "LabelStudio",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service.load_balancer_target(container_name=CONTAINER_NAME, container_port=CONTAINER_PORT)],
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(30),
                timeout=cdk.Duration.seconds(10),
                healthy_threshold_count=2,
                unhealthy_threshold_count=5,
            ),
            deregistration_delay=DEREGISTRATION_DELAY,
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=config.label_studio_min_tasks, max_capacity=config.label_studio_max_tasks
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=SCALE_ON_CPU_PERCENT,
            scale_in_cooldown=cdk.Duration.minutes(5),
            scale_out_cooldown=cdk.Duration.minutes(2),
        )

    @property
    def ready(self) -> list[IDependable]:
        """What must exist before anything talks to the site: the service (CloudFormation waits for it to be
        stable, its tasks healthy behind the load balancer) and the way in from CloudFront."""
        return [self.service, self.site.origin_ingress, self.site.distribution]


def _logical_id(bucket: s3.IBucket) -> str:
    child = bucket.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return cdk.Stack.of(bucket).get_logical_id(child)
