"""Create, on the local emulator, what the synthesized CloudFormation templates define.

This is a small CloudFormation for one purpose: it reads `cdk.out/<stack>.template.json`, resolves
the intrinsic functions the CDK emits (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split,
Fn::ImportValue and the pseudo parameters), and creates each resource through the same API that
CloudFormation would call, in dependency order. Names and settings therefore come from the templates,
never from a second copy here: change a queue's visibility timeout or the batching window in the
stack, and the demo runs with the new value.

What has no local equivalent is listed, not hidden: IAM (the emulator does not enforce it), alarms,
log groups, KMS keys and CDK's own custom-resource providers. The project's Lambda functions are not created
in the emulator (moto would need Docker to run them); their handler, environment and event sources are
returned so that `sandbox.lambda_runtime` can run the real code in this process, as Lambda would. What
needs that runtime while the stack is made is handed to the caller's `LocalHooks`: a function URL (the
caller serves it on loopback), and a custom resource whose provider is one of the project's functions
(the caller runs the function with CloudFormation's request; directly, or through aws-cdk-lib's Provider
framework, whose own function is CDK's and is listed as not emulated). A schedule rule is recorded: the
emulator fires no schedules, so the caller invokes its function when the schedule would.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox.emulator import ACCOUNT

# The handler modules this project ships; CDK's own provider functions (inline code) are not run.
PROJECT_HANDLER_PREFIX = "labeling_pipeline."
# aws-cdk-lib's custom-resource Provider framework names the user's onEvent function in its own environment.
PROVIDER_ON_EVENT_VARIABLE = "USER_ON_EVENT_FUNCTION_ARN"

NOT_EMULATED = {
    "AWS::IAM::Role": "IAM is not enforced by the emulator",
    "AWS::IAM::Policy": "IAM is not enforced by the emulator",
    "AWS::Logs::LogGroup": "the Lambda functions log to demo-output/logs/ instead",
    "AWS::CloudWatch::Alarm": "no metrics locally",
    "AWS::Lambda::Permission": "no IAM locally",
    "AWS::KMS::Key": "no KMS locally",
    "AWS::KMS::Alias": "no KMS locally",
    "AWS::CDK::Metadata": "CDK bookkeeping",
    "Custom::AWS": "a deploy-time fix-up of the worker portal's sign-in URLs, which exist only in AWS",
}


class ProvisionError(Exception):
    pass


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    maximum_retry_attempts: int = 2  # Lambda's default for asynchronous invocations
    dead_letter_queue_arn: str | None = None


@dataclass
class QueueEventSource:
    """An SQS event source mapping: the queue, the function and the batching it was configured with."""

    queue_url: str
    queue_arn: str
    function: FunctionSpec
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool


@dataclass
class RuleDelivery:
    """An EventBridge rule whose target is one of the project's functions.

    The emulator's bus cannot invoke a function in this process, so the target becomes a delivery
    queue: the emulator still matches the rule's own pattern, and the runtime invokes the function
    with each event that arrives, as Lambda's asynchronous invocation would.
    """

    rule_name: str
    queue_url: str
    function: FunctionSpec
    dead_letter_queue_arn: str | None


@dataclass
class Schedule:
    """An EventBridge schedule rule whose target is one of the project's functions: the emulator fires no
    schedule, so the caller invokes the function (`LocalLambda.run_schedule`) when the schedule would."""

    rule_name: str
    expression: str
    function: FunctionSpec


@dataclass
class FunctionUrl:
    function: FunctionSpec
    url: str
    auth_type: str


@dataclass
class CustomResource:
    """A custom resource the caller ran: the project's function that served it and what it answered."""

    logical_id: str
    kind: str
    function: FunctionSpec
    physical_id: str
    data: dict[str, Any]


