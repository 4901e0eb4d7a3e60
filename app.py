#!/usr/bin/env python3
"""CDK app: the workforce stack and the labeling pipeline stack, configured from cdk.json context."""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.checkov_skips import add_checkov_skips
from stacks.config import ConfigError, parse_config
from stacks.labeling_stack import LabelingPipelineStack
from stacks.region_check import check_region
from stacks.workforce_stack import WorkforceStack


def build_app(app: cdk.App) -> cdk.App:
    config = parse_config(app.node.get_all_context())
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    check_region(env.region)
    workforce = WorkforceStack(app, f"{config.project_name}-workforce", config=config, env=env)
    pipeline = LabelingPipelineStack(
        app, f"{config.project_name}-pipeline", config=config, workteam_arn=workforce.workteam_arn, env=env
    )
    pipeline.add_stack_dependency(workforce)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # checkov runs on the synthesized templates in `make test`; its reviewed skips travel in them.
    add_checkov_skips(app, config)
    return app


if __name__ == "__main__":
    try:
        build_app(cdk.App()).synth()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        sys.exit(1)
