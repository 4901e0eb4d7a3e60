"""Alarms that need a person, all sent to the results topic: messages in a dead-letter queue, launcher
or job-events errors, throttled launches, and labeling jobs that failed or stopped."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.encryption_key import LabelingKey

PERIOD = cdk.Duration.minutes(5)


def custom_metric(namespace: str, name: str, service: str) -> cloudwatch.Metric:
    """A metric the functions publish through Powertools, which adds the `service` dimension
    (POWERTOOLS_SERVICE_NAME), summed over PERIOD."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        statistic="Sum",
        period=PERIOD,
        dimensions_map={"service": service},
    )


class OperationsAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        launcher: lambda_.IFunction,
        job_events: lambda_.IFunction,
        dead_letter_queues: dict[str, sqs.IQueue],
        metric_namespace: str,
        retry_reasons: str,
        key: LabelingKey | None = None,
        prelabel: lambda_.IFunction | None = None,
        prelabel_service: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        action = actions.SnsAction(topic)
        # The topic's policy (enforce_ssl) replaces SNS's default policy, which is what lets CloudWatch alarms of
        # the account publish; without this statement an alarm fires and its notification is refused
        # ("... is not authorized to perform: SNS:Publish ... because no resource-based policy allows").
        stack = cdk.Stack.of(self)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        if key is not None:
            # The topic is encrypted with the customer-managed key: CloudWatch alarms may publish to it only
            # if the key policy lets cloudwatch.amazonaws.com use the key ("compatibility with AWS services"
            # in https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
            key.allow_service(
                "CloudWatchAlarmsToResultsTopic",
                "cloudwatch.amazonaws.com",
                ["kms:GenerateDataKey*", "kms:Decrypt"],
                "CloudWatch alarms (cloudwatch.amazonaws.com) publishing to the results topic",
            )

        def alarm(name: str, metric: cloudwatch.IMetric, description: str) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms.append(created)

        for name, queue in dead_letter_queues.items():
            alarm(
                f"{name}NotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                f"Messages wait in {name}: uploads or job events that could not be handled; read their reason "
                "and redrive them.",
            )
        alarm("LauncherErrors", launcher.metric_errors(period=PERIOD), "The launcher Lambda failed.")
        alarm("LauncherThrottles", launcher.metric_throttles(period=PERIOD), "The launcher Lambda was throttled.")
        alarm(
            "LaunchesRetried",
            custom_metric(metric_namespace, "MessagesRetried", "labeling-launcher"),
            f"Uploads were put back for a retry ({retry_reasons}, or S3/DynamoDB errors).",
        )
        alarm(
            "LaunchesBackedOff",
            custom_metric(metric_namespace, "MessagesBackedOff", "labeling-launcher"),
            f"The labeling service is down or refusing ({retry_reasons}): uploads wait in the upload queue and are "
            "tried again at most an hour apart, for up to 3 days, without any redrive.",
        )
        alarm("JobEventsErrors", job_events.metric_errors(period=PERIOD), "The job-events Lambda failed.")
        alarm(
            "JobEventsFailed",
            custom_metric(metric_namespace, "JobEventsFailed", "labeling-job-events"),
            "A job's end could not be handled (a webhook answered 500, or a job of the reconciler's sweep): the "
            "reconciler asks again at its next tick; read the job-events log for the reason.",
        )
        alarm(
            "JobsFailed",
            custom_metric(metric_namespace, "JobsFailedOrStopped", "labeling-job-events"),
            "A labeling job failed or was stopped; its images wait for `bbox-labeling relabel`.",
        )
        if prelabel is not None:
            alarm("PrelabelErrors", prelabel.metric_errors(period=PERIOD), "The pre-label Lambda failed.")
            alarm(
                "PrelabelFailures",
                custom_metric(metric_namespace, "PrelabelFailures", prelabel_service),
                "The detector failed on uploads (endpoint down or slow, model unreadable, image it cannot read): "
                "those images go to labeling without proposals; read the pre-label log for the reason.",
            )
