"""The checkov findings on Label Studio's own resources that do not apply, each with its reason (the format
and the rules of stacks/checkov_skips.py)."""

from __future__ import annotations

from stacks.checkov_skips import CheckovSkip

# The custom resource's setup function and aws-cdk-lib's Provider framework function in front of it.
SETUP_FUNCTIONS = ("LabelStudio/Project/Setup/Function", "LabelStudio/Project/Provider/framework-onEvent")

SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "CKV_AWS_258",
        "AWS::Lambda::Url",
        "Label Studio's webhook is the caller and cannot sign requests with SigV4, so the job-events function's "
        "URL takes no IAM auth. The function itself refuses (HTTP 403) any request without the webhook secret's "
        "header, compared in constant time with the secret in Secrets Manager, or about another project; and a "
        "request it accepts only makes it re-read that job's state from Label Studio.",
        paths=("Follow/JobEvents/Function/FunctionUrl",),
    ),
    CheckovSkip(
        "CKV_AWS_149",
        "AWS::SecretsManager::Secret",
        "Secrets Manager encrypts the secrets at rest with its AWS-managed key (aws/secretsmanager), which only "
        "this account's principals allowed to read the secret can use. With labeling.kmsKey they are encrypted "
        "with the customer-managed key and pass.",
        paths=("LabelStudio/Secrets",),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_158",
        "AWS::Logs::LogGroup",
        "CloudWatch Logs encrypts log data at rest with its own keys; the setup logs hold the project id and what "
        "changed, no secret. With labeling.kmsKey the log groups use the customer-managed key and pass.",
        paths=("LabelStudio/Project/Setup/Logs", "LabelStudio/Project/ProviderLogs"),
        without_kms=True,
    ),
    CheckovSkip(
        "CKV_AWS_116",
        "AWS::Lambda::Function",
        "The Label Studio project's custom resource: CloudFormation invokes the framework function, which invokes "
        "the setup function, both synchronously, and reports a failure as a failed deployment; a dead-letter "
        "queue would never receive anything.",
        paths=SETUP_FUNCTIONS,
    ),
    CheckovSkip(
        "CKV_AWS_173",
        "AWS::Lambda::Function",
        "The environment holds Powertools' settings and, for the framework function, the setup function's ARN: "
        "no secret (the custom resource names the secrets by ARN, and the setup function reads them from Secrets "
        "Manager). Lambda encrypts it at rest with an AWS-managed key.",
        paths=SETUP_FUNCTIONS,
    ),
)
