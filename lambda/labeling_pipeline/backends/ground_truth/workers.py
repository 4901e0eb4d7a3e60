"""Ground Truth's private workforce members: Cognito users in the workteam's group (what `bbox-labeling workers`
manages). Cognito emails a new worker a user name and a temporary password that must be changed at the
first sign-in, valid 7 days (the pool's policy, stacks/backends/ground_truth/worker_pool.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.backends import MakeClient, WorkerError

# Outputs of the workforce stack (stacks/backends/ground_truth/workforce_stack.py) that the CLI reads.
USER_POOL_ID = "UserPoolId"
WORKER_GROUP = "WorkerGroupName"
NO_REVIEWERS = (
    "reviewers (--reviewer) are a Label Studio feature: Ground Truth reviews labels with its own verification "
    "and adjustment labeling jobs, done by the same workteam; add the worker without --reviewer"
)


class CognitoWorkers:
    def __init__(self, cognito: Any, user_pool_id: str, group: str) -> None:
        self._cognito = cognito
        self._pool = user_pool_id
        self._group = group

    def list(self) -> list[str]:
        users: list[str] = []
        request: dict[str, Any] = {"UserPoolId": self._pool, "GroupName": self._group}
        while True:
            response = self._cognito.list_users_in_group(**request)
            for user in response.get("Users", []):
                attributes = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
                users.append(f"{attributes.get('email', user['Username'])}  {user.get('UserStatus', '')}")
            if not response.get("NextToken"):
                return sorted(users)
            request["NextToken"] = response["NextToken"]

    def add(self, email: str, *, reviewer: bool = False) -> str:
        if reviewer:
            raise WorkerError(NO_REVIEWERS)
        try:
            self._cognito.admin_create_user(
                UserPoolId=self._pool,
                Username=email,
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
                DesiredDeliveryMediums=["EMAIL"],
            )
            self._cognito.admin_add_user_to_group(UserPoolId=self._pool, Username=email, GroupName=self._group)
        except ClientError as error:
            raise _worker_error(error, email) from error
        return f"invited {email}; Cognito emails a temporary password"

    def reset(self, email: str) -> str:
        """A worker who never signed in gets the invitation again (a new temporary password); one who did gets
        Cognito's reset: their password stops working and Cognito emails a code to choose a new one."""
        try:
            user = self._cognito.admin_get_user(UserPoolId=self._pool, Username=email)
            if user.get("UserStatus") == "FORCE_CHANGE_PASSWORD":
                self._cognito.admin_create_user(
                    UserPoolId=self._pool, Username=email, MessageAction="RESEND", DesiredDeliveryMediums=["EMAIL"]
                )
                return f"invited {email} again; Cognito emails a new temporary password"
            self._cognito.admin_reset_user_password(UserPoolId=self._pool, Username=email)
        except ClientError as error:
            raise _worker_error(error, email) from error
        return f"reset {email}'s password; Cognito emails them a code to choose a new one at the next sign-in"

    def remove(self, email: str, *, reviewer: bool = False) -> str:
        if reviewer:
            raise WorkerError(NO_REVIEWERS)
        try:
            self._cognito.admin_remove_user_from_group(UserPoolId=self._pool, Username=email, GroupName=self._group)
            self._cognito.admin_delete_user(UserPoolId=self._pool, Username=email)
        except ClientError as error:
            raise _worker_error(error, email) from error
        return f"removed {email}"


def _worker_error(error: ClientError, email: str) -> WorkerError:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "UsernameExistsException":
        return WorkerError(f"{email} is already a worker")
    if code == "UserNotFoundException":
        return WorkerError(f"{email} is not a worker")
    return WorkerError(f"Cognito refused: {error}")


def workers(resources: Mapping[str, str], make_client: MakeClient, region: str) -> CognitoWorkers:
    pool, group = resources.get(USER_POOL_ID), resources.get(WORKER_GROUP)
    if not pool or not group:
        raise WorkerError("the workforce stack was not found: workers live in its user pool (deploy with make deploy)")
    return CognitoWorkers(make_client("cognito-idp", region_name=region), pool, group)


def supporting_stacks(project: str) -> tuple[str, ...]:
    """The stacks besides <project>-pipeline whose outputs the CLI reads (the workforce stack's user pool)."""
    return (f"{project}-workforce",)
