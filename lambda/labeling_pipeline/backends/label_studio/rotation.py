"""`bbox-labeling rotate-credentials` for the Label Studio this stack deploys: a new API token for the pipeline and a
new password for the administrator, in one command.

1. The new values go into their secrets (PutSecretValue: a new AWSCURRENT version of each).
2. The service is redeployed (ECS UpdateService, forceNewDeployment): each new task reads the secrets at start,
   and labeling_gate.start applies them to the administrator in the database, so the old token and password stop
   working as soon as the first new task is up, on every task, since both live in the database.
3. The command waits until Label Studio accepts the new token (and refuses the old one), then says so.

Meanwhile the pipeline's functions hold the old token until Label Studio refuses it; they then read the secret
again (LabelStudioApi's refresh_token) and go on. Nothing to redeploy in the pipeline stack. A server given by
labeling.labelStudioUrl is not this stack's: its token is rotated in that Label Studio, then put into the secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping

from labeling_pipeline.backends import MakeClient, WorkerError
from labeling_pipeline.backends.label_studio import Resources
from labeling_pipeline.backends.label_studio.api import LabelStudioApi, LabelStudioRefused, LabelStudioUnavailable

# The pipeline stack's outputs (stacks/backends/label_studio/infrastructure.py) that the CLI reads.
ADMIN_PASSWORD_SECRET_OUTPUT = "LabelStudioAdminSecretArn"
CLUSTER_OUTPUT = "LabelStudioClusterName"
SERVICE_OUTPUT = "LabelStudioServiceName"
# Label Studio's legacy tokens are 40 hex digits, as the stack generates them.
TOKEN_BYTES = 20
PASSWORD_BYTES = 24
# A rolling deployment replaces the tasks one by one behind the load balancer's health checks.
WAIT_SECONDS = 30 * 60
POLL_SECONDS = 15.0


class RotationError(WorkerError):
    pass


def rotate_credentials(
    resources: Mapping[str, str],
    make_client: MakeClient,
    region: str,
    *,
    wait_seconds: float = WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    missing = [
        name for name in (ADMIN_PASSWORD_SECRET_OUTPUT, CLUSTER_OUTPUT, SERVICE_OUTPUT) if not resources.get(name)
    ]
    if missing:
        raise RotationError(
            "this stack does not deploy Label Studio (labeling.labelStudioUrl names an existing server): rotate "
            "the token in that Label Studio, then put it into the API token secret "
            f"({resources.get(Resources.API_TOKEN_SECRET_ARN, 'LabelStudioApiTokenSecretArn')})"
            if not resources.get(ADMIN_PASSWORD_SECRET_OUTPUT)
            else f"the stack's outputs lack {', '.join(missing)}: deploy the stack again (make deploy)"
        )
    url = resources[Resources.URL]
    token_secret = resources[Resources.API_TOKEN_SECRET_ARN]
    manager = make_client("secretsmanager", region_name=region)
    old_token = str(manager.get_secret_value(SecretId=token_secret)["SecretString"])
    new_token = secrets.token_hex(TOKEN_BYTES)
    new_password = secrets.token_urlsafe(PASSWORD_BYTES)
    manager.put_secret_value(SecretId=token_secret, SecretString=new_token)
    manager.put_secret_value(SecretId=resources[ADMIN_PASSWORD_SECRET_OUTPUT], SecretString=new_password)
    ecs = make_client("ecs", region_name=region)
    ecs.update_service(cluster=resources[CLUSTER_OUTPUT], service=resources[SERVICE_OUTPUT], forceNewDeployment=True)
    lines = [
        "New API token and administrator password are in their secrets; Label Studio's service is redeploying.",
        f"Waiting for Label Studio at {url} to take them (up to {int(wait_seconds // 60)} minutes)...",
    ]
    deadline = clock() + wait_seconds
    new_api, old_api = LabelStudioApi(url, new_token), LabelStudioApi(url, old_token)
    while not _accepts(new_api):
        if clock() > deadline:
            raise RotationError(
                "\n".join(lines)
                + f"\nLabel Studio did not take the new token within {int(wait_seconds // 60)} minutes: see the "
                "service's events and its tasks' logs (a failed deployment rolls back, and the rolled-back tasks "
                "apply the new secrets too when they start)."
            )
        sleep(poll_seconds)
    if _accepts(old_api):
        raise RotationError("\n".join(lines) + "\nLabel Studio takes the new token but still takes the old one.")
    return [
        *lines,
        "Done: Label Studio takes the new token and refuses the old one. The administrator's new password is in "
        f"the secret {resources[ADMIN_PASSWORD_SECRET_OUTPUT]}; the pipeline's functions read the new token when "
        "Label Studio first refuses the old one.",
    ]


def _accepts(api: LabelStudioApi) -> bool:
    try:
        api.current_user()
    except LabelStudioRefused as error:
        if error.status == 401:
            return False
        raise
    except LabelStudioUnavailable:
        return False
    return True
