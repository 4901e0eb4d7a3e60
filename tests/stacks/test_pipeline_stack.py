from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from labeling_pipeline.backends.ground_truth import Resources
from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from labeling_pipeline.backends.registry import settings_model
from labeling_pipeline.ledger_schema import create_table_arguments
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.names import StackOutput
from labeling_pipeline.runtime import pipeline_settings
from labeling_pipeline.settings import aliases
from tests.stacks.conftest import Synthesized, joined_json, logical_id, workteam_import


def _statements(synthesized: Synthesized, policy_prefix: str) -> list[dict[str, Any]]:
    policies = synthesized.pipeline.find_resources("AWS::IAM::Policy")
    [policy] = [p for logical_id, p in policies.items() if logical_id.startswith(policy_prefix)]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_bucket_is_private_encrypted_tls_only_versioned_with_ground_truth_cors(
    synthesized: Synthesized,
) -> None:
    synthesized.pipeline.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "CorsConfiguration": {
                "CorsRules": [
                    {
                        "AllowedMethods": ["GET"],
                        "AllowedOrigins": ["*"],
                        "ExposedHeaders": ["Access-Control-Allow-Origin"],
                    }
                ]
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "labeling-bucket/"}),
        },
    )
    policies = synthesized.pipeline.find_resources("AWS::S3::BucketPolicy")
    text = json.dumps(policies)
    assert '"aws:SecureTransport": "false"' in text
    for bucket in synthesized.pipeline.find_resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain"


def test_uploads_under_images_go_to_a_queue_with_a_dead_letter_queue(synthesized: Synthesized) -> None:
    synthesized.pipeline.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
                        "QueueArn": Match.any_value(),
                    }
                ]
            }
        },
    )
    synthesized.pipeline.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
            "SqsManagedSseEnabled": True,
            "VisibilityTimeout": 1800,
        },
    )
    # upload events, their DLQ, and the DLQ of the job-events rule
    synthesized.pipeline.resource_count_is("AWS::SQS::Queue", 3)


def test_launcher_reads_the_queue_with_configured_batching_and_partial_failures(
    synthesized: Synthesized,
) -> None:
    synthesized.pipeline.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 1000,
            "MaximumBatchingWindowInSeconds": 60,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    functions = synthesized.pipeline.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "labeling_pipeline.handler.lambda_handler"}}
    )
    [launcher] = functions.values()
    properties = launcher["Properties"]
    assert properties["Runtime"] == "python3.14"
    assert properties["Timeout"] == 300
    [layer] = properties["Layers"]
    assert json.dumps(layer).count("017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-x86_64:36") == 1
    env = properties["Environment"]["Variables"]
    assert set(env) >= {
        Env.BUCKET_NAME,
        Env.LEDGER_TABLE_NAME,
        Env.DEAD_LETTER_QUEUE_URL,
        Env.PIPELINE_SETTINGS,
        Env.BACKEND_RESOURCES,
    }
    # Its own queue, for the back-off while the labeling service is down.
    [upload_queue] = synthesized.pipeline.find_resources(
        "AWS::SQS::Queue", {"Properties": {"RedrivePolicy": Match.any_value()}}
    )
    assert env[Env.LAUNCH_QUEUE_URL] == {"Ref": upload_queue}
    assert env[Env.METRIC_NAMESPACE] == "GroundTruthLabeling"  # the default, as before the backend seam
    # The variables the backend seam replaced are gone.
    assert not {"WORKTEAM_ARN", "GROUND_TRUTH_ROLE_ARN", "TASK_SETTINGS", "OUTPUT_KMS_KEY_ID"} & set(env)
    assert_configured_settings(synthesized, env[Env.PIPELINE_SETTINGS])
    # Without labeling.kmsKey, no output key: the workteam from the workforce stack, and the stack's role.
    assert joined_json(env[Env.BACKEND_RESOURCES]) == {
        Resources.WORKTEAM_ARN: workteam_import(synthesized),
        Resources.ROLE_ARN: ground_truth_role_arn(synthesized),
    }


def ground_truth_role_arn(synthesized: Synthesized) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(synthesized.pipeline, "AWS::IAM::Role", "GroundTruthRole"), "Arn"]}


def assert_configured_settings(synthesized: Synthesized, text: Any) -> None:
    """PIPELINE_SETTINGS is plain JSON that the functions' own parser reads into the configured values."""
    assert isinstance(text, str)
    config = synthesized.config
    settings = pipeline_settings({Env.PIPELINE_SETTINGS: text})
    model = settings_model(config.backend)
    assert type(settings).__name__ == model.__name__ and isinstance(settings, GroundTruthSettings)
    assert sorted(json.loads(text)) == sorted(aliases(model))  # nothing that only the deployment reads
    assert {name: getattr(settings, name) for name in model.model_fields} == {
        name: getattr(config, name) for name in model.model_fields
    }
    assert settings.backend == "ground-truth"
    assert settings.labels == ("Dog", "Cat") and settings.label_attribute_name == "labels"


