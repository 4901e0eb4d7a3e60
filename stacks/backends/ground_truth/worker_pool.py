"""The Cognito user pool that holds the private workforce's workers.

A private workforce is one user pool and one app client per account and region; each workteam is a
group in that pool. https://docs.aws.amazon.com/sagemaker/latest/dg/sms-workforce-create-private.html
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from stacks.constructs.nag import acknowledge

WORKER_GROUP = "labelers"


class WorkerPool(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker_emails: tuple[str, ...],
        domain_prefix: str,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            # Invitation only: admins (this stack, or the CLI later) create every worker.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True, username=False),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=cdk.Duration.days(7),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            user_invitation=cognito.UserInvitationConfig(
                email_subject="You are invited to label images",
                email_body=(
                    "You have been added to an image-labeling team. Your user name is {username} and your "
                    "temporary password is {####}. Your team lead will send you the labeling portal link; "
                    "sign in there and choose a new password."
                ),
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional (TOTP): workers sign in through the Ground Truth portal's Cognito page, and "
            "requiring MFA would block a first sign-in for workers without an authenticator app. Accounts "
            "exist only by invitation, with a 12-character, 4-class password policy.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Threat protection needs the Cognito Plus plan, billed per monthly active user; the pool has "
            "no self sign-up and holds only workers the team invites.",
        )
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        # Ground Truth needs a confidential client with the code and implicit flows and these scopes;
        # callback URLs point at the worker portal and are set once the workforce exists
        # (PrivateWorkforce), because the portal's address is only known then.
        self.client = self.user_pool.add_client(
            "PortalClient",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=True),
                scopes=[cognito.OAuthScope.EMAIL, cognito.OAuthScope.OPENID, cognito.OAuthScope.PROFILE],
                callback_urls=["https://example.com/placeholder-replaced-after-workforce-creation"],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
        )
        self.group = cognito.CfnUserPoolGroup(
            self,
            "WorkerGroup",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=WORKER_GROUP,
            description="Workers of the bounding-box labeling workteam",
        )
        for email in worker_emails:
            # Logical ids from a hash: no address appears in construct paths, and adding one worker
            # does not rename the others.
            suffix = hashlib.sha256(email.lower().encode()).hexdigest()[:10]
            user = cognito.CfnUserPoolUser(
                self,
                f"Worker{suffix}",
                user_pool_id=self.user_pool.user_pool_id,
                username=email,
                desired_delivery_mediums=["EMAIL"],
                user_attributes=[
                    cognito.CfnUserPoolUser.AttributeTypeProperty(name="email", value=email),
                    cognito.CfnUserPoolUser.AttributeTypeProperty(name="email_verified", value="true"),
                ],
            )
            membership = cognito.CfnUserPoolUserToGroupAttachment(
                self,
                f"Worker{suffix}Group",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=WORKER_GROUP,
                username=email,
            )
            membership.add_resource_dependency(user)
            membership.add_resource_dependency(self.group)
