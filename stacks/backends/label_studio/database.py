"""Label Studio's PostgreSQL: one RDS for PostgreSQL instance in the private subnets, its credentials generated in
Secrets Manager.

RDS for PostgreSQL, single-AZ db.t4g.micro by default (labeling.labelStudioDatabaseInstanceType,
labelStudioDatabaseMultiAz), rather than Aurora Serverless v2: Label Studio (Django) keeps its database
connections open while a task runs, so an Aurora Serverless v2 cluster would never pause and would bill at least
its minimum of 0.5 ACU around the clock, several times the price of a db.t4g.micro instance, for a database that
holds projects, tasks and annotations (megabytes) and serves a few annotators. Aurora's faster fail-over does
not matter for that load; a standby (Multi-AZ) is one setting away.

Removal: with labeling.removalPolicy "retain" (the default) the instance has deletion protection and the policy
SNAPSHOT: deleting the stack stops at the database until deletion protection is turned off by hand, and then a
final snapshot keeps the annotations (RETAIN would leave the instance behind in subnets the stack then fails to
delete). Its credentials secret is retained, for the snapshot's password.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.constructs.encryption_key import LabelingKey
from stacks.constructs.nag import acknowledge

DATABASE_NAME = "labelstudio"
DATABASE_USER = "labelstudio"
# PostgreSQL 17 (Django 5.2, in Label Studio 1.23.2, supports PostgreSQL 14 and later), at the newest minor version
# aws-cdk-lib 2.275.0 names; RDS applies later minor versions in the maintenance window (auto_minor_version_upgrade).
# A major version alone ("17") is listed by cfn-lint 1.58 as one RDS no longer creates instances with (W3691).
ENGINE = rds.PostgresEngineVersion.VER_17_9
ALLOCATED_GIB = 20
MAX_ALLOCATED_GIB = 100


class LabelStudioDatabase(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        instance_type: str,
        backup_days: int,
        multi_az: bool,
        retain: bool,
        key: LabelingKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Label Studio PostgreSQL: only the Label Studio tasks connect",
            allow_all_outbound=False,
        )
        self.credentials = rds.DatabaseSecret(
            self,
            "Credentials",
            username=DATABASE_USER,
            secret_name=None,
        )
        self.credentials.apply_removal_policy(cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY)
        protect_secret(
            self.credentials,
            key,
            "The database password is read by Label Studio only when a task starts (POSTGRE_PASSWORD): a rotation "
            "would break new connections of the running tasks until they are replaced. Rotate by hand: "
            "change it in RDS and in this secret, then force a new deployment of the service.",
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=rds.DatabaseInstanceEngine.postgres(version=ENGINE),
            instance_type=ec2.InstanceType(instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            credentials=rds.Credentials.from_secret(self.credentials),
            database_name=DATABASE_NAME,
            multi_az=multi_az,
            allocated_storage=ALLOCATED_GIB,
            max_allocated_storage=MAX_ALLOCATED_GIB,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            storage_encryption_key=key.key if key else None,
            publicly_accessible=False,
            backup_retention=cdk.Duration.days(backup_days),
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            deletion_protection=retain,
            removal_policy=cdk.RemovalPolicy.SNAPSHOT if retain else cdk.RemovalPolicy.DESTROY,
        )
        if not retain:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS10",
                'labeling.removalPolicy is "destroy": the deployment is meant to be deleted with its data (a test '
                'or a demo). With "retain", the default, the instance has deletion protection.',
            )
        if not multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "Single-AZ by default to keep a small labeling team's cost down: a zone outage stops labeling (the "
                "pipeline's uploads wait in their queue) and automated backups restore the data. Set "
                "labeling.labelStudioDatabaseMultiAz to true for a standby in the second zone.",
            )
        acknowledge(
            self.instance,
            "AwsSolutions-RDS6",
            "Label Studio connects with a user name and password (POSTGRE_USER/POSTGRE_PASSWORD) and has no support "
            "for IAM database authentication tokens; the password is generated and kept in Secrets Manager.",
        )
        acknowledge(
            self.instance,
            "AwsSolutions-RDS11",
            "The default port 5432 is kept: the instance is in private subnets, not publicly accessible, and its "
            "security group admits only Label Studio's tasks; another port would hide nothing from them.",
        )

    @property
    def port(self) -> str:
        return self.instance.db_instance_endpoint_port

    @property
    def host(self) -> str:
        return self.instance.db_instance_endpoint_address


def protect_secret(secret: secretsmanager.Secret, key: LabelingKey | None, rotation_reason: str) -> None:
    """The customer-managed key on a generated secret (as LabelStudioSecrets does), and why it does not rotate."""
    if key is not None:
        # Set on the CloudFormation resource (no key policy statement of aws-cdk-lib's own): readers get
        # kms:Decrypt through IAM.
        cfn = secret.node.default_child
        assert isinstance(cfn, secretsmanager.CfnSecret)
        cfn.kms_key_id = key.key_arn
    acknowledge(secret, "AwsSolutions-SMG4", rotation_reason)
