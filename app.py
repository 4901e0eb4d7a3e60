#!/usr/bin/env python3
"""CDK app: the labeling pipeline stack and the stacks of the configured labeling backend, from cdk.json context."""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.backends import backend_stacks
from stacks.checkov_skips import add_checkov_skips
from stacks.config import ConfigError, parse_config
from stacks.labeling_stack import LabelingPipelineStack


def build_app(app: cdk.App) -> cdk.App:
    config = parse_config(app.node.get_all_context())
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    parts = backend_stacks(config.backend)
    backend = parts.infrastructure()
    backend.check_region(env.region)
    supporting = backend.supporting_stacks(app, config, env)
    pipeline = LabelingPipelineStack(app, f"{config.project_name}-pipeline", config=config, backend=backend, env=env)
    for stack in supporting:
        pipeline.add_stack_dependency(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # checkov runs on the synthesized templates in `make test`; its reviewed skips travel in them.
    add_checkov_skips(app, config, parts.checkov_skips)
    return app


if __name__ == "__main__":
    try:
        build_app(cdk.App()).synth()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        sys.exit(1)
