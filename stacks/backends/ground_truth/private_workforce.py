"""The Ground Truth private workforce and workteam on the worker pool.

One private workforce exists per account and region
(https://docs.aws.amazon.com/sagemaker/latest/dg/sms-workforce-management.html): deploying this stack
in a region whose account already has one fails at the workforce resource.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.backends.ground_truth.worker_pool import WORKER_GROUP, WorkerPool
from stacks.constructs.nag import acknowledge, acknowledge_aws_custom_resource_provider


class PrivateWorkforce(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, pool: WorkerPool, name: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.workforce = sagemaker.CfnWorkforce(
            self,
            "Workforce",
            workforce_name=name,
            cognito_config=sagemaker.CfnWorkforce.CognitoConfigProperty(
                client_id=pool.client.user_pool_client_id,
                user_pool=pool.user_pool.user_pool_id,
            ),
        )
        self.workforce.node.add_dependency(pool.domain)
        self.portal_url = cdk.Fn.join("", ["https://", self.workforce.attr_sub_domain])

        self.notifications = sns.Topic(self, "WorkerNotifications", display_name="New labeling tasks")
        self.notifications.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyInsecureTransport",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.notifications.topic_arn],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        # A topic policy replaces SNS's default one, so the service must be allowed explicitly; the statement is
        # the one AWS documents for work team topics, limited to this account's workteams
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-workforce-management-private-sns.html).
        stack = cdk.Stack.of(self)
        self.notifications.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AwsSagemakerSnsAccessPolicy",
                principals=[iam.ServicePrincipal("sagemaker.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.notifications.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": stack.format_arn(service="sagemaker", resource="workteam/*")},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        acknowledge(
            self.notifications,
            "AwsSolutions-SNS2",
            "Ground Truth publishes task notifications to this topic itself; with the AWS-managed SNS key a "
            "service cannot publish, and the messages say only that tasks are waiting (no image data).",
        )

        self.workteam = sagemaker.CfnWorkteam(
            self,
            "Workteam",
            workteam_name=f"{name}-team",
            workforce_name=self.workforce.workforce_name,
            description="Private workers who draw bounding boxes",
            member_definitions=[
                sagemaker.CfnWorkteam.MemberDefinitionProperty(
                    cognito_member_definition=sagemaker.CfnWorkteam.CognitoMemberDefinitionProperty(
                        cognito_user_pool=pool.user_pool.user_pool_id,
                        cognito_client_id=pool.client.user_pool_client_id,
                        cognito_user_group=WORKER_GROUP,
                    )
                )
            ],
            notification_configuration=sagemaker.CfnWorkteam.NotificationConfigurationProperty(
                notification_topic_arn=self.notifications.topic_arn
            ),
        )
        self.workteam.add_resource_dependency(self.workforce)
        self.workteam.add_resource_dependency(pool.group)

        # The portal's address exists only now: point the app client's callback and sign-out URLs at it.
        # UpdateUserPoolClient resets every field it is not given, so all of them are repeated here.
        client_settings = {
            "UserPoolId": pool.user_pool.user_pool_id,
            "ClientId": pool.client.user_pool_client_id,
            "ClientName": "ground-truth-worker-portal",
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthFlows": ["code", "implicit"],
            "AllowedOAuthScopes": ["email", "openid", "profile"],
            "CallbackURLs": [cdk.Fn.join("", [self.portal_url, "/oauth2/idpresponse"])],
            "LogoutURLs": [cdk.Fn.join("", [self.portal_url, "/logout"])],
            "SupportedIdentityProviders": ["COGNITO"],
            "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            "PreventUserExistenceErrors": "ENABLED",
        }
        update_call = cr.AwsSdkCall(
            service="CognitoIdentityServiceProvider",
            action="updateUserPoolClient",
            parameters=client_settings,
            physical_resource_id=cr.PhysicalResourceId.of(f"{name}-portal-client-urls"),
        )
        # The provider function's own log group, named by CloudFormation. Without it, cdk.json's
        # @aws-cdk/aws-lambda:useCdkManagedLogGroup makes CDK add /aws/lambda/<function>, which Lambda has
        # already created in any stack deployed before that flag: the update would fail on "already exists".
        self.client_urls_logs = logs.LogGroup(
            self,
            "PortalClientUrlsLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.client_urls = cr.AwsCustomResource(
            self,
            "PortalClientUrls",
            log_group=self.client_urls_logs,
            on_create=update_call,
            on_update=update_call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["cognito-idp:UpdateUserPoolClient"],
                        resources=[pool.user_pool.user_pool_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
        )
        self.client_urls.node.add_dependency(self.workforce)
        acknowledge_aws_custom_resource_provider(stack)
