from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.stacks.conftest import Synthesized


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
    assert function["Properties"]["Environment"]["Variables"]["JOB_LEASE_SECONDS"] == "660"
    assert "DeadLetterConfig" in function["Properties"]
    synthesized.pipeline.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2, "Qualifier": "$LATEST"}
    )
    assert set(function["Properties"]["Environment"]["Variables"]) >= {
        "BUCKET_NAME",
        "LEDGER_TABLE_NAME",
        "RESULTS_TOPIC_ARN",
        "TASK_SETTINGS",
    }


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
        ("GroundTruthLabeling", "JobsFailedOrStopped"),
    }
    assert len(alarms) == 7  # two DLQs, two functions' errors, throttles, retries, failed jobs
    [topic] = synthesized.pipeline.find_resources("AWS::SNS::Topic").keys()
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
        assert alarm["Properties"]["Threshold"] == 0
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