def test_ground_truth_role_reads_inputs_and_writes_output_only(synthesized: Synthesized) -> None:
    roles = synthesized.pipeline.find_resources("AWS::IAM::Role")
    [role] = [r for logical_id, r in roles.items() if logical_id.startswith("GroundTruthRole")]
    assert "ManagedPolicyArns" not in role["Properties"]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = {s["Sid"]: s for s in _statements(synthesized, "GroundTruthAccess")}
    assert set(statements) == {
        "ReadImagesAndTaskDefinitions",
        "WriteLabels",
        "LocateBucket",
        "ListLabelingPrefixes",
        "JobLogs",
        "JobMetrics",
    }
    assert statements["ReadImagesAndTaskDefinitions"]["Action"] == "s3:GetObject"
    read = json.dumps(statements["ReadImagesAndTaskDefinitions"]["Resource"])
    assert '"/images/*"' in read and '"/jobs/*"' in read and "output" not in read
    # @aws-cdk/aws-iam:minimizePolicies sorts the actions.
    assert statements["WriteLabels"]["Action"] == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    assert statements["LocateBucket"]["Action"] == "s3:GetBucketLocation"
    assert "Condition" not in statements["LocateBucket"]
    assert statements["ListLabelingPrefixes"]["Action"] == "s3:ListBucket"
    assert statements["ListLabelingPrefixes"]["Condition"] == {
        "StringLike": {"s3:prefix": ["images/*", "jobs/*", "output/*"]}
    }
    assert '"/output/*"' in json.dumps(statements["WriteLabels"]["Resource"])
    assert ":log-group:/aws/sagemaker/LabelingJobs:*" in json.dumps(statements["JobLogs"]["Resource"])


def test_launcher_permissions_are_scoped(synthesized: Synthesized) -> None:
    statements = {s["Sid"]: s for s in _statements(synthesized, "LaunchLauncherAccess")}
    assert set(statements) == {
        "CreateLabelingJobs",
        "PassGroundTruthRole",
        "TaskDefinitions",
        "Ledger",
        "DeadLetter",
        "BackOff",
        "ConsumeUploadEvents",
    }
    create = statements["CreateLabelingJobs"]
    assert create["Action"] == [
        "sagemaker:AddTags",
        "sagemaker:CreateLabelingJob",
        "sagemaker:DescribeLabelingJob",
    ]
    assert create["Resource"] == "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/*"
    pass_role = statements["PassGroundTruthRole"]
    assert pass_role["Resource"]["Fn::GetAtt"][0].startswith("GroundTruthRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert statements["TaskDefinitions"]["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert '"/jobs/*"' in json.dumps(statements["TaskDefinitions"]["Resource"])
    assert statements["Ledger"]["Action"] == ["dynamodb:BatchGetItem", "dynamodb:PutItem"]
    assert statements["ConsumeUploadEvents"]["Action"] == [
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ]
    # The back-off sends to the upload queue, and to nothing else (the dead-letter queue has its own statement).
    assert statements["BackOff"]["Action"] == "sqs:SendMessage"
    assert statements["BackOff"]["Resource"] == statements["ConsumeUploadEvents"]["Resource"]
    # No statement in the pipeline grants an action on "*" but the Ground Truth role's PutMetricData, which
    # has no resource type (tests/stacks/test_least_privilege.py).
    on_everything = [
        statement.get("Sid")
        for policy in synthesized.pipeline.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == "*"
    ]
    assert on_everything == ["JobMetrics"]


def test_ledger_table_has_point_in_time_recovery(synthesized: Synthesized) -> None:
    synthesized.pipeline.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        },
    )


def test_ledger_table_has_the_keys_and_indexes_the_code_and_the_tests_use(synthesized: Synthesized) -> None:
    # tests/support.py builds the moto table from create_table_arguments(); the stack must declare the same.
    [table] = synthesized.pipeline.find_resources("AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    expected = create_table_arguments()
    assert properties["KeySchema"] == expected["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert properties["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    assert properties["BillingMode"] == expected["BillingMode"]
    # A deployed table (key pk, no index) takes this in one update: CloudFormation creates at most one global
    # secondary index per table update. The projection never copies a job's summary (up to 300 KB).
    [index] = properties["GlobalSecondaryIndexes"]
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert "summary" not in index["Projection"]["NonKeyAttributes"]


def test_pipeline_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.pipeline.find_outputs("*")
    assert {"BucketName", "UploadCommand", "GroundTruthRoleArn", "DeadLetterQueueUrl"} <= set(outputs)
    assert "aws s3 cp --recursive ./my-images s3://" in json.dumps(outputs["UploadCommand"]["Value"])
    # Every output the CLI reads is there (the key's only with labeling.kmsKey), and none of the ones the
    # backend seam replaced.
    assert {output.value for output in StackOutput if output != StackOutput.KMS_KEY_ARN} <= set(outputs)
    assert StackOutput.KMS_KEY_ARN not in outputs
    assert not {"Labels", "LabelAttributeName"} & set(outputs)


def test_outputs_give_the_cli_what_the_functions_get(synthesized: Synthesized) -> None:
    """The CLI builds the backend from these outputs as the functions do from their environment."""
    outputs = synthesized.pipeline.find_outputs("*")
    assert outputs[StackOutput.LABELING_BACKEND]["Value"] == "ground-truth"
    assert_configured_settings(synthesized, outputs[StackOutput.PIPELINE_SETTINGS]["Value"])
    functions = synthesized.pipeline.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "labeling_pipeline.handler.lambda_handler"}}
    )
    [launcher] = functions.values()
    env = launcher["Properties"]["Environment"]["Variables"]
    assert outputs[StackOutput.PIPELINE_SETTINGS]["Value"] == env[Env.PIPELINE_SETTINGS]
    assert outputs[StackOutput.BACKEND_RESOURCES]["Value"] == env[Env.BACKEND_RESOURCES]
    assert joined_json(outputs[StackOutput.BACKEND_RESOURCES]["Value"]) == {
        Resources.WORKTEAM_ARN: workteam_import(synthesized),
        Resources.ROLE_ARN: ground_truth_role_arn(synthesized),
    }