@dataclass
class LocalHooks:
    """What the caller does for the provisioner while a stack is made.

    function_url(function) serves the function's URL on loopback and returns it; custom_resource(function,
    request) runs the function with CloudFormation's custom-resource request and returns its answer
    ({PhysicalResourceId, Data}, the Provider framework's onEvent contract)."""

    function_url: Callable[[FunctionSpec], str] | None = None
    custom_resource: Callable[[FunctionSpec, dict[str, Any]], dict[str, Any]] | None = None


@dataclass
class ProvisionedStack:
    name: str
    outputs: dict[str, str] = field(default_factory=dict)
    created: Counter[str] = field(default_factory=Counter)
    not_emulated: Counter[str] = field(default_factory=Counter)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    event_sources: list[QueueEventSource] = field(default_factory=list)
    rule_deliveries: list[RuleDelivery] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    function_urls: list[FunctionUrl] = field(default_factory=list)
    custom_resources: list[CustomResource] = field(default_factory=list)
    ignored_settings: list[str] = field(default_factory=list)
    tls_only_statements_left_out: int = 0


def _references(value: Any) -> set[str]:
    """Logical ids a template value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str) and not value["Ref"].startswith("AWS::"):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else target.split(".", 1)[0])
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _api_args(client: Any, operation: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the members the API operation takes (CloudFormation properties often share their names)."""
    members = client.meta.service_model.operation_model(operation).input_shape.members
    return {key: value for key, value in values.items() if key in members}


