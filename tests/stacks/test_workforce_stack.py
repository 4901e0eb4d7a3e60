from __future__ import annotations

import json

from aws_cdk.assertions import Match

from tests.stacks.conftest import WORKERS, Synthesized


def test_user_pool_is_invitation_only_with_a_strong_password_policy(synthesized: Synthesized) -> None:
    synthesized.workforce.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "AdminCreateUserConfig": Match.object_like({"AllowAdminCreateUserOnly": True}),
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                    "TemporaryPasswordValidityDays": 7,
                }
            },
            "MfaConfiguration": "OPTIONAL",
        },
    )
    synthesized.workforce.resource_count_is("AWS::Cognito::UserPoolDomain", 1)


def test_app_client_is_what_ground_truth_needs(synthesized: Synthesized) -> None:
    synthesized.workforce.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "GenerateSecret": True,
            "AllowedOAuthFlows": ["implicit", "code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthScopes": ["email", "openid", "profile"],
            "SupportedIdentityProviders": ["COGNITO"],
        },
    )
    # After the workforce exists, the callback and sign-out URLs are pointed at its portal.
    update = synthesized.workforce.find_resources("Custom::AWS")
    [resource] = update.values()
    create_call = json.dumps(resource["Properties"]["Create"])
    assert "updateUserPoolClient" in create_call and "/oauth2/idpresponse" in create_call
    assert "SubDomain" in create_call
    assert '"AllowedOAuthFlows\\":[\\"code\\",\\"implicit\\"]' in create_call


def test_one_user_per_worker_email_in_the_worker_group(synthesized: Synthesized) -> None:
    users = synthesized.workforce.find_resources("AWS::Cognito::UserPoolUser")
    assert sorted(user["Properties"]["Username"] for user in users.values()) == sorted(WORKERS)
    assert all(user["Properties"]["DesiredDeliveryMediums"] == ["EMAIL"] for user in users.values())
    assert not any("example" in logical_id for logical_id in users)  # no address in logical ids
    attachments = synthesized.workforce.find_resources("AWS::Cognito::UserPoolUserToGroupAttachment")
    assert sorted(a["Properties"]["Username"] for a in attachments.values()) == sorted(WORKERS)
    assert {a["Properties"]["GroupName"] for a in attachments.values()} == {"labelers"}


def test_workforce_and_workteam_on_the_pool(synthesized: Synthesized) -> None:
    synthesized.workforce.has_resource_properties(
        "AWS::SageMaker::Workforce",
        {
            "WorkforceName": "gt-labeling",
            "CognitoConfig": {"ClientId": Match.any_value(), "UserPool": Match.any_value()},
        },
    )
    synthesized.workforce.has_resource_properties(
        "AWS::SageMaker::Workteam",
        {
            "WorkforceName": "gt-labeling",
            "MemberDefinitions": [{"CognitoMemberDefinition": Match.object_like({"CognitoUserGroup": "labelers"})}],
            "NotificationConfiguration": {"NotificationTopicArn": Match.any_value()},
        },
    )


def test_workforce_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.workforce.find_outputs("*")
    assert {"WorkerPortalUrl", "UserPoolId", "WorkteamArn", "WorkerGroupName"} <= set(outputs)
    assert "SubDomain" in json.dumps(outputs["WorkerPortalUrl"]["Value"])
