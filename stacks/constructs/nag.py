"""Acknowledging cdk-nag findings, each with the reason a reviewer reads in the validation report.

cdk-nag 3 reports wildcard findings per resource, e.g.
``AwsSolutions-IAM5[Resource::<BucketLogicalId.Arn>/jobs/*]``; an acknowledgement must name that exact
finding, so `acknowledge_wildcard_resources` renders each wildcard resource the way cdk-nag does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

LAMBDA_BASIC_EXECUTION = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
)


# The construct id of aws-cdk-lib's AwsCustomResource provider, one per stack (custom_resources.AwsCustomResource).
AWS_CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def acknowledge_aws_custom_resource_provider(stack: cdk.Stack) -> None:
    """The findings on aws-cdk-lib's own AwsCustomResource provider function, once the stack has one."""
    provider = stack.node.try_find_child(AWS_CUSTOM_RESOURCE_PROVIDER)
    if provider is None:
        return
    acknowledge(
        provider,
        LAMBDA_BASIC_EXECUTION,
        "CDK's AwsCustomResource provider logs with AWSLambdaBasicExecutionRole; it runs only at deploy.",
    )
    acknowledge(
        provider,
        "AwsSolutions-L1",
        "The runtime of CDK's AwsCustomResource provider is chosen by aws-cdk-lib, not by this app.",
    )


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_render(part) for part in parts)
    raise ValueError(f"cannot render {value!r} as cdk-nag does")


def acknowledge_wildcard_resources(policy: iam.Policy, reason: str, reasons: Mapping[str, str] | None = None) -> None:
    """Acknowledge AwsSolutions-IAM5 for each wildcard resource of the policy, and only those.

    `reasons` gives a resource (as cdk-nag renders it, e.g. ``*``) a reason of its own."""
    stack = cdk.Stack.of(policy)
    document = stack.resolve(policy.document.to_json())
    for statement in document.get("Statement", []):
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            rendered = _render(resource)
            if "*" in rendered:
                why = (reasons or {}).get(rendered, reason)
                acknowledge(policy, f"AwsSolutions-IAM5[Resource::{rendered}]", why)
