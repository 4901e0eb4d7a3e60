"""labeling.kmsKey: config rules, and the synthesized app with the stack's own key ("create")."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs

from labeling_pipeline.backends.ground_truth import Resources
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.names import StackOutput
from stacks.config import ConfigError, parse_config
from stacks.constructs.encryption_key import LabelingKey
from tests.stacks.conftest import ACCOUNT, REGION, Synthesized, joined_json, workteam_import

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MRK_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
GOV_ARN = f"arn:aws-us-gov:kms:us-gov-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["none", "create", KEY_ARN, MRK_ARN, GOV_ARN])
def test_kms_key_accepts_none_create_and_key_arns(value: str) -> None:
    assert parse_config({"labeling.kmsKey": value}).kms_key == value


def test_kms_key_is_off_by_default() -> None:
    config = parse_config({})
    assert config.kms_key == "none" and config.kms_key_arn is None
    assert parse_config({"labeling.kmsKey": "create"}).kms_key_arn is None
    assert parse_config({"labeling.kmsKey": KEY_ARN}).kms_key_arn == KEY_ARN


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "must be 'none', 'create', or a KMS key ARN"),
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/labeling", "an alias cannot be used"),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "must be 'none', 'create', or a KMS key ARN"),
        (f"arn:aws:kms:{REGION}:12345:key/1234abcd-12ab-34cd-56ef-1234567890ab", "KMS key ARN"),
        (KEY_ARN.upper(), "KMS key ARN"),
        (True, "must be a string"),
    ],
)
def test_kms_key_rejects_anything_else(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config({"labeling": {"kmsKey": value}})
    assert str(caught.value).startswith("labeling.kmsKey: ")


# --- an existing key: the stack cannot change its policy ---------------------------------------


def test_existing_key_records_what_its_policy_must_allow() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region=REGION))
    key = LabelingKey(stack, "Encryption", config=parse_config({"labeling.kmsKey": KEY_ARN}))
    assert not key.created and key.key_arn == KEY_ARN
    sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.KMS, encryption_master_key=key.key)
    statement = iam.PolicyStatement(
        sid="CloudWatchAlarmsToResultsTopic",
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["kms:GenerateDataKey*", "kms:Decrypt"],
        resources=["*"],
    )
    key.allow(statement, "CloudWatch alarms")
    key.allow(statement, "CloudWatch alarms")  # a second construct asking for the same: once
    assert list(key.owner_statements) == ["CloudWatchAlarmsToResultsTopic"]
    template = app.synth().get_stack_by_name("S")
    # No key, no key policy: only the queue that uses the existing key.
    types = {resource["Type"] for resource in template.template["Resources"].values()}
    assert types <= {"AWS::SQS::Queue", "AWS::CDK::Metadata"}
    warnings = [m.entry.data for m in template.messages if m.level == cdk.cx_api.SynthesisMessageLevel.WARNING]
    assert len(warnings) == 1 and "CloudWatch alarms" in str(warnings[0])
    assert "kms:GenerateDataKey*, kms:Decrypt" in str(warnings[0])


def test_existing_key_must_be_in_the_stack_region() -> None:
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account=ACCOUNT, region="eu-west-1"))
    with pytest.raises(ConfigError, match="the key is in us-east-1 but the stack deploys to eu-west-1"):
        LabelingKey(stack, "Encryption", config=parse_config({"labeling.kmsKey": KEY_ARN}))


# --- the app with labeling.kmsKey = "create" --------------------------------------------------


def _logical_id(synthesized: Synthesized, resource_type: str, prefix: str) -> str:
    [logical_id] = [name for name in synthesized.pipeline.find_resources(resource_type) if name.startswith(prefix)]
    return logical_id


def _key(synthesized: Synthesized) -> dict[str, Any]:
    return {"Fn::GetAtt": [_logical_id(synthesized, "AWS::KMS::Key", "EncryptionKey"), "Arn"]}


def _policy_statements(synthesized: Synthesized, prefix: str) -> list[dict[str, Any]]:
    policy = synthesized.pipeline.find_resources("AWS::IAM::Policy")[
        _logical_id(synthesized, "AWS::IAM::Policy", prefix)
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_default_deployment_has_no_key(synthesized: Synthesized) -> None:
    synthesized.pipeline.resource_count_is("AWS::KMS::Key", 0)
    assert "kms:" not in json.dumps(synthesized.pipeline.to_json())
    assert "KmsKeyArn" not in synthesized.pipeline.find_outputs("*")


def test_created_key_rotates_and_outlives_the_stack(synthesized_kms: Synthesized) -> None:
    synthesized_kms.pipeline.resource_count_is("AWS::KMS::Key", 1)
    key = synthesized_kms.pipeline.find_resources("AWS::KMS::Key")
    [resource] = key.values()
    assert resource["Properties"]["EnableKeyRotation"] is True
    assert resource["DeletionPolicy"] == "Retain"
    assert synthesized_kms.pipeline.find_outputs("KmsKeyArn")["KmsKeyArn"]["Value"] == _key(synthesized_kms)
    # The workforce stack has nothing to encrypt with it.
    synthesized_kms.workforce.resource_count_is("AWS::KMS::Key", 0)


def test_key_policy_is_exactly_the_account_and_what_each_service_needs(synthesized_kms: Synthesized) -> None:
    [resource] = synthesized_kms.pipeline.find_resources("AWS::KMS::Key").values()
    statements = resource["Properties"]["KeyPolicy"]["Statement"]
    role = {"Fn::GetAtt": [_logical_id(synthesized_kms, "AWS::IAM::Role", "GroundTruthRole"), "Arn"]}
    expected: list[dict[str, Any]] = [
        {
            # aws-cdk-lib's default: the account's IAM policies decide (Lambda roles, CLI users).
            "Action": "kms:*",
            "Effect": "Allow",
            # @aws-cdk/core:enablePartitionLiterals: the region is known, so is the partition.
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Resource": "*",
        },
        {
            # https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-kms-permissions.html
            "Sid": "GroundTruthExecutionRole",
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Resource": "*",
        },
        {
            "Sid": "S3NotificationsToUploadQueue",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsOfThisAccount",
            "Action": ["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}
            },
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
            "Resource": "*",
        },
        {
            "Sid": "EventBridgeDeadLetters",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchAlarmsToResultsTopic",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Resource": "*",
        },
    ]
    assert sorted(statements, key=lambda s: str(s.get("Sid"))) == sorted(expected, key=lambda s: str(s.get("Sid")))


def test_bucket_uses_sse_kms_with_a_bucket_key_and_the_log_bucket_stays_sse_s3(
    synthesized_kms: Synthesized,
) -> None:
    buckets = synthesized_kms.pipeline.find_resources("AWS::S3::Bucket")
    labeling = buckets[_logical_id(synthesized_kms, "AWS::S3::Bucket", "StorageBucket")]
    assert labeling["Properties"]["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {"KMSMasterKeyID": _key(synthesized_kms), "SSEAlgorithm": "aws:kms"},
            }
        ]
    }
    logs = buckets[_logical_id(synthesized_kms, "AWS::S3::Bucket", "StorageAccessLogs")]
    assert logs["Properties"]["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }


def test_queues_topic_and_log_groups_use_the_key(synthesized_kms: Synthesized) -> None:
    key = _key(synthesized_kms)
    queues = synthesized_kms.pipeline.find_resources("AWS::SQS::Queue")
    assert len(queues) == 3
    for queue in queues.values():
        assert queue["Properties"]["KmsMasterKeyId"] == key
        assert "SqsManagedSseEnabled" not in queue["Properties"]
    [topic] = synthesized_kms.pipeline.find_resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == key
    log_groups = synthesized_kms.pipeline.find_resources("AWS::Logs::LogGroup")
    assert len(log_groups) == 2
    for log_group in log_groups.values():
        assert log_group["Properties"]["KmsKeyId"] == key
    # Ground Truth publishes to the workteam topic itself: it stays as it is (see stacks/checkov_skips.py).
    [worker_topic] = synthesized_kms.workforce.find_resources("AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" not in worker_topic["Properties"]


def test_s3_may_send_only_from_this_bucket_to_the_encrypted_upload_queue(synthesized_kms: Synthesized) -> None:
    policies = synthesized_kms.pipeline.find_resources("AWS::SQS::QueuePolicy")
    upload_queue = {"Ref": _logical_id(synthesized_kms, "AWS::SQS::Queue", "LaunchUploadEvents")}
    [policy] = [p for p in policies.values() if p["Properties"]["Queues"] == [upload_queue]]
    s3_statements = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    ]
    assert s3_statements == [
        {
            "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
            "Condition": {
                "ArnLike": {
                    "aws:SourceArn": {
                        "Fn::GetAtt": [_logical_id(synthesized_kms, "AWS::S3::Bucket", "StorageBucket"), "Arn"]
                    }
                }
            },
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Resource": {"Fn::GetAtt": [upload_queue["Ref"], "Arn"]},
        }
    ]
    synthesized_kms.pipeline.resource_count_is("Custom::S3BucketNotifications", 1)


def test_roles_may_use_the_key_for_what_they_do(synthesized_kms: Synthesized) -> None:
    key = _key(synthesized_kms)
    ground_truth = _policy_statements(synthesized_kms, "GroundTruthAccess")
    assert {
        "Sid": "UseLabelingKey",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
        "Effect": "Allow",
        "Resource": key,
    } in ground_truth
    for prefix in ("LaunchLauncherAccess", "FollowJobEventsAccess"):
        assert {
            "Sid": "UseLabelingKey",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Effect": "Allow",
            "Resource": key,
        } in _policy_statements(synthesized_kms, prefix), prefix
    # The launcher's UseLabelingKey also covers what Lambda's SQS poller decrypts from the upload queue
    # (its role's default policy holds only the log statement). No role gets the key beyond these three policies.
    granted = [
        name
        for name, policy in synthesized_kms.pipeline.find_resources("AWS::IAM::Policy").items()
        if "kms:" in json.dumps(policy)
    ]
    assert len(granted) == 3


def test_the_backend_resources_name_the_key_for_ground_truth_output(synthesized_kms: Synthesized) -> None:
    functions = synthesized_kms.pipeline.find_resources("AWS::Lambda::Function")
    launcher = functions[_logical_id(synthesized_kms, "AWS::Lambda::Function", "LaunchLauncherFunction")]
    launcher_env = launcher["Properties"]["Environment"]["Variables"]
    role = {"Fn::GetAtt": [_logical_id(synthesized_kms, "AWS::IAM::Role", "GroundTruthRole"), "Arn"]}
    # CreateLabelingJob's OutputConfig.KmsKeyId, among the backend's resources.
    assert joined_json(launcher_env[Env.BACKEND_RESOURCES]) == {
        Resources.WORKTEAM_ARN: workteam_import(synthesized_kms),
        Resources.ROLE_ARN: role,
        Resources.OUTPUT_KMS_KEY_ID: _key(synthesized_kms),
    }
    # One set of backend resources: the job-events function and the CLI (the stack output) get the same.
    outputs = synthesized_kms.pipeline.find_outputs("*")
    assert outputs[StackOutput.BACKEND_RESOURCES]["Value"] == launcher_env[Env.BACKEND_RESOURCES]
    job_events = functions[_logical_id(synthesized_kms, "AWS::Lambda::Function", "FollowJobEventsFunction")]
    assert (
        job_events["Properties"]["Environment"]["Variables"][Env.BACKEND_RESOURCES]
        == (launcher_env[Env.BACKEND_RESOURCES])
    )


def test_cdk_nag_has_no_unacknowledged_finding_with_the_key(synthesized_kms: Synthesized) -> None:
    # Synthesis raises on any unacknowledged finding; it got here, and the report lists none.
    report = synthesized_kms.validation_report()
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])
