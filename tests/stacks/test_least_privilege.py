"""Least privilege, shown exactly: every role of the default deployment with every action it may take and on
which resources, rendered from the synthesized templates. A grant added anywhere (a construct, a CDK
default, a `grant_*` call) changes this table and fails the test until someone looks at it."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.stacks.conftest import Synthesized

# CDK appends an 8-character hash to logical ids; the table names resources without it.
_HASH = re.compile(r"[0-9A-F]{8}$")
# CDK's own deploy-time Lambdas (bucket notifications, AwsCustomResource) have fixed hash-like ids.
_CDK_SINGLETONS = {
    "BucketNotificationsHandler050a0587b7544547bf325f094a3db834Role": "CdkBucketNotificationsRole",
    "AWS679f53fac002430cb0da5b7982bd2287ServiceRole": "CdkCustomResourceRole",
}

BUCKET = "${StorageBucket.Arn}"
# With a known region, @aws-cdk/core:enablePartitionLiterals writes the partition as a literal.
LABELING_JOBS = "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/*"
BASIC_EXECUTION = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def _name(logical_id: str) -> str:
    stripped = _HASH.sub("", logical_id)
    return _CDK_SINGLETONS.get(stripped, stripped)


def render(value: Any) -> Any:
    """CloudFormation intrinsics as readable strings: {"Fn::GetAtt": ["BucketAB12CD34", "Arn"]} -> ${Bucket.Arn}."""
    if isinstance(value, list):
        return [render(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        ref = value["Ref"]
        return "${" + (ref if ref.startswith("AWS::") else _name(ref)) + "}"
    if "Fn::GetAtt" in value:
        return "${" + _name(value["Fn::GetAtt"][0]) + "." + value["Fn::GetAtt"][1] + "}"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(render(part)) for part in parts)
    return {key: render(item) for key, item in value.items()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


Grant = tuple[str, str, str]  # (effect, action, resource) with the condition folded into the resource


def grants_by_role(template: dict[str, Any]) -> dict[str, set[Grant]]:
    resources = template["Resources"]
    grants: dict[str, set[Grant]] = {
        _name(logical_id): set() for logical_id, r in resources.items() if r["Type"] == "AWS::IAM::Role"
    }

    def add(role: str, statement: dict[str, Any]) -> None:
        statement = render(statement)
        condition = f" if {json.dumps(statement['Condition'], sort_keys=True)}" if "Condition" in statement else ""
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                grants[role].add((statement["Effect"], action, resource + condition))

    for logical_id, resource in resources.items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::IAM::Role":
            for managed in properties.get("ManagedPolicyArns", []):
                grants[_name(logical_id)].add(("Managed", render(managed), ""))
            for policy in properties.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    add(_name(logical_id), statement)
        elif resource["Type"] == "AWS::IAM::Policy":
            for role in properties["Roles"]:
                for statement in properties["PolicyDocument"]["Statement"]:
                    add(_name(role["Ref"]), statement)
    return grants


def allow(actions: str, *resources: str) -> set[Grant]:
    return {("Allow", action, resource) for action in actions.split() for resource in resources}


EXPECTED_PIPELINE: dict[str, set[Grant]] = {
    "GroundTruthRole": allow("s3:GetObject", f"{BUCKET}/images/*", f"{BUCKET}/jobs/*")
    | allow("s3:PutObject s3:GetObject s3:AbortMultipartUpload", f"{BUCKET}/output/*")
    | allow("s3:GetBucketLocation", BUCKET)
    | allow("s3:ListBucket", BUCKET + ' if {"StringLike": {"s3:prefix": ["images/*", "jobs/*", "output/*"]}}')
    | allow(
        "logs:CreateLogGroup logs:CreateLogStream logs:PutLogEvents logs:DescribeLogStreams",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/LabelingJobs:*",
    )
    | allow("cloudwatch:PutMetricData", "*"),
    "LaunchLauncherRole": allow("logs:CreateLogStream logs:PutLogEvents", "${LaunchLauncherLogs.Arn}")
    | allow("sqs:ReceiveMessage sqs:DeleteMessage sqs:GetQueueAttributes", "${LaunchUploadEvents.Arn}")
    | allow("sagemaker:CreateLabelingJob sagemaker:DescribeLabelingJob sagemaker:AddTags", LABELING_JOBS)
    | allow(
        "iam:PassRole",
        '${GroundTruthRole.Arn} if {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}',
    )
    | allow("s3:GetObject s3:PutObject", f"{BUCKET}/jobs/*")
    | allow("dynamodb:PutItem dynamodb:BatchGetItem", "${LaunchLedger.Arn}")
    | allow("sqs:SendMessage", "${LaunchDeadLetterQueue.Arn}")
    # The back-off: a message sent back to its own queue while the labeling service is down.
    | allow("sqs:SendMessage", "${LaunchUploadEvents.Arn}"),
    "FollowJobEventsRole": allow("logs:CreateLogStream logs:PutLogEvents", "${FollowJobEventsLogs.Arn}")
    | allow("sqs:SendMessage", "${FollowFailedJobEvents.Arn}")
    | allow("sagemaker:DescribeLabelingJob", LABELING_JOBS)
    | allow("s3:GetObject", f"{BUCKET}/jobs/*", f"{BUCKET}/output/*")
    | allow("s3:PutObject", f"{BUCKET}/exports/*")
    | allow("dynamodb:GetItem dynamodb:UpdateItem dynamodb:BatchGetItem dynamodb:BatchWriteItem", "${LaunchLedger.Arn}")
    | allow("sns:Publish", "${FollowResults}"),
    # CDK's handler that writes the bucket's notification configuration at deploy time.
    "CdkBucketNotificationsRole": {("Managed", BASIC_EXECUTION, "")} | allow("s3:PutBucketNotification", BUCKET),
}

EXPECTED_WORKFORCE: dict[str, set[Grant]] = {
    # CDK's AwsCustomResource that points the app client at the worker portal once the workforce exists.
    "CdkCustomResourceRole": {("Managed", BASIC_EXECUTION, "")}
    | allow("cognito-idp:UpdateUserPoolClient", "${WorkersUserPool.Arn}"),
}


def _template(synthesized: Synthesized, stack: str) -> dict[str, Any]:
    return dict(synthesized.assembly.get_stack_by_name(stack).template)


def _diff(actual: dict[str, set[Grant]], expected: dict[str, set[Grant]]) -> str:
    lines = []
    for role in sorted(set(actual) | set(expected)):
        for grant in sorted(actual.get(role, set()) - expected.get(role, set())):
            lines.append(f"unexpected {role}: {grant}")
        for grant in sorted(expected.get(role, set()) - actual.get(role, set())):
            lines.append(f"missing    {role}: {grant}")
    return "\n".join(lines)


def test_every_pipeline_role_has_exactly_the_expected_grants(synthesized: Synthesized) -> None:
    actual = grants_by_role(_template(synthesized, "gt-labeling-pipeline"))
    assert actual == EXPECTED_PIPELINE, _diff(actual, EXPECTED_PIPELINE)


def test_every_workforce_role_has_exactly_the_expected_grants(synthesized: Synthesized) -> None:
    actual = grants_by_role(_template(synthesized, "gt-labeling-workforce"))
    assert actual == EXPECTED_WORKFORCE, _diff(actual, EXPECTED_WORKFORCE)


def test_pass_role_only_for_the_ground_truth_role_to_sagemaker(synthesized: Synthesized) -> None:
    for stack in ("gt-labeling-pipeline", "gt-labeling-workforce"):
        for role, grants in grants_by_role(_template(synthesized, stack)).items():
            for _effect, action, resource in grants:
                if action in ("iam:PassRole", "iam:*", "*"):
                    assert role == "LaunchLauncherRole", f"{role} may pass roles"
                    assert resource.startswith("${GroundTruthRole.Arn} if ")
                    assert '"iam:PassedToService": "sagemaker.amazonaws.com"' in resource


def test_no_wildcard_resource_or_action_in_any_grant(synthesized: Synthesized) -> None:
    # Every API these roles call supports resource-level permissions, so "*" is never needed, except
    # cloudwatch:PutMetricData (no resource type at all): the Ground Truth role has it on "*" without a
    # condition, as its execution-role page grants it, and nothing else is on "*".
    on_everything = []
    for stack in ("gt-labeling-pipeline", "gt-labeling-workforce"):
        for role, grants in grants_by_role(_template(synthesized, stack)).items():
            for effect, action, resource in grants:
                if resource == "*" or resource.startswith("* if"):
                    on_everything.append((role, action, resource))
                assert not action.endswith(":*") and action != "*", f"{role}: {action}"
                assert effect != "Deny"
    assert on_everything == [("GroundTruthRole", "cloudwatch:PutMetricData", "*")]


def _statements_by_sid(template: dict[str, Any], policy_prefix: str) -> dict[str, dict[str, Any]]:
    [policy] = [
        r["Properties"]
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Policy" and logical_id.startswith(policy_prefix)
    ]
    return {statement["Sid"]: render(statement) for statement in policy["PolicyDocument"]["Statement"]}


def test_ground_truth_role_has_the_bucket_and_metrics_statements_its_execution_role_page_asks_for(
    synthesized: Synthesized,
) -> None:
    # https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-permission-execution-role.html
    statements = _statements_by_sid(_template(synthesized, "gt-labeling-pipeline"), "GroundTruthAccess")
    # GetBucketLocation names no prefix: under ListBucket's s3:prefix condition it would never be allowed.
    assert statements["LocateBucket"] == {
        "Sid": "LocateBucket",
        "Action": "s3:GetBucketLocation",
        "Effect": "Allow",
        "Resource": BUCKET,
    }
    assert statements["ListLabelingPrefixes"] == {
        "Sid": "ListLabelingPrefixes",
        "Action": "s3:ListBucket",
        "Condition": {"StringLike": {"s3:prefix": ["images/*", "jobs/*", "output/*"]}},
        "Effect": "Allow",
        "Resource": BUCKET,
    }
    # "CloudWatch to log worker metrics and labeling job statuses": PutMetricData has no resource type.
    assert statements["JobMetrics"] == {
        "Sid": "JobMetrics",
        "Action": "cloudwatch:PutMetricData",
        "Effect": "Allow",
        "Resource": "*",
    }
    assert set(statements) == {
        "ReadImagesAndTaskDefinitions",
        "WriteLabels",
        "LocateBucket",
        "ListLabelingPrefixes",
        "JobLogs",
        "JobMetrics",
    }


def test_the_metrics_wildcard_is_acknowledged_for_cdk_nag_with_its_own_reason(synthesized: Synthesized) -> None:
    policy = (
        synthesized.app.node.find_child("gt-labeling-pipeline").node.find_child("GroundTruth").node.find_child("Access")
    )
    acknowledged = {
        rule: reason
        for entry in policy.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
        for rule, reason in entry.data.items()
    }
    assert "supports no resource-level permissions" in acknowledged["Annotation::AwsSolutions-IAM5[Resource::*]"]
    # The other wildcards keep the reason about prefixes and the job log group.
    assert (
        "supports no resource-level"
        not in acknowledged["Annotation::AwsSolutions-IAM5[Resource::<StorageBucket5CB7C8EA.Arn>/output/*]"]
    )


def _topic_policy(template: dict[str, Any], topic_prefix: str) -> dict[str, dict[str, Any]]:
    [policy] = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and _name(r["Properties"]["Topics"][0]["Ref"]).startswith(topic_prefix)
    ]
    return {statement["Sid"]: render(statement) for statement in policy["PolicyDocument"]["Statement"]}


def test_topic_policies_let_exactly_the_publishing_services_in(synthesized: Synthesized) -> None:
    # A topic policy replaces SNS's default one: a service that publishes needs its own Allow statement.
    results = _topic_policy(_template(synthesized, "gt-labeling-pipeline"), "FollowResults")
    assert set(results) == {"AllowPublishThroughSSLOnly", "CloudWatchAlarmsPublish"}
    alarms = results["CloudWatchAlarmsPublish"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and alarms["Action"] == "sns:Publish"
    assert alarms["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }
    workers = _topic_policy(_template(synthesized, "gt-labeling-workforce"), "PrivateWorkforceWorkerNotifications")
    assert set(workers) == {"DenyInsecureTransport", "AwsSagemakerSnsAccessPolicy"}
    sagemaker = workers["AwsSagemakerSnsAccessPolicy"]
    assert sagemaker["Principal"] == {"Service": "sagemaker.amazonaws.com"} and sagemaker["Action"] == "sns:Publish"
    assert sagemaker["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/*"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }
