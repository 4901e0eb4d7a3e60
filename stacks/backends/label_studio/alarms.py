"""Alarms on the deployed Label Studio, sent to the results topic as the pipeline's own alarms are
(stacks/constructs/operations_alarms.py gives CloudWatch alarms the right to publish there, and the key)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from constructs import Construct

PERIOD = cdk.Duration.minutes(5)
DATABASE_CPU_PERCENT = 80
# RDS storage autoscaling grows the volume when free space falls under 10% of it (of 20 GiB: 2 GiB); less than
# 1 GiB free means it has reached its maximum (database.py, MAX_ALLOCATED_GIB) or cannot keep up.
FREE_STORAGE_BYTES = 1024**3
TARGET_5XX_PER_PERIOD = 5


class LabelStudioAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        database: rds.DatabaseInstance,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        action = actions.SnsAction(topic)

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            description: str,
            *,
            threshold: float,
            comparison: cloudwatch.ComparisonOperator,
            periods: int = 1,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms.append(created)

        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        below = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
        alarm(
            "UnhealthyTargets",
            target_group.metrics.unhealthy_host_count(period=PERIOD, statistic="Maximum"),
            "A Label Studio task fails its /health check behind the load balancer; see the service's events and "
            "its log group.",
            threshold=0,
            comparison=above,
        )
        alarm(
            "NoHealthyTarget",
            target_group.metrics.healthy_host_count(period=PERIOD, statistic="Minimum"),
            "No Label Studio task is healthy: workers cannot label and uploads wait in their queue.",
            threshold=1,
            comparison=below,
            periods=2,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm(
            "LoadBalancer5xx",
            load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=PERIOD, statistic="Sum"),
            "The load balancer answered 5xx itself (no healthy task, or a task did not answer in time).",
            threshold=0,
            comparison=above,
        )
        alarm(
            "LabelStudio5xx",
            load_balancer.metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=PERIOD, statistic="Sum"
            ),
            f"Label Studio answered more than {TARGET_5XX_PER_PERIOD} server errors in 5 minutes; see its log group.",
            threshold=TARGET_5XX_PER_PERIOD,
            comparison=above,
        )
        alarm(
            "DatabaseCpu",
            database.metric_cpu_utilization(period=PERIOD, statistic="Average"),
            f"Label Studio's database has used more than {DATABASE_CPU_PERCENT}% CPU for 15 minutes; consider "
            "a larger labeling.labelStudioDatabaseInstanceType.",
            threshold=DATABASE_CPU_PERCENT,
            comparison=above,
            periods=3,
        )
        alarm(
            "DatabaseStorageLow",
            database.metric_free_storage_space(period=PERIOD, statistic="Minimum"),
            "Label Studio's database has less than 1 GiB of free storage.",
            threshold=FREE_STORAGE_BYTES,
            comparison=below,
        )
