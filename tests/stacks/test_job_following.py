from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from app import build_app
from labeling_pipeline.backends.ground_truth import Resources
from labeling_pipeline.names import EnvironmentVariable as Env
from tests.stacks.conftest import Synthesized, joined_json, workteam_import
from tests.stacks.test_pipeline_stack import assert_configured_settings, ground_truth_role_arn


def _policy(synthesized: Synthesized, prefix: str) -> list[dict[str, Any]]:
    policies = synthesized.pipeline.find_resources("AWS::IAM::Policy")
    [policy] = [p for logical_id, p in policies.items() if logical_id.startswith(prefix)]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_rule_matches_only_this_stacks_jobs_reaching_an_end(synthesized: Synthesized) -> None:
    synthesized.pipeline.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Ground Truth Labeling Job State Change"],
                "detail": {"LabelingJobStatus": ["Completed", "Failed", "Stopped"]},
                "resources": [{"prefix": Match.any_value()}],
            },
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "RetryPolicy": {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 21600},
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                    }
                )
            ],
        },
    )
    [rule] = synthesized.pipeline.find_resources("AWS::Events::Rule").values()
    prefix = rule["Properties"]["EventPattern"]["resources"][0]["prefix"]
    assert prefix == "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/bbox-"


def test_job_events_function_is_sized_from_the_benchmark(synthesized: Synthesized) -> None:
    functions = synthesized.pipeline.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "labeling_pipeline.job_events.lambda_handler"}}
    )
    [function] = functions.values()
    assert function["Properties"]["MemorySize"] == 1024
    assert function["Properties"]["Timeout"] == 600
    # Room in /tmp for a large job's tasks.jsonl and the spooled exports (job_following.py says how much they take).
    assert function["Properties"]["EphemeralStorage"] == {"Size": 2048}
    assert function["Properties"]["Environment"]["Variables"]["JOB_LEASE_SECONDS"] == "660"
    assert "DeadLetterConfig" in function["Properties"]
    synthesized.pipeline.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2, "Qualifier": "$LATEST"}
    )
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) >= {
        Env.BUCKET_NAME,
        Env.LEDGER_TABLE_NAME,
        Env.RESULTS_TOPIC_ARN,
        Env.PIPELINE_SETTINGS,
        Env.BACKEND_RESOURCES,
    }
    assert not {"WORKTEAM_ARN", "GROUND_TRUTH_ROLE_ARN", "TASK_SETTINGS", "OUTPUT_KMS_KEY_ID"} & set(env)
    # The same settings as the launcher's, read by the functions' own parser into the configured values.
    assert_configured_settings(synthesized, env[Env.PIPELINE_SETTINGS])
    assert joined_json(env[Env.BACKEND_RESOURCES]) == {
        Resources.WORKTEAM_ARN: workteam_import(synthesized),
        Resources.ROLE_ARN: ground_truth_role_arn(synthesized),
    }
    assert env[Env.METRIC_NAMESPACE] == "GroundTruthLabeling"


def test_job_events_permissions(synthesized: Synthesized) -> None:
    statements = {s["Sid"]: s for s in _policy(synthesized, "FollowJobEventsAccess")}
    assert set(statements) == {"DescribeJobs", "ReadJobsAndOutput", "WriteExports", "Ledger", "Announce"}
    assert statements["DescribeJobs"]["Action"] == "sagemaker:DescribeLabelingJob"
    read = json.dumps(statements["ReadJobsAndOutput"]["Resource"])
    assert '"/jobs/*"' in read and '"/output/*"' in read and "images" not in read
    assert statements["WriteExports"]["Action"] == "s3:PutObject"
    assert '"/exports/*"' in json.dumps(statements["WriteExports"]["Resource"])
    # @aws-cdk/aws-iam:minimizePolicies sorts the actions.
    assert statements["Ledger"]["Action"] == [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    ]
    assert statements["Announce"]["Action"] == "sns:Publish"


def test_every_function_logs_only_to_its_own_log_group(synthesized: Synthesized) -> None:
    for prefix in ("LaunchLauncherRoleDefaultPolicy", "FollowJobEventsRoleDefaultPolicy"):
        [logs] = [s for s in _policy(synthesized, prefix) if s.get("Sid") == "Logs"]
        assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert logs["Resource"]["Fn::GetAtt"][1] == "Arn"
    with_managed = [
        logical_id
        for logical_id, role in synthesized.pipeline.find_resources("AWS::IAM::Role").items()
        if "ManagedPolicyArns" in role["Properties"]
    ]
    # Only CDK's own bucket-notification handler carries a managed (basic execution) policy.
    assert len(with_managed) == 1 and with_managed[0].startswith("BucketNotificationsHandler")


def test_results_topic_with_configured_email_subscription(synthesized: Synthesized) -> None:
    synthesized.pipeline.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-team@example.com"}
    )
    outputs = synthesized.pipeline.find_outputs("*")
    assert {"ResultsTopicArn", "FailedJobEventsQueueUrl"} <= set(outputs)


def test_alarms_for_what_needs_a_person_go_to_the_results_topic(synthesized: Synthesized) -> None:
    alarms = synthesized.pipeline.find_resources("AWS::CloudWatch::Alarm")
    by_metric = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")): a for a in alarms.values()}
    assert set(by_metric) == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("GroundTruthLabeling", "MessagesRetried"),
        ("GroundTruthLabeling", "MessagesBackedOff"),
        ("GroundTruthLabeling", "JobsFailedOrStopped"),
        ("GroundTruthLabeling", "JobEventsFailed"),
    }
    # two DLQs, two functions' errors, throttles, retries, back-offs (the service down), failed jobs, job ends that
    # could not be handled
    assert len(alarms) == 9
    [topic] = synthesized.pipeline.find_resources("AWS::SNS::Topic").keys()
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
        assert alarm["Properties"]["Threshold"] == 0
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    # The backend says what its retries mean.
    retried = by_metric[("GroundTruthLabeling", "MessagesRetried")]["Properties"]["AlarmDescription"]
    assert "CreateLabelingJob throttled" in retried


def test_a_configured_metric_namespace_reaches_the_functions_and_the_alarms(tmp_path: Path) -> None:
    app = build_app(cdk.App(outdir=str(tmp_path), context={"labeling.metricNamespace": "VehicleLabeling"}))
    stack = app.node.find_child("gt-labeling-pipeline")
    assert isinstance(stack, cdk.Stack)
    template = Template.from_stack(stack)
    handlers = {"labeling_pipeline.handler.lambda_handler", "labeling_pipeline.job_events.lambda_handler"}
    functions = [
        function["Properties"]
        for function in template.find_resources("AWS::Lambda::Function").values()
        if function["Properties"].get("Handler") in handlers
    ]
    assert len(functions) == 2
    for function in functions:
        env = function["Environment"]["Variables"]
        assert env[Env.METRIC_NAMESPACE] == "VehicleLabeling"
        assert json.loads(env[Env.PIPELINE_SETTINGS])["metricNamespace"] == "VehicleLabeling"
    alarms = template.find_resources("AWS::CloudWatch::Alarm").values()
    custom = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms}
    assert {("VehicleLabeling", "MessagesRetried"), ("VehicleLabeling", "JobsFailedOrStopped")} <= custom
    assert "GroundTruthLabeling" not in json.dumps(template.to_json())
