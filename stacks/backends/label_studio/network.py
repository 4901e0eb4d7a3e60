"""The deployed Label Studio's network: a VPC over two Availability Zones with public subnets (the NAT gateway,
and the internet gateway a CloudFront VPC origin needs) and private subnets for the load balancer, the tasks and
the database; VPC flow logs to CloudWatch Logs.

One NAT gateway, not one per zone and not VPC endpoints instead: the tasks must reach two things that no VPC
endpoint serves, Docker Hub (the image) and the job-events function's URL (Label Studio's webhook, a public
lambda-url host), so a NAT gateway is needed anyway; a second one only keeps egress up while a zone is down, for
about the same price again. Interface endpoints for Secrets Manager, CloudWatch Logs and S3 would each cost
about as much as the NAT gateway itself and remove none of it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.encryption_key import LabelingKey

AVAILABILITY_ZONES = 2
NAT_GATEWAYS = 1


class LabelStudioNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: LabelingKey | None) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.20.0.0/16"),
            # The region's first two zones, resolved by CloudFormation (Fn::GetAZs): no account lookup at synth, so
            # `make synth` without credentials gives the same template.
            availability_zones=[cdk.Fn.select(index, cdk.Fn.get_azs()) for index in range(AVAILABILITY_ZONES)],
            nat_gateways=NAT_GATEWAYS,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
            # Nothing is placed in the default security group (every resource has its own), so CDK's custom
            # resource that empties it (a Lambda function of its own) is left out.
            restrict_default_security_group=False,
        )
        # A subnet launching instances with public IPs is only the NAT gateway's: nothing else goes there.
        self.flow_logs_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=key.key if key else None,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    @property
    def private_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
