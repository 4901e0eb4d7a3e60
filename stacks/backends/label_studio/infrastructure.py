"""Label Studio's side of the pipeline stack: the API token and webhook secrets, the functions' grants on them,
the job-events function's URL for Label Studio's webhook, the reconciler's schedule, and the custom resource that
creates the project, its S3 storage and its webhook and keeps them in step with the configuration.

The server is the one at ``labeling.labelStudioUrl``, or, without it, the one this stack deploys (server.py: VPC,
PostgreSQL, Fargate, internal load balancer, CloudFront), whose site URL the functions and the custom resource
then use. The server lives in the pipeline stack, not in a stack of its own: it needs the pipeline's bucket (its
task role reads images/), the key, the API token secret and the results topic (its alarms), and the pipeline
needs its URL, so two stacks would reference each other. In one stack CloudFormation also orders the project's
custom resource after the service is stable and CloudFront can reach it (plain DependsOn).

No SageMaker, no workforce stack, no Cognito: Label Studio keeps its own accounts.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import custom_resources as cr
from constructs import Construct

from labeling_pipeline.backends.label_studio import Resources
from labeling_pipeline.names import OUTPUT_PREFIX
from stacks.backends.label_studio.alarms import LabelStudioAlarms
from stacks.backends.label_studio.server import LabelStudioServer
from stacks.backends.label_studio.settings import LabelStudioConfig
from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.job_following import JobFollowing, deliver_to_job_events
from stacks.constructs.nag import acknowledge
from stacks.constructs.pipeline_function import PipelineFunction
from stacks.deployment_settings import LabelingConfig, runtime_settings_json

# The reconciler's tick: job_events.is_schedule takes the standard "Scheduled Event" from aws.events, and asks
# Label Studio about every open job, since a webhook is sent once, with a 1-second timeout and no retry.
RECONCILE_EVERY = cdk.Duration.minutes(5)
# Label Studio's legacy API token (LABEL_STUDIO_USER_TOKEN) is 40 lowercase hex digits; the generated value has
# that shape. The webhook secret travels in a header: letters and digits only.
API_TOKEN_LENGTH = 40
NOT_HEX = "ghijklmnopqrstuvwxyz"
WEBHOOK_SECRET_LENGTH = 48
SETUP_TIMEOUT = cdk.Duration.minutes(2)
CUSTOM_RESOURCE_TYPE = "Custom::LabelStudioProject"


class LabelStudioSecrets(Construct):
    """The pipeline's API token for Label Studio and the webhook's shared secret, in Secrets Manager."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy,
        key: LabelingKey | None,
        existing_api_token_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        made: list[secretsmanager.Secret] = []
        self.api_token: secretsmanager.ISecret
        if existing_api_token_arn is not None:
            self.api_token = secretsmanager.Secret.from_secret_complete_arn(self, "ApiToken", existing_api_token_arn)
        else:
            self.api_token = self._generated_api_token(removal_policy)
            made.append(self.api_token)
        self.webhook = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description="The header value Label Studio's webhook carries to the job-events function URL",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=WEBHOOK_SECRET_LENGTH, exclude_punctuation=True, include_space=False
            ),
            removal_policy=removal_policy,
        )
        made.append(self.webhook)
        for secret in made:
            self._protect(secret, key)

    def _generated_api_token(self, removal_policy: cdk.RemovalPolicy) -> secretsmanager.Secret:
        return secretsmanager.Secret(
            self,
            "ApiToken",
            description=(
                "The API token the labeling pipeline uses with Label Studio (a legacy token: 40 hex digits), for a "
                "server that takes it as LABEL_STUDIO_USER_TOKEN. An existing server's token is named with "
                "labeling.labelStudioApiTokenSecretArn instead."
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=API_TOKEN_LENGTH,
                exclude_punctuation=True,
                exclude_uppercase=True,
                exclude_characters=NOT_HEX,
                include_space=False,
            ),
            removal_policy=removal_policy,
        )

    @staticmethod
    def _protect(secret: secretsmanager.Secret, key: LabelingKey | None) -> None:
        if key is not None:
            # The key is set on the CloudFormation resource, not through Secret's encryption_key: that
            # would add a key policy statement of aws-cdk-lib's own (and do nothing for an existing key).
            # None is needed: Secrets Manager uses the key with its caller's credentials, and the key
            # policy leaves those to IAM (each reader's role gets kms:Decrypt on the key).
            cfn = secret.node.default_child
            assert isinstance(cfn, secretsmanager.CfnSecret)
            cfn.kms_key_id = key.key_arn
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "The API token of the Label Studio this stack deploys rotates with one command, `bbox-labeling "
            "rotate-credentials` (new values into the secrets, then a new deployment of the service, each of "
            "whose task starts applies them); a Secrets Manager rotation function would have to run the same "
            "redeployment and is not provided. For an existing server the token is an account's token there: "
            "rotate it there, then put-secret-value. The webhook secret is a header of the project's webhook, "
            "which every deployment of this stack brings in step with the secret.",
        )

    @property
    def arns(self) -> list[str]:
        return [self.api_token.secret_arn, self.webhook.secret_arn]


