"""The app with labeling.backend "label-studio" (a server at labeling.labelStudioUrl; none deployed here).

Synthesized once per module for each of the two key settings (labeling.kmsKey "none" and "create"), from
cdk.json as committed plus the two overrides a user gives on the command line. Asserted: the backend's
resources, that nothing of Ground Truth is deployed, every role's grants statement by statement, and cfn-lint,
cdk-nag and checkov on both templates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from labeling_pipeline.backends.label_studio import Resources
from labeling_pipeline.names import EnvironmentVariable as Env
from labeling_pipeline.names import StackOutput
from stacks.backends.label_studio.checkov_skips import SKIPS
from stacks.backends.label_studio.infrastructure import CUSTOM_RESOURCE_TYPE, LabelStudioSecrets
from stacks.checkov_skips import SKIPS as GENERIC_SKIPS
from stacks.config import ConfigError, LabelingConfig, parse_config, runtime_settings_json
from tests.stacks.conftest import ACCOUNT, REGION, joined_json, logical_id, synthesize_app
from tests.stacks.test_checkov import CheckovRun, run_checkov
from tests.stacks.test_least_privilege import BASIC_EXECUTION, BUCKET, Grant, allow, grants_by_role
from tests.stacks.test_validation import cfn_lint_findings

URL = "https://labels.example.com"
OVERRIDES = {"labeling.backend": "label-studio", "labeling.labelStudioUrl": URL}
PIPELINE = "gt-labeling-pipeline"
SETUP_HANDLER = "labeling_pipeline.backends.label_studio.setup_handler.on_event"


@dataclass
class LabelStudioApp:
    outdir: Path
    template: Template
    raw: dict[str, Any]
    assembly: cdk.cx_api.CloudAssembly
    app: cdk.App
    config: LabelingConfig
    seconds: float

    def resources(self, resource_type: str) -> dict[str, Any]:
        return dict(self.template.find_resources(resource_type))

    def function(self, prefix: str) -> tuple[str, dict[str, Any]]:
        name = logical_id(self.template, "AWS::Lambda::Function", prefix)
        return name, self.raw["Resources"][name]


def _synthesize(outdir: Path, overrides: dict[str, str]) -> LabelStudioApp:
    done = synthesize_app(outdir, {**OVERRIDES, **overrides})
    raw = dict(done.assembly.get_stack_by_name(PIPELINE).template)
    return LabelStudioApp(outdir, Template.from_json(raw), raw, done.assembly, done.app, done.config, done.seconds)


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioApp]:
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.label-studio"), {})


@pytest.fixture(scope="module")
def label_studio_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioApp]:
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.label-studio.kms"), {"labeling.kmsKey": "create"})


# --- what is deployed --------------------------------------------------------------------------------------


def test_only_the_pipeline_stack_no_sagemaker_no_cognito(label_studio: LabelStudioApp) -> None:
    assert [stack.stack_name for stack in label_studio.assembly.stacks] == [PIPELINE]
    assert sorted(path.name for path in label_studio.outdir.glob("*.template.json")) == [f"{PIPELINE}.template.json"]
    types = {resource["Type"] for resource in label_studio.raw["Resources"].values()}
    assert not [t for t in types if t.startswith(("AWS::SageMaker::", "AWS::Cognito::"))], types
    assert "sagemaker" not in json.dumps(label_studio.raw).lower()
    assert "GroundTruthRoleArn" not in label_studio.raw["Outputs"]


def test_two_generated_secrets_kept_like_the_other_stateful_resources(label_studio: LabelStudioApp) -> None:
    secrets = label_studio.resources("AWS::SecretsManager::Secret")
    token = secrets[logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsApiToken")]
    webhook = secrets[logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsWebhook")]
    assert len(secrets) == 2
    # 40 lowercase hex digits: the shape of Label Studio's legacy token (LABEL_STUDIO_USER_TOKEN).
    assert token["Properties"]["GenerateSecretString"] == {
        "ExcludeCharacters": "ghijklmnopqrstuvwxyz",
        "ExcludePunctuation": True,
        "ExcludeUppercase": True,
        "IncludeSpace": False,
        "PasswordLength": 40,
    }
    assert webhook["Properties"]["GenerateSecretString"] == {
        "ExcludePunctuation": True,
        "IncludeSpace": False,
        "PasswordLength": 48,
    }
    for secret in (token, webhook):
        assert "KmsKeyId" not in secret["Properties"]
        assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"] == "Retain"


def test_an_existing_servers_token_secret_is_used_instead_of_a_generated_one(tmp_path: Path) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:label-studio/token-AbC123"
    app = _synthesize(tmp_path / "cdk.out", {"labeling.labelStudioApiTokenSecretArn": arn})
    (secret,) = app.resources("AWS::SecretsManager::Secret").values()  # only the webhook secret is made
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] == 48
    rendered = json.dumps(app.raw)
    assert f'"ApiTokenSecretArn": "{arn}"' in rendered  # the custom resource reads that secret
    launcher_reads = [
        statement
        for policy in app.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "ReadLabelStudioApiToken"
    ]
    assert launcher_reads and all(statement["Resource"] == arn for statement in launcher_reads)


def test_a_token_secret_that_is_not_a_complete_secret_arn_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"labelStudioApiTokenSecretArn: .* must be a Secrets Manager secret's complete ARN"
    ):
        parse_config({**OVERRIDES, "labeling.labelStudioApiTokenSecretArn": "label-studio/token"})


def test_a_review_step_reaches_the_project_setup_and_the_job_end(tmp_path: Path) -> None:
    """labeling.review: the setup makes the review project from the settings it is given, and the job end takes the
    review step from its own; both come from the one validated configuration."""
    app = _synthesize(tmp_path, {"labeling.workersPerImage": "3", "labeling.review": '{"agreementBelow": 0.6}'})
    [(_, resource)] = app.resources(CUSTOM_RESOURCE_TYPE).items()
    _, job_events = app.function("FollowJobEventsFunction")
    for settings in (
        resource["Properties"]["Settings"],
        job_events["Properties"]["Environment"]["Variables"]["PIPELINE_SETTINGS"],
    ):
        assert json.loads(settings)["review"] == {"agreementBelow": 0.6, "sampleShare": 0.0}
    with pytest.raises(Exception, match="workersPerImage 1 no image has an agreement"):
        _synthesize(tmp_path / "one", {"labeling.review": "{}"})


def test_the_retry_alarm_says_what_retries_mean_with_label_studio(label_studio: LabelStudioApp) -> None:
    [retried] = [
        alarm["Properties"]["AlarmDescription"]
        for alarm in label_studio.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "MessagesRetried"
    ]
    assert "Label Studio unavailable" in retried and "CreateLabelingJob" not in retried


def test_secrets_follow_removal_policy_destroy() -> None:
    stack = cdk.Stack(cdk.App(), "Bare")
    LabelStudioSecrets(stack, "Secrets", removal_policy=cdk.RemovalPolicy.DESTROY, key=None)
    for secret in Template.from_stack(stack).find_resources("AWS::SecretsManager::Secret").values():
        assert secret["DeletionPolicy"] == "Delete"


def test_webhook_url_without_iam_auth_on_the_job_events_function(label_studio: LabelStudioApp) -> None:
    job_events, _ = label_studio.function("FollowJobEventsFunction")
    urls = label_studio.resources("AWS::Lambda::Url")
    [(url_id, url)] = urls.items()
    assert url["Properties"] == {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": [job_events, "Arn"]}}
    permissions = [
        p["Properties"]
        for p in label_studio.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [job_events, "Arn"]}
    ]
    # Anyone may call the URL (the function checks the secret header); only the schedule may invoke otherwise.
    assert sorted(permissions, key=lambda p: (p["Action"], p["Principal"])) == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [job_events, "Arn"]},
            "InvokedViaFunctionUrl": True,
            "Principal": "*",
        },
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [job_events, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {
                "Fn::GetAtt": [logical_id(label_studio.template, "AWS::Events::Rule", "FollowReconcile"), "Arn"]
            },
        },
        {
            "Action": "lambda:InvokeFunctionUrl",
            "FunctionName": {"Fn::GetAtt": [job_events, "Arn"]},
            "FunctionUrlAuthType": "NONE",
            "Principal": "*",
        },
    ]
    assert label_studio.raw["Outputs"]["LabelStudioWebhookUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}


def test_the_reconciler_runs_every_5_minutes_with_the_rule_targets_retries(label_studio: LabelStudioApp) -> None:
    job_events, _ = label_studio.function("FollowJobEventsFunction")
    [rule] = label_studio.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert "EventPattern" not in rule["Properties"]
    assert rule["Properties"]["Targets"] == [
        {
            "Arn": {"Fn::GetAtt": [job_events, "Arn"]},
            "Id": "Target0",
            "RetryPolicy": {"MaximumEventAgeInSeconds": 6 * 3600, "MaximumRetryAttempts": 4},
            "DeadLetterConfig": {
                "Arn": {
                    "Fn::GetAtt": [logical_id(label_studio.template, "AWS::SQS::Queue", "FollowFailedJobEvents"), "Arn"]
                }
            },
        }
    ]


def test_the_project_custom_resource_gets_what_the_setup_handler_reads(label_studio: LabelStudioApp) -> None:
    [(resource_id, resource)] = label_studio.resources(CUSTOM_RESOURCE_TYPE).items()
    url_id = logical_id(label_studio.template, "AWS::Lambda::Url", "FollowJobEventsFunctionFunctionUrl")
    framework, _ = label_studio.function("LabelStudioProjectProviderframeworkonEvent")
    assert resource["Properties"] == {
        "ServiceToken": {"Fn::GetAtt": [framework, "Arn"]},
        "Settings": runtime_settings_json(label_studio.config),
        "Url": URL,
        "Bucket": {"Ref": logical_id(label_studio.template, "AWS::S3::Bucket", "StorageBucket")},
        "Region": REGION,
        "ApiTokenSecretArn": {
            "Ref": logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsApiToken")
        },
        "WebhookSecretArn": {
            "Ref": logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsWebhook")
        },
        "WebhookUrl": {"Fn::GetAtt": [url_id, "FunctionUrl"]},
    }
    assert json.loads(resource["Properties"]["Settings"])["backend"] == "label-studio"
    assert label_studio.raw["Outputs"]["LabelStudioProjectId"]["Value"] == {"Fn::GetAtt": [resource_id, "ProjectId"]}
    # The framework calls the setup function: the same asset and Powertools layer as the pipeline's functions.
    setup_id, setup = label_studio.function("LabelStudioProjectSetupFunction")
    _, launcher = label_studio.function("LaunchLauncherFunction")
    assert label_studio.raw["Resources"][framework]["Properties"]["Environment"]["Variables"] == {
        "USER_ON_EVENT_FUNCTION_ARN": {"Fn::GetAtt": [setup_id, "Arn"]}
    }
    assert setup["Properties"]["Handler"] == SETUP_HANDLER
    for key in ("Code", "Layers", "Runtime", "Architectures"):
        assert setup["Properties"][key] == launcher["Properties"][key], key


def test_the_functions_and_the_cli_get_the_backends_resources(label_studio: LabelStudioApp) -> None:
    expected = {
        Resources.URL: URL,
        Resources.BUCKET: {"Ref": logical_id(label_studio.template, "AWS::S3::Bucket", "StorageBucket")},
        Resources.API_TOKEN_SECRET_ARN: {
            "Ref": logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsApiToken")
        },
        Resources.WEBHOOK_SECRET_ARN: {
            "Ref": logical_id(label_studio.template, "AWS::SecretsManager::Secret", "LabelStudioSecretsWebhook")
        },
    }
    for prefix in ("LaunchLauncherFunction", "FollowJobEventsFunction"):
        _, function = label_studio.function(prefix)
        variables = function["Properties"]["Environment"]["Variables"]
        assert joined_json(variables[Env.BACKEND_RESOURCES]) == expected, prefix
        assert variables[Env.PIPELINE_SETTINGS] == runtime_settings_json(label_studio.config)
    outputs = label_studio.raw["Outputs"]
    assert joined_json(outputs[StackOutput.BACKEND_RESOURCES]["Value"]) == expected
    assert outputs[StackOutput.LABELING_BACKEND]["Value"] == "label-studio"
    assert outputs["LabelStudioApiTokenSecretArn"]["Value"] == expected[Resources.API_TOKEN_SECRET_ARN]
    assert "labelStudioApiTokenSecretArn" in outputs["LabelStudioApiTokenSecretArn"]["Description"]


# --- least privilege, statement by statement ---------------------------------------------------------------

API_TOKEN = "${LabelStudioSecretsApiToken}"
WEBHOOK_SECRET = "${LabelStudioSecretsWebhookSecret}"
KEY = "${EncryptionKey.Arn}"

EXPECTED: dict[str, set[Grant]] = {
    # Imports tasks: the API token only. No SageMaker, no PassRole.
    "LaunchLauncherRole": allow("logs:CreateLogStream logs:PutLogEvents", "${LaunchLauncherLogs.Arn}")
    | allow("sqs:ReceiveMessage sqs:DeleteMessage sqs:GetQueueAttributes", "${LaunchUploadEvents.Arn}")
    | allow("secretsmanager:GetSecretValue", API_TOKEN)
    | allow("s3:GetObject s3:PutObject", f"{BUCKET}/jobs/*")
    | allow("dynamodb:PutItem dynamodb:BatchGetItem", "${LaunchLedger.Arn}")
    | allow("sqs:SendMessage", "${LaunchDeadLetterQueue.Arn}")
    # The back-off while Label Studio is down: the message sent back to its own queue, delayed.
    | allow("sqs:SendMessage", "${LaunchUploadEvents.Arn}"),
    # Reads tasks (API token), checks the webhook (its secret), keeps an ended job's tasks under output/.
    "FollowJobEventsRole": allow("logs:CreateLogStream logs:PutLogEvents", "${FollowJobEventsLogs.Arn}")
    | allow("sqs:SendMessage", "${FollowFailedJobEvents.Arn}")
    | allow("secretsmanager:GetSecretValue", API_TOKEN, WEBHOOK_SECRET)
    | allow("s3:PutObject", f"{BUCKET}/output/*")
    | allow("s3:GetObject", f"{BUCKET}/jobs/*", f"{BUCKET}/output/*")
    | allow("s3:PutObject", f"{BUCKET}/exports/*")
    | allow("dynamodb:GetItem dynamodb:UpdateItem dynamodb:BatchGetItem dynamodb:BatchWriteItem", "${LaunchLedger.Arn}")
    | allow("sns:Publish", "${FollowResults}"),
    # The custom resource's handler: both secrets, nothing else.
    "LabelStudioProjectSetupRole": allow("logs:CreateLogStream logs:PutLogEvents", "${LabelStudioProjectSetupLogs.Arn}")
    | allow("secretsmanager:GetSecretValue", API_TOKEN, WEBHOOK_SECRET),
    # aws-cdk-lib's Provider framework: invokes (and waits for) the setup function, logs to its own group.
    "LabelStudioProjectProviderRole": allow(
        "logs:CreateLogStream logs:PutLogEvents", "${LabelStudioProjectProviderLogs.Arn}"
    )
    | allow(
        "lambda:InvokeFunction", "${LabelStudioProjectSetupFunction.Arn}", "${LabelStudioProjectSetupFunction.Arn}:*"
    )
    | allow("lambda:GetFunction", "${LabelStudioProjectSetupFunction.Arn}"),
    "CdkBucketNotificationsRole": {("Managed", BASIC_EXECUTION, "")} | allow("s3:PutBucketNotification", BUCKET),
}
# With the customer-managed key: reading a secret decrypts with it (the launcher and job-events function
# already hold Decrypt and GenerateDataKey for the queues, objects and topic).
EXPECTED_KMS: dict[str, set[Grant]] = {
    **EXPECTED,
    "LaunchLauncherRole": EXPECTED["LaunchLauncherRole"] | allow("kms:Decrypt kms:GenerateDataKey", KEY),
    "FollowJobEventsRole": EXPECTED["FollowJobEventsRole"] | allow("kms:Decrypt kms:GenerateDataKey", KEY),
    "LabelStudioProjectSetupRole": EXPECTED["LabelStudioProjectSetupRole"] | allow("kms:Decrypt", KEY),
}


def _diff(actual: dict[str, set[Grant]], expected: dict[str, set[Grant]]) -> str:
    lines = []
    for role in sorted(set(actual) | set(expected)):
        lines += [f"unexpected {role}: {g}" for g in sorted(actual.get(role, set()) - expected.get(role, set()))]
        lines += [f"missing    {role}: {g}" for g in sorted(expected.get(role, set()) - actual.get(role, set()))]
    return "\n".join(lines)


def test_every_role_has_exactly_the_expected_grants(label_studio: LabelStudioApp) -> None:
    actual = grants_by_role(label_studio.raw)
    assert actual == EXPECTED, _diff(actual, EXPECTED)


def test_every_role_has_exactly_the_expected_grants_with_the_key(label_studio_kms: LabelStudioApp) -> None:
    actual = grants_by_role(label_studio_kms.raw)
    assert actual == EXPECTED_KMS, _diff(actual, EXPECTED_KMS)


def test_no_wildcard_action_and_no_resource_on_everything(label_studio: LabelStudioApp) -> None:
    for role, grants in grants_by_role(label_studio.raw).items():
        for effect, action, resource in grants:
            assert effect in ("Allow", "Managed") and not action.endswith(":*") and action != "*", (role, action)
            assert resource != "*" and not resource.startswith("* if"), (role, action)


def test_secrets_use_the_key_without_changing_its_policy(label_studio_kms: LabelStudioApp) -> None:
    key = logical_id(label_studio_kms.template, "AWS::KMS::Key", "EncryptionKey")
    for secret in label_studio_kms.resources("AWS::SecretsManager::Secret").values():
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    for prefix in ("LabelStudioProjectSetupLogs", "LabelStudioProjectProviderLogs"):
        logs = label_studio_kms.raw["Resources"][logical_id(label_studio_kms.template, "AWS::Logs::LogGroup", prefix)]
        assert logs["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    # The account's IAM decides (the readers' roles hold kms:Decrypt); the services that encrypt with the key
    # themselves have a statement each, and Secrets Manager, which uses its caller's credentials, none.
    statements = label_studio_kms.raw["Resources"][key]["Properties"]["KeyPolicy"]["Statement"]
    assert [statement.get("Sid") for statement in statements] == [
        None,
        "S3NotificationsToUploadQueue",
        "CloudWatchLogsOfThisAccount",
        "EventBridgeDeadLetters",
        "CloudWatchAlarmsToResultsTopic",
    ]
    assert statements[0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert "secretsmanager" not in json.dumps(statements)


# --- the tools: cfn-lint, cdk-nag, checkov ------------------------------------------------------------------


def _templates(*apps: LabelStudioApp) -> list[str]:
    return sorted(str(path) for app in apps for path in app.outdir.glob("*.template.json"))


def test_cfn_lint_finds_nothing(label_studio: LabelStudioApp, label_studio_kms: LabelStudioApp) -> None:
    templates = _templates(label_studio, label_studio_kms)
    assert len(templates) == 2
    assert cfn_lint_findings(templates) == []


def _acknowledged(app: cdk.App) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                for rule, reason in dict(entry.data).items():
                    found[(construct.node.path, rule.removeprefix("Annotation::"))] = reason
    return found


def test_cdk_nag_has_no_unacknowledged_finding(label_studio: LabelStudioApp, label_studio_kms: LabelStudioApp) -> None:
    # Synthesis raises on an unacknowledged finding; both got here, and their reports list none.
    for deployment in (label_studio, label_studio_kms):
        report = json.loads((deployment.outdir / "validation-report.json").read_text())
        assert all(plugin["violations"] == [] for plugin in report["pluginReports"])


def test_label_studios_own_acknowledgements_and_their_reasons(label_studio: LabelStudioApp) -> None:
    acknowledged = _acknowledged(label_studio.app)
    for where, reason in acknowledged.items():
        assert len(reason) >= 40, where
    ours = {(path, rule) for path, rule in acknowledged if "/LabelStudio/" in path}
    setup = logical_id(label_studio.template, "AWS::Lambda::Function", "LabelStudioProjectSetupFunction")
    assert ours == {
        (f"{PIPELINE}/LabelStudio/Secrets/ApiToken", "AwsSolutions-SMG4"),
        (f"{PIPELINE}/LabelStudio/Secrets/WebhookSecret", "AwsSolutions-SMG4"),
        (f"{PIPELINE}/LabelStudio/Project/ProviderRole", f"AwsSolutions-IAM5[Resource::<{setup}.Arn>:*]"),
    }
    rules = {rule.split("[")[0] for _path, rule in acknowledged}
    assert rules <= {"AwsSolutions-S1", "AwsSolutions-SNS2", "AwsSolutions-SQS3", "AwsSolutions-IAM4",
                     "AwsSolutions-IAM5", "AwsSolutions-SMG4"}  # fmt: skip


@pytest.fixture(scope="module")
def checkov(label_studio: LabelStudioApp, label_studio_kms: LabelStudioApp) -> CheckovRun:
    return run_checkov(
        {
            str(Path(path).resolve()): variant
            for variant, app in (("default", label_studio), ("kms", label_studio_kms))
            for path in _templates(app)
        }
    )


def test_checkov_has_no_finding_that_is_not_fixed_or_listed(checkov: CheckovRun) -> None:
    assert checkov.passed > 100
    assert not checkov.failed, "\n".join(
        f"  {checkov.where(finding)}: {finding['check_name']}" for finding in checkov.failed
    )
    for finding in checkov.skipped:
        assert len(finding["check_result"]["suppress_comment"]) >= 80, checkov.where(finding)


def test_every_label_studio_skip_is_used_with_its_reason(checkov: CheckovRun) -> None:
    skipped = checkov.skips()
    for skip in SKIPS:
        assert len(skip.reason) >= 80, skip
        assert ("default", skip.check, skip.reason) in skipped, skip
        assert (("kms", skip.check, skip.reason) in skipped) is not skip.without_kms, skip
    # The function URL's finding is acknowledged, not fixed, in both deployments.
    [url_skip] = [skip for skip in SKIPS if skip.check == "CKV_AWS_258"]
    assert {variant for variant, check, _reason in skipped if check == "CKV_AWS_258"} == {"default", "kms"}
    assert "403" in url_skip.reason and "SigV4" in url_skip.reason
    # The generic list's reasons still hold here: only those that match a resource of this deployment apply.
    generic = {(skip.check, skip.reason) for skip in GENERIC_SKIPS}
    assert {(check, reason) for _v, check, reason in skipped} <= generic | {(s.check, s.reason) for s in SKIPS}


def test_the_function_url_is_the_only_public_entry(label_studio: LabelStudioApp) -> None:
    # Nothing but the URL's two permissions names "*" as principal.
    public = [
        name
        for name, resource in label_studio.raw["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Permission" and resource["Properties"]["Principal"] == "*"
    ]
    assert len(public) == 2
    label_studio.template.resource_count_is("AWS::ApiGateway::RestApi", 0)
    label_studio.template.has_resource_properties("AWS::Lambda::Url", Match.object_like({"AuthType": "NONE"}))