class Provisioner:
    def __init__(self, session: Any, region: str, hooks: LocalHooks | None = None) -> None:
        self.region = region
        self.hooks = hooks or LocalHooks()
        self.secretsmanager = session.client("secretsmanager")
        self.s3 = session.client("s3")
        self.sqs = session.client("sqs")
        self.dynamodb = session.client("dynamodb")
        self.sns = session.client("sns")
        self.events = session.client("events")
        self.cognito = session.client("cognito-idp")
        self.sagemaker = session.client("sagemaker")
        self.cloudformation = session.client("cloudformation")
        self.exports: dict[str, str] = {}

    # --- intrinsic functions --------------------------------------------------------------------
    def _resolve(self, value: Any, stack: _StackState) -> Any:
        if isinstance(value, list):
            return [self._resolve(item, stack) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(argument, stack)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return stack.attribute(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return separator.join(str(part) for part in self._resolve(parts, stack))
            if function == "Fn::Select":
                index, items = self._resolve(argument, stack)
                return items[int(index)]
            if function == "Fn::Split":
                separator, text = self._resolve(argument, stack)
                return text.split(separator)
            if function == "Fn::ImportValue":
                name = self._resolve(argument, stack)
                if name not in self.exports:
                    raise ProvisionError(f"{stack.name}: no stack exports {name!r}; provision its stack first")
                return self.exports[name]
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                variables = self._resolve(variables, stack)

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in variables:
                        return str(variables[name])
                    if "." in name:
                        return str(stack.attribute(*name.split(".", 1)))
                    return str(self._ref(name, stack))

                return re.sub(r"\$\{([^}!]+)\}", substitute, text)
            if function.startswith("Fn::"):
                raise ProvisionError(f"{stack.name}: {function} is not supported by the local sandbox")
        return {key: self._resolve(item, stack) for key, item in value.items()}

    def _ref(self, name: str, stack: _StackState) -> Any:
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": self.region,
            "AWS::StackName": stack.name,
            "AWS::StackId": stack.stack_id,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in stack.parameters:
            return stack.parameters[name]
        return stack.attribute(name, "Ref")

    # --- the stack --------------------------------------------------------------------------------
    def provision(self, stack_name: str, template: dict[str, Any]) -> ProvisionedStack:
        stack = _StackState(stack_name, template, self.region)
        result = ProvisionedStack(stack_name)
        resources = template.get("Resources", {})
        graph = {
            logical_id: _references(resource.get("Properties", {})) | set(_as_list(resource.get("DependsOn")))
            for logical_id, resource in resources.items()
        }
        graph = {logical_id: {dep for dep in deps if dep in resources} for logical_id, deps in graph.items()}
        for logical_id in TopologicalSorter(graph).static_order():
            resource = resources[logical_id]
            kind = resource["Type"]
            properties = self._resolve(resource.get("Properties", {}), stack)
            creator = getattr(self, "_create_" + kind.replace("::", "_").replace("-", "_"), None)
            if creator is None and kind.startswith("Custom::") and kind not in NOT_EMULATED:
                creator = self._run_custom_resource
            if creator is None:
                if kind not in NOT_EMULATED:
                    raise ProvisionError(f"{stack_name}: {logical_id} has type {kind}, which the sandbox cannot create")
                result.not_emulated[kind] += 1
                stack.values[logical_id] = _placeholder(kind, stack_name, logical_id, self.region)
                continue
            try:
                values = creator(stack, result, logical_id, properties) or {}
            except (BotoCoreError, ClientError) as error:
                raise ProvisionError(f"{stack_name}: creating {logical_id} ({kind}) failed: {error}") from error
            stack.values[logical_id] = values
            if values.pop("NotEmulated", False):
                result.not_emulated[kind] += 1
            else:
                result.created[kind] += 1
        outputs = self._resolve(template.get("Outputs", {}), stack)
        for key, output in outputs.items():
            result.outputs[key] = str(output["Value"])
            if "Export" in output:
                self.exports[output["Export"]["Name"]] = result.outputs[key]
        self._register_outputs(stack_name, outputs)
        return result

    def _register_outputs(self, stack_name: str, outputs: dict[str, Any]) -> None:
        """A stack of the same name holding the resolved outputs, so tools that read outputs find them."""
        body = {
            "Description": "Local sandbox: the outputs of the synthesized stack, resolved on the emulator",
            "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {
                key: {"Value": str(output["Value"]), **({"Export": output["Export"]} if "Export" in output else {})}
                for key, output in outputs.items()
            },
        }
        self.cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(body))

    # --- S3 ---------------------------------------------------------------------------------------
    def _create_AWS_S3_Bucket(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("BucketName") or _generated_name(stack.name, logical_id, 63).lower()
        location = (
            {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        self.s3.create_bucket(Bucket=name, **location)
        if "VersioningConfiguration" in properties:
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"])
        if "CorsConfiguration" in properties:
            rules = [
                {
                    "AllowedHeaders": rule.get("AllowedHeaders", []),
                    "AllowedMethods": rule["AllowedMethods"],
                    "AllowedOrigins": rule["AllowedOrigins"],
                    "ExposeHeaders": rule.get("ExposedHeaders", []),
                    **({"MaxAgeSeconds": rule["MaxAge"]} if "MaxAge" in rule else {}),
                }
                for rule in properties["CorsConfiguration"]["CorsRules"]
            ]
            self.s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        if "BucketEncryption" in properties:
            self.s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        # CloudFormation's ServerSideEncryptionByDefault is the API's
                        # ApplyServerSideEncryptionByDefault.
                        {
                            "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                            **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                        }
                        for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        if "PublicAccessBlockConfiguration" in properties:
            self.s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
            )
        for setting in ("LifecycleConfiguration", "LoggingConfiguration"):
            if setting in properties:
                result.ignored_settings.append(f"{logical_id}.{setting}")
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}

    def _create_AWS_S3_BucketPolicy(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        policy = _without_tls_only(properties["PolicyDocument"], logical_id, result)
        if policy["Statement"]:
            self.s3.put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(policy))
        return {}

    def _create_Custom_S3BucketNotifications(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        # CDK applies bucket notifications with a custom resource; its effect is this one call.
        configuration = {
            key: properties["NotificationConfiguration"].get(key, [])
            for key in ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations")
        }
        if configuration["LambdaFunctionConfigurations"]:
            raise ProvisionError(f"{logical_id}: S3 notifications to a Lambda function cannot run locally")
        self.s3.put_bucket_notification_configuration(
            Bucket=properties["BucketName"], NotificationConfiguration=configuration
        )
        return {}

    # --- SQS --------------------------------------------------------------------------------------
    def _create_AWS_SQS_Queue(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("QueueName") or _generated_name(stack.name, logical_id, 80)
        attributes = {
            key: json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in properties.items()
            if key not in ("QueueName", "Tags")
        }
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _create_AWS_SQS_QueuePolicy(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        policy = _without_tls_only(properties["PolicyDocument"], logical_id, result)
        for url in properties["Queues"]:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        return {}

    # --- DynamoDB ---------------------------------------------------------------------------------
    def _create_AWS_DynamoDB_Table(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("TableName") or _generated_name(stack.name, logical_id, 255)
        arguments = _api_args(self.dynamodb, "CreateTable", {**properties, "TableName": name})
        description = self.dynamodb.create_table(**arguments)["TableDescription"]
        if properties.get("TimeToLiveSpecification"):
            self.dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
            )
        if "PointInTimeRecoverySpecification" in properties:
            result.ignored_settings.append(f"{logical_id}.PointInTimeRecoverySpecification")
        return {"Ref": name, "Arn": description["TableArn"], "StreamArn": description.get("LatestStreamArn", "")}

    # --- SNS --------------------------------------------------------------------------------------
    def _create_AWS_SNS_Topic(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("TopicName") or _generated_name(stack.name, logical_id, 256)
        attributes = {key: str(properties[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in properties}
        arn = self.sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in properties.get("Subscription", []):
            self.sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _create_AWS_SNS_TopicPolicy(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        policy = _without_tls_only(properties["PolicyDocument"], logical_id, result)
        for arn in properties["Topics"]:
            self.sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
        return {}

    def _create_AWS_SNS_Subscription(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        arn = self.sns.subscribe(
            TopicArn=properties["TopicArn"], Protocol=properties["Protocol"], Endpoint=properties["Endpoint"]
        )["SubscriptionArn"]
        return {"Ref": arn, "Arn": arn}

    # --- Lambda: recorded for the in-process runtime ----------------------------------------------
    def _create_AWS_Lambda_Function(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("FunctionName") or _generated_name(stack.name, logical_id, 64)
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"
        handler = str(properties.get("Handler", ""))
        if handler.startswith(PROJECT_HANDLER_PREFIX):
            result.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=name,
                handler=handler,
                environment={k: str(v) for k, v in properties.get("Environment", {}).get("Variables", {}).items()},
                timeout_seconds=int(properties.get("Timeout", 3)),
                memory_mb=int(properties.get("MemorySize", 128)),
                dead_letter_queue_arn=properties.get("DeadLetterConfig", {}).get("TargetArn"),
            )
            return {"Ref": name, "Arn": arn}
        # CDK's custom-resource providers: the bucket notifications' effect is applied directly (above), and
        # the Provider framework's onEvent function is stood in for by calling the function it names.
        on_event = properties.get("Environment", {}).get("Variables", {}).get(PROVIDER_ON_EVENT_VARIABLE)
        if on_event:
            stack.providers[arn] = str(on_event)
        return {"Ref": name, "Arn": arn, "NotEmulated": True}

    def _function(self, stack: _StackState, result: ProvisionedStack, reference: str) -> FunctionSpec:
        function = self._function_or_none(result, reference)
        if function is None:
            raise ProvisionError(f"{stack.name}: {reference} is not one of this project's functions")
        return function

    @staticmethod
    def _function_or_none(result: ProvisionedStack, reference: str) -> FunctionSpec | None:
        name = reference.rsplit(":", 1)[-1] if reference.startswith("arn:") else reference
        return next((function for function in result.functions.values() if function.name == name), None)

    def _create_AWS_Lambda_EventInvokeConfig(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        function = self._function(stack, result, properties["FunctionName"])
        if "MaximumRetryAttempts" in properties:
            function.maximum_retry_attempts = int(properties["MaximumRetryAttempts"])
        return {}

    def _create_AWS_Lambda_EventSourceMapping(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        source_arn = properties["EventSourceArn"]
        if ":sqs:" not in source_arn:
            raise ProvisionError(f"{logical_id}: only SQS event sources run locally, not {source_arn}")
        queue_url = self.sqs.get_queue_url(QueueName=source_arn.rsplit(":", 1)[-1])["QueueUrl"]
        result.event_sources.append(
            QueueEventSource(
                queue_url=queue_url,
                queue_arn=source_arn,
                function=self._function(stack, result, properties["FunctionName"]),
                batch_size=int(properties.get("BatchSize", 10)),
                batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            )
        )
        return {"Ref": logical_id}

    def _create_AWS_Lambda_Url(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        function = self._function(stack, result, properties["TargetFunctionArn"])
        if self.hooks.function_url is None:
            raise ProvisionError(f"{stack.name}: {logical_id} is a function URL, and nothing serves one locally")
        url = self.hooks.function_url(function)
        result.function_urls.append(FunctionUrl(function, url, str(properties.get("AuthType", "AWS_IAM"))))
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{function.name}"
        return {"FunctionUrl": url, "FunctionArn": arn}

    # --- custom resources ---------------------------------------------------------------------------
    def _run_custom_resource(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        """CloudFormation's Create request to the project function behind the ServiceToken (directly, or
        through the Provider framework's onEvent function); its answer gives the Ref and the attributes."""
        kind = stack.types[logical_id]
        token = str(properties.get("ServiceToken", ""))
        function = self._function_or_none(result, stack.providers.get(token, token))
        if function is None:
            raise ProvisionError(
                f"{stack.name}: {logical_id} ({kind}) is served by {token}, not by one of this project's functions: "
                "the sandbox cannot run it"
            )
        if self.hooks.custom_resource is None:
            raise ProvisionError(f"{stack.name}: {logical_id} ({kind}) needs its function run, and no runtime is given")
        request = {
            "RequestType": "Create",
            "ServiceToken": token,
            "ResponseURL": "http://127.0.0.1/not-used-by-the-local-sandbox",
            "StackId": stack.stack_id,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical_id,
            "ResourceType": kind,
            # CloudFormation hands a custom resource its properties with every scalar as a string.
            "ResourceProperties": _as_strings({key: value for key, value in properties.items()}),
        }
        try:
            answer = self.hooks.custom_resource(function, request) or {}
        except Exception as error:
            # CloudFormation fails the stack with the provider's error.
            raise ProvisionError(f"{stack.name}: {logical_id} ({kind}) failed: {error}") from error
        physical_id = str(answer.get("PhysicalResourceId") or request["RequestId"])
        data = dict(answer.get("Data") or {})
        result.custom_resources.append(CustomResource(logical_id, kind, function, physical_id, data))
        return {"Ref": physical_id, **data}

    # --- EventBridge ------------------------------------------------------------------------------
    def _create_AWS_Events_Rule(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("Name") or _generated_name(stack.name, logical_id, 64)
        self.events.put_rule(
            Name=name,
            **(
                {"ScheduleExpression": properties["ScheduleExpression"]}
                if "ScheduleExpression" in properties
                else {"EventPattern": json.dumps(properties["EventPattern"])}
            ),
            State=properties.get("State", "ENABLED"),
            Description=properties.get("Description", ""),
        )
        targets = []
        for target in properties.get("Targets", []):
            arn = target["Arn"]
            if ":lambda:" in arn and "ScheduleExpression" in properties:
                # The emulator fires no schedule: recorded for the caller, who invokes the function.
                result.schedules.append(
                    Schedule(name, properties["ScheduleExpression"], self._function(stack, result, arn))
                )
                continue
            if ":lambda:" in arn:
                function = self._function(stack, result, arn)
                queue = self._create_AWS_SQS_Queue(stack, result, f"{logical_id}To{function.logical_id}", {})
                result.rule_deliveries.append(
                    RuleDelivery(name, queue["QueueUrl"], function, target.get("DeadLetterConfig", {}).get("Arn"))
                )
                arn = queue["Arn"]
            targets.append({"Id": target["Id"], "Arn": arn})
        if targets:
            self.events.put_targets(Rule=name, Targets=targets)
        return {"Ref": name, "Arn": f"arn:aws:events:{self.region}:{ACCOUNT}:rule/{name}"}

    # --- Secrets Manager ----------------------------------------------------------------------------
    def _create_AWS_SecretsManager_Secret(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("Name") or _generated_name(stack.name, logical_id, 512)
        if "SecretString" in properties:
            value = str(properties["SecretString"])
        elif "GenerateSecretString" in properties:
            value = self._generated_secret(properties["GenerateSecretString"])
        else:
            raise ProvisionError(f"{stack.name}: {logical_id} has neither SecretString nor GenerateSecretString")
        if "KmsKeyId" in properties:
            result.ignored_settings.append(f"{logical_id}.KmsKeyId")
        arn = self.secretsmanager.create_secret(
            Name=name, SecretString=value, Description=str(properties.get("Description", ""))
        )["ARN"]
        return {"Ref": arn, "Id": arn}

    def _generated_secret(self, generator: dict[str, Any]) -> str:
        """What CloudFormation stores for GenerateSecretString: a random password under the generator's
        rules (GetRandomPassword takes the same fields), alone or put into SecretStringTemplate."""
        password = self.secretsmanager.get_random_password(
            **_api_args(self.secretsmanager, "GetRandomPassword", generator)
        )["RandomPassword"]
        if "GenerateStringKey" in generator:
            template = json.loads(generator.get("SecretStringTemplate") or "{}")
            return json.dumps({**template, generator["GenerateStringKey"]: password})
        return str(password)

    # --- Cognito ----------------------------------------------------------------------------------
    def _create_AWS_Cognito_UserPool(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("UserPoolName") or _generated_name(stack.name, logical_id, 128)
        pool = self.cognito.create_user_pool(
            **_api_args(self.cognito, "CreateUserPool", {**properties, "PoolName": name})
        )
        pool_id = pool["UserPool"]["Id"]
        return {
            "Ref": pool_id,
            "Arn": pool["UserPool"]["Arn"],
            "ProviderName": f"cognito-idp.{self.region}.amazonaws.com/{pool_id}",
            "ProviderURL": f"https://cognito-idp.{self.region}.amazonaws.com/{pool_id}",
            "UserPoolId": pool_id,
        }

    def _create_AWS_Cognito_UserPoolDomain(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        self.cognito.create_user_pool_domain(**_api_args(self.cognito, "CreateUserPoolDomain", properties))
        return {"Ref": properties["Domain"]}

    def _create_AWS_Cognito_UserPoolClient(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("ClientName") or _generated_name(stack.name, logical_id, 128)
        client = self.cognito.create_user_pool_client(
            **_api_args(self.cognito, "CreateUserPoolClient", {**properties, "ClientName": name})
        )["UserPoolClient"]
        return {"Ref": client["ClientId"], "ClientId": client["ClientId"], "ClientSecret": client.get("ClientSecret")}

    def _create_AWS_Cognito_UserPoolGroup(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("GroupName") or _generated_name(stack.name, logical_id, 128)
        self.cognito.create_group(**_api_args(self.cognito, "CreateGroup", {**properties, "GroupName": name}))
        return {"Ref": name}

    def _create_AWS_Cognito_UserPoolUser(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        user = self.cognito.admin_create_user(**_api_args(self.cognito, "AdminCreateUser", properties))["User"]
        return {"Ref": user["Username"]}

    def _create_AWS_Cognito_UserPoolUserToGroupAttachment(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        self.cognito.admin_add_user_to_group(**_api_args(self.cognito, "AdminAddUserToGroup", properties))
        return {}

    # --- Ground Truth: the project's fake, through its HTTP endpoint -------------------------------
    def _create_AWS_SageMaker_Workforce(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties["WorkforceName"]
        self.sagemaker.create_workforce(**_api_args(self.sagemaker, "CreateWorkforce", properties))
        workforce = self.sagemaker.describe_workforce(WorkforceName=name)["Workforce"]
        return {"Ref": name, "SubDomain": workforce["SubDomain"], "WorkforceArn": workforce["WorkforceArn"]}

    def _create_AWS_SageMaker_Workteam(
        self, stack: _StackState, result: ProvisionedStack, logical_id: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        name = properties.get("WorkteamName") or _generated_name(stack.name, logical_id, 63)
        # CloudFormation spells the member fields CognitoUserPool, CognitoUserGroup, CognitoClientId
        # and OidcGroups; the API spells them UserPool, UserGroup, ClientId and Groups.
        members = [
            {
                "CognitoMemberDefinition": {
                    key.removeprefix("Cognito"): value for key, value in member["CognitoMemberDefinition"].items()
                }
            }
            if "CognitoMemberDefinition" in member
            else {"OidcMemberDefinition": {"Groups": member["OidcMemberDefinition"]["OidcGroups"]}}
            for member in properties.get("MemberDefinitions", [])
        ]
        arguments = _api_args(
            self.sagemaker, "CreateWorkteam", {**properties, "WorkteamName": name, "MemberDefinitions": members}
        )
        arn = self.sagemaker.create_workteam(**arguments)["WorkteamArn"]
        return {"Ref": arn, "WorkteamArn": arn, "WorkteamName": name}


class _StackState:
    def __init__(self, name: str, template: dict[str, Any], region: str) -> None:
        self.name = name
        self.stack_id = f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{name}/{uuid.uuid4()}"
        self.parameters = {key: parameter.get("Default") for key, parameter in template.get("Parameters", {}).items()}
        self.types = {logical_id: resource["Type"] for logical_id, resource in template.get("Resources", {}).items()}
        self.values: dict[str, dict[str, Any]] = {}
        # The Provider framework's function ARN -> the project function it calls (its onEvent handler).
        self.providers: dict[str, str] = {}

    def attribute(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.values:
            raise ProvisionError(f"{self.name}: {logical_id} is referenced before it exists")
        values = self.values[logical_id]
        if attribute not in values:
            raise ProvisionError(f"{self.name}: the sandbox does not know {logical_id}.{attribute}")
        return values[attribute]


def _without_tls_only(policy: dict[str, Any], logical_id: str, result: ProvisionedStack) -> dict[str, Any]:
    """The policy minus its "deny unless TLS" statements: the emulator speaks plain HTTP on loopback,
    and moto evaluates bucket policies, so those statements would refuse every call."""
    kept = []
    for statement in policy.get("Statement", []):
        if statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false":
            result.ignored_settings.append(f"{logical_id}: {statement.get('Sid', 'TLS-only statement')}")
            result.tls_only_statements_left_out += 1
        else:
            kept.append(statement)
    return {**policy, "Statement": kept}


def _as_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_strings(item) for item in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value if value is None or isinstance(value, str) else str(value)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _generated_name(stack_name: str, logical_id: str, max_length: int) -> str:
    # CloudFormation names what the template leaves unnamed after the stack and the logical id.
    return f"{stack_name}-{logical_id}"[:max_length]


def _placeholder(kind: str, stack_name: str, logical_id: str, region: str) -> dict[str, Any]:
    """Ref/Arn values for what is not created, so that references to it still resolve."""
    name = _generated_name(stack_name, logical_id, 64)
    if kind == "AWS::IAM::Role":
        arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    elif kind == "AWS::KMS::Key":
        arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{name}"
    else:
        arn = f"arn:aws:local-sandbox:{region}:{ACCOUNT}:{logical_id}"
    return {"Ref": name, "Arn": arn, "RoleId": name, "KeyId": name}