class LabelStudioWiring:
    def __init__(
        self,
        stack: cdk.Stack,
        *,
        config: LabelStudioConfig,
        bucket: s3.IBucket,
        key: LabelingKey | None,
    ) -> None:
        self._stack = stack
        self._config = config
        self._bucket = bucket
        self._key = key
        self._removal = cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY
        self._scope = Construct(stack, "LabelStudio")
        self.secrets = LabelStudioSecrets(
            self._scope,
            "Secrets",
            removal_policy=self._removal,
            key=key,
            existing_api_token_arn=config.label_studio_api_token_secret_arn,
        )
        self.server: LabelStudioServer | None = None
        if config.deploys_server:
            self.server = LabelStudioServer(
                self._scope,
                "Server",
                config=config,
                bucket=bucket,
                api_token=self.secrets.api_token,
                key=key,
            )
            self.url = self.server.site_url
            cdk.CfnOutput(
                stack,
                "LabelStudioSiteUrl",
                description="Label Studio, deployed by this stack: sign in as labeling.labelStudioAdminEmail",
                value=self.url,
            )
            cdk.CfnOutput(
                stack,
                "LabelStudioAdminSecretArn",
                description="The secret holding the password of Label Studio's first user (an administrator)",
                value=self.server.admin_password.secret_arn,
            )
            # `bbox-labeling rotate-credentials` redeploys this service after putting the new secrets.
            cdk.CfnOutput(stack, "LabelStudioClusterName", value=self.server.cluster.cluster_name)
            cdk.CfnOutput(stack, "LabelStudioServiceName", value=self.server.service.service_name)
            cdk.CfnOutput(
                stack,
                "LabelStudioDistributionDomain",
                description="CloudFront's domain of the site (the CNAME target of labeling.labelStudioDomain)",
                value=self.server.site.distribution.distribution_domain_name,
            )
        else:
            self.url = config.url
        self._resources = {
            Resources.URL: self.url,
            Resources.BUCKET: bucket.bucket_name,
            Resources.API_TOKEN_SECRET_ARN: self.secrets.api_token.secret_arn,
            Resources.WEBHOOK_SECRET_ARN: self.secrets.webhook.secret_arn,
        }
        cdk.CfnOutput(
            stack,
            "LabelStudioApiTokenSecretArn",
            description=(
                "The secret holding the pipeline's Label Studio API token (for an existing server, the one named by "
                "labeling.labelStudioApiTokenSecretArn)"
            ),
            value=self.secrets.api_token.secret_arn,
        )
        cdk.CfnOutput(stack, "LabelStudioWebhookSecretArn", value=self.secrets.webhook.secret_arn)

    @property
    def resources(self) -> Mapping[str, str]:
        return self._resources

    @property
    def wildcard_reason(self) -> str:
        return ""

    @property
    def retry_reasons(self) -> str:
        return "Label Studio unavailable, slow or refusing the import for a moment"

    def _read_secrets(self, sid: str, secrets: list[secretsmanager.ISecret]) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=sid, actions=["secretsmanager:GetSecretValue"], resources=[secret.secret_arn for secret in secrets]
        )

    def launcher_statements(self) -> list[iam.PolicyStatement]:
        # Importing tasks takes only the API token (the launcher's policy already has kms:Decrypt on the key).
        return [self._read_secrets("ReadLabelStudioApiToken", [self.secrets.api_token])]

    def job_events_statements(self) -> list[iam.PolicyStatement]:
        return [
            # The API token to read the tasks; the webhook secret to check the webhook's header.
            self._read_secrets("ReadLabelStudioSecrets", [self.secrets.api_token, self.secrets.webhook]),
            iam.PolicyStatement(
                # LabelStudioBackend.read_results keeps an ended job's raw tasks as output/<job>/tasks.jsonl
                # (Ground Truth writes its own output there; here the function does).
                sid="WriteTasksFiles",
                actions=["s3:PutObject"],
                resources=[self._bucket.arn_for_objects(f"{OUTPUT_PREFIX}*")],
            ),
        ]

    def follow_job_ends(self, scope: Construct, function: lambda_.IFunction, dead_letter_queue: sqs.IQueue) -> None:
        # (a) The webhook: Label Studio posts to the function's URL. It cannot sign requests with SigV4, so the
        # URL takes no IAM auth; the function answers 403 unless the request carries the webhook secret's
        # header (a constant-time compare, LabelStudioBackend.authenticate) about this deployment's project.
        url = function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        cdk.CfnOutput(self._stack, "LabelStudioWebhookUrl", value=url.url)

        # (b) The reconciler: a webhook is sent once and never retried, so a schedule asks about open jobs.
        rule = events.Rule(
            scope,
            "Reconcile",
            description="Asks Label Studio about this stack's open labeling jobs (a webhook can be lost)",
            schedule=events.Schedule.rate(RECONCILE_EVERY),
        )
        deliver_to_job_events(
            rule, function, dead_letter_queue, self._key, "the reconciler schedule's dead-letter queue"
        )

        # (c) The project, its S3 storage and its webhook, created at deploy and kept in step on every update.
        project = LabelStudioProject(
            self._scope,
            "Project",
            config=self._config,
            url=self.url,
            secrets=self.secrets,
            bucket=self._bucket,
            webhook_url=url.url,
            key=self._key,
        )
        cdk.CfnOutput(self._stack, "LabelStudioProjectId", value=project.project_id)

        if self.server is not None:
            # The setup function talks to the deployed server through CloudFront: after the service is stable
            # (its tasks healthy behind the load balancer) and CloudFront's VPC origin may reach it.
            for dependency in self.server.ready:
                project.resource.node.add_dependency(dependency)
            # (d) Alarms on the server, to the results topic like the pipeline's own.
            assert isinstance(scope, JobFollowing), "the job-events function's scope holds the results topic"
            LabelStudioAlarms(
                self.server,
                "Alarms",
                topic=scope.topic,
                load_balancer=self.server.load_balancer,
                target_group=self.server.target_group,
                database=self.server.database.instance,
            )


