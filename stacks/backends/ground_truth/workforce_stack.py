"""The workforce stack: worker pool, private workforce and workteam (composes constructs only)."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from labeling_pipeline.backends.ground_truth.workers import USER_POOL_ID, WORKER_GROUP
from stacks.backends.ground_truth.private_workforce import PrivateWorkforce
from stacks.backends.ground_truth.settings import GroundTruthConfig
from stacks.backends.ground_truth.worker_pool import WorkerPool


class WorkforceStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: GroundTruthConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY
        # Cognito domain prefixes are global per region: default to one made unique by the stack's id.
        domain_prefix = config.cognito_domain_prefix or cdk.Fn.join(
            "-", [config.project_name, cdk.Fn.select(2, cdk.Fn.split("/", self.stack_id))]
        )
        pool = WorkerPool(
            self,
            "Workers",
            worker_emails=config.worker_emails,
            domain_prefix=domain_prefix,
            removal_policy=removal,
        )
        self.workforce = PrivateWorkforce(self, "PrivateWorkforce", pool=pool, name=config.project_name)
        self.workteam_arn = self.workforce.workteam.attr_workteam_arn
        cdk.CfnOutput(self, "WorkerPortalUrl", value=self.workforce.portal_url)
        cdk.CfnOutput(self, USER_POOL_ID, value=pool.user_pool.user_pool_id)
        cdk.CfnOutput(self, WORKER_GROUP, value=pool.group.group_name or "")
        cdk.CfnOutput(self, "WorkteamArn", value=self.workteam_arn)