class LabelStudioProject(Construct):
    """The custom resource that runs labeling_pipeline.backends.label_studio.setup_handler.on_event.

    Through aws-cdk-lib's Provider framework, not with the function as the ServiceToken: on_event returns its
    answer ({PhysicalResourceId, Data}) as the framework's onEvent contract asks, and leaves the response to
    CloudFormation's presigned URL, its retries and its error reporting, to the framework. A bare ServiceToken
    would need that protocol in the Lambda asset.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabelStudioConfig,
        url: str,
        secrets: LabelStudioSecrets,
        bucket: s3.IBucket,
        webhook_url: str,
        key: LabelingKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.setup = PipelineFunction(
            self,
            "Setup",
            description="Creates the Label Studio project, its S3 storage and its webhook, and keeps them in step",
            handler="labeling_pipeline.backends.label_studio.setup_handler.on_event",
            environment={},
            powertools_layer_version=config.powertools_layer_version,
            metric_namespace=config.metric_namespace,
            timeout=SETUP_TIMEOUT,
            memory_size=256,
            service_name="labeling-label-studio-setup",
            key=key,
        )
        policy = iam.Policy(
            self,
            "SetupAccess",
            statements=[
                iam.PolicyStatement(
                    sid="ReadLabelStudioSecrets",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=secrets.arns,
                )
            ],
        )
        if key is not None:
            policy.add_statements(key.use_statement(["kms:Decrypt"]))
        policy.attach_to_role(self.setup.role)
        self.setup.function.node.add_dependency(policy)

        # The framework's own function: a role of its own, so that it writes only to its own log group
        # (aws-cdk-lib would attach AWSLambdaBasicExecutionRole) and invokes only the setup function.
        self.provider_logs = logs.LogGroup(
            self,
            "ProviderLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=key.key if key else None,
        )
        provider_role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="aws-cdk-lib's custom resource framework for the Label Studio project",
        )
        provider_role.add_to_policy(
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.provider_logs.log_group_arn],
            )
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.setup.function,
            framework_on_event_role=provider_role,
            log_group=self.provider_logs,
        )
        acknowledge(
            provider_role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self._cfn(self.setup.function))}.Arn>:*]",
            "aws-cdk-lib's Provider grants invoking the setup function and its versions (ARN:*); it is the one "
            "function, and this role invokes nothing else.",
        )

        self.resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type=CUSTOM_RESOURCE_TYPE,
            properties={
                "Settings": runtime_settings_json(config),
                "Url": url,
                "Bucket": bucket.bucket_name,
                "Region": stack.region,
                "ApiTokenSecretArn": secrets.api_token.secret_arn,
                "WebhookSecretArn": secrets.webhook.secret_arn,
                "WebhookUrl": webhook_url,
            },
        )
        self.project_id = self.resource.get_att_string("ProjectId")

    @staticmethod
    def _cfn(function: lambda_.Function) -> cdk.CfnElement:
        child = function.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return child


class LabelStudioInfrastructure:
    def check_region(self, region: str | None) -> None:
        """Any region: the pipeline's side is Lambda, S3, SQS and Secrets Manager, offered everywhere."""

    def supporting_stacks(self, app: cdk.App, config: LabelingConfig, env: cdk.Environment) -> list[cdk.Stack]:
        return []

    def wire(
        self, stack: cdk.Stack, *, config: LabelingConfig, bucket: s3.IBucket, key: LabelingKey | None
    ) -> LabelStudioWiring:
        assert isinstance(config, LabelStudioConfig)
        return LabelStudioWiring(stack, config=config, bucket=bucket, key=key)
