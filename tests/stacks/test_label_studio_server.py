"""The app with labeling.backend "label-studio" and no labeling.labelStudioUrl: the stack deploys Label Studio itself
(VPC, PostgreSQL on RDS, Fargate behind an internal load balancer, CloudFront with a VPC origin).

Synthesized once per module for two deployments: the default one (no key, CloudFront's own domain) and one with
labeling.kmsKey "create" and a custom domain with its certificate. Asserted: the server's resources and their key
properties, the image copied into the stack's ECR repository, the container's start (the labeling_gate plugin
fetched from its S3 asset), that no secret travels as plain environment or template text, the exact grants of
every role of the server, the URL the pipeline uses, the alarms, the CloudFront Function in front of the site (its
code, read from the template, run under Node.js against a recorded worker session and the requests it refuses),
and cfn-lint, cdk-nag and checkov on both templates.
The other two deployments keep no server: Ground Truth (the session's default synth) and Label Studio with a URL.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from app import build_app
from labeling_pipeline.backends.label_studio import Resources
from labeling_pipeline.names import StackOutput
from sandbox.cloudfront_function import CloudFrontFunction, viewer_request_event
from stacks.backends.label_studio.checkov_skips import SERVER_SKIPS, WithoutDomainSkip
from stacks.backends.label_studio.database import LabelStudioDatabase
from stacks.backends.label_studio.image import COPY_FUNCTION
from stacks.backends.label_studio.version import LABEL_STUDIO_VERSION, UPSTREAM_IMAGE
from stacks.config import ConfigError, LabelingConfig, parse_config
from tests.stacks.conftest import ACCOUNT, REGION, Synthesized, logical_id, synthesize_app
from tests.stacks.test_checkov import CheckovRun, run_checkov
from tests.stacks.test_label_studio_stack import PIPELINE, _acknowledged
from tests.stacks.test_least_privilege import BUCKET, Grant, allow, grants_by_role, render
from tests.stacks.test_validation import cfn_lint_findings

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "label_studio_plugin"
VIEWER_REQUEST_JS = ROOT / "stacks" / "backends" / "label_studio" / "edge" / "viewer_request.js"
BACKEND = {"labeling.backend": "label-studio"}
DOMAIN = "labels.example.com"
CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/12345678-1234-1234-1234-123456789012"
KMS_AND_DOMAIN = {
    "labeling.kmsKey": "create",
    "labeling.labelStudioDomain": DOMAIN,
    "labeling.labelStudioCertificateArn": CERTIFICATE,
}
# CloudFront's managed policies, by their documented ids
# (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html,
# .../using-managed-origin-request-policies.html).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
SERVER_TYPES = ("AWS::EC2::VPC", "AWS::ECS::", "AWS::RDS::", "AWS::CloudFront::", "AWS::ElasticLoadBalancingV2::")


@dataclass
class ServerApp:
    outdir: Path
    template: Template
    raw: dict[str, Any]
    app: cdk.App
    config: LabelingConfig
    seconds: float

    def resources(self, resource_type: str) -> dict[str, Any]:
        return dict(self.template.find_resources(resource_type))

    def one(self, resource_type: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
        name = logical_id(self.template, resource_type, prefix)
        return name, self.raw["Resources"][name]

    def ref(self, resource_type: str, prefix: str) -> dict[str, str]:
        return {"Ref": logical_id(self.template, resource_type, prefix)}

    def container(self) -> dict[str, Any]:
        _, task = self.one("AWS::ECS::TaskDefinition")
        [container] = task["Properties"]["ContainerDefinitions"]
        return dict(container)

    def environment(self) -> dict[str, Any]:
        return {item["Name"]: item["Value"] for item in self.container()["Environment"]}

    def file_assets(self) -> list[dict[str, Any]]:
        """The stack's file assets, as the cloud assembly's asset manifest lists them: each one's name, staged
        folder, packaging and where it is published."""
        manifest = json.loads((self.outdir / f"{PIPELINE}.assets.json").read_text())
        assets = []
        for asset in manifest["files"].values():
            [destination] = asset["destinations"].values()
            assets.append(
                {
                    "displayName": asset.get("displayName"),
                    **asset["source"],
                    "bucketName": destination["bucketName"],
                    "objectKey": destination["objectKey"],
                }
            )
        return assets

    def plugin_asset(self) -> dict[str, Any]:
        [asset] = [asset for asset in self.file_assets() if asset["displayName"] == "LabelStudio/Server/Plugin"]
        return asset


def _synthesize(outdir: Path, overrides: dict[str, str]) -> ServerApp:
    done = synthesize_app(outdir, {**BACKEND, **overrides})
    raw = dict(done.assembly.get_stack_by_name(PIPELINE).template)
    return ServerApp(outdir, Template.from_json(raw), raw, done.app, done.config, done.seconds)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerApp]:
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.label-studio-server"), {})


@pytest.fixture(scope="module")
def server_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerApp]:
    yield _synthesize(tmp_path_factory.mktemp("cdk.out.label-studio-server.kms"), KMS_AND_DOMAIN)


def _server_types(template: Mapping[str, Any]) -> list[str]:
    return sorted({r["Type"] for r in template["Resources"].values() if r["Type"].startswith(SERVER_TYPES)})


# --- which deployment has a server -------------------------------------------------------------------------


def test_the_default_ground_truth_deployment_has_no_server(synthesized: Synthesized) -> None:
    for template in (synthesized.pipeline, synthesized.workforce):
        assert _server_types(template.to_json()) == []


def test_with_a_url_there_is_no_server_and_without_one_there_is() -> None:
    with_url = parse_config({**BACKEND, "labeling.labelStudioUrl": "https://labels.example.com"})
    without = parse_config(BACKEND)
    assert not with_url.deploys_server and without.deploys_server  # type: ignore[attr-defined]


def test_the_url_given_synth_keeps_no_server(tmp_path: Path) -> None:
    app = _synthesize(tmp_path / "cdk.out", {"labeling.labelStudioUrl": "https://labels.example.com"})
    assert _server_types(app.raw) == []
    assert not [name for name in app.raw["Outputs"] if name in ("LabelStudioSiteUrl", "LabelStudioAdminSecretArn")]
    [project] = app.resources("Custom::LabelStudioProject").values()
    assert project["Properties"]["Url"] == "https://labels.example.com"
    assert "DependsOn" not in project


def test_a_synth_without_account_or_region_still_works(tmp_path: Path) -> None:
    # As `make deploy` synthesizes without AWS configuration: no lookup, and the load balancer's access logs
    # (whose bucket policy needs the region) wait for a deployment's synth.
    saved = {key: os.environ.pop(key, None) for key in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    try:
        context = {**json.loads((ROOT / "cdk.json").read_text())["context"], **BACKEND}
        assembly = build_app(cdk.App(context=context, outdir=str(tmp_path))).synth()
    finally:
        os.environ.update({key: value for key, value in saved.items() if value is not None})
    template = Template.from_json(dict(assembly.get_stack_by_name(PIPELINE).template))
    [balancer] = template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert "access_logs.s3.enabled" not in json.dumps(balancer)
    template.resource_count_is("AWS::ECS::Service", 1)


def test_the_image_tag_is_the_pinned_label_studio_release(server: ServerApp, server_kms: ServerApp) -> None:
    pins = re.findall(r"^label-studio==(\S+)$", (ROOT / "requirements-label-studio.txt").read_text(), re.MULTILINE)
    assert pins == [LABEL_STUDIO_VERSION]
    assert UPSTREAM_IMAGE.rsplit(":", 1) == ["docker.io/heartexlabs/label-studio", LABEL_STUDIO_VERSION]
    for app in (server, server_kms):
        repository = logical_id(app.template, "AWS::ECR::Repository", "LabelStudioServerImageRepository")
        arn = {"Fn::GetAtt": [repository, "Arn"]}
        # The tasks pull the pinned tag from the stack's own repository (aws-cdk-lib's repositoryUri, from its ARN).
        uri = [
            {"Fn::Select": [4, {"Fn::Split": [":", arn]}]},
            ".dkr.ecr.",
            {"Fn::Select": [3, {"Fn::Split": [":", arn]}]},
            ".",
            {"Ref": "AWS::URLSuffix"},
            "/",
            {"Ref": repository},
        ]
        assert app.container()["Image"] == {"Fn::Join": ["", [*uri, f":{LABEL_STUDIO_VERSION}"]]}
        # ... where the deployment copied it from Docker Hub, for amd64 (the tasks' X86_64), before any task starts.
        [(copy_id, copy)] = app.resources("Custom::CDKECRDeployment").items()
        function = logical_id(app.template, "AWS::Lambda::Function", re.sub(r"[^A-Za-z0-9]", "", COPY_FUNCTION))
        assert copy["Properties"] == {
            "ServiceToken": {"Fn::GetAtt": [function, "Arn"]},
            "SrcImage": f"docker://{UPSTREAM_IMAGE}",
            "DestImage": {"Fn::Join": ["", ["docker://", *uri, f":{LABEL_STUDIO_VERSION}"]]},
            "ImageArch": "amd64",
            "RetryConfigs": json.dumps({"numAttempts": 3, "baseDelay": 5, "maxDelay": 30}, separators=(",", ":")),
        }
        _, service = app.one("AWS::ECS::Service")
        assert copy_id in service["DependsOn"]
        # The copy's function is cdk-ecr-deployment's prebuilt binary (no Docker at synth), with its own role.
        _, handler = app.one("AWS::Lambda::Function", re.sub(r"[^A-Za-z0-9]", "", COPY_FUNCTION))
        assert handler["Properties"]["Runtime"] == "provided.al2023"
        assert handler["Properties"]["Handler"] == "bootstrap"
        assert handler["Properties"]["Role"] == {
            "Fn::GetAtt": [logical_id(app.template, "AWS::IAM::Role", "LabelStudioServerImageCopyRole"), "Arn"]
        }
        [code] = [a for a in app.file_assets() if a["objectKey"] == handler["Properties"]["Code"]["S3Key"]]
        assert (app.outdir / code["path"] / "bootstrap").is_file()


def test_the_image_repository(server: ServerApp, server_kms: ServerApp) -> None:
    _, repository = server.one("AWS::ECR::Repository")
    properties = repository["Properties"]
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    # Mutable, so that a rollback can copy the same tag again (checkov_skips.py, CKV_AWS_51).
    assert properties["ImageTagMutability"] == "MUTABLE"
    assert json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"] == [
        {
            "rulePriority": 1,
            "description": "Keep the 5 newest images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5},
            "action": {"type": "expire"},
        }
    ]
    # Kept like the stack's other stateful resources (labeling.removalPolicy "retain" in cdk.json); ECR's default
    # encryption (AES-256) without a key, the customer-managed key with one.
    assert repository["DeletionPolicy"] == repository["UpdateReplacePolicy"] == "Retain"
    assert properties["EmptyOnDelete"] is False
    assert "EncryptionConfiguration" not in properties
    key = logical_id(server_kms.template, "AWS::KMS::Key", "EncryptionKey")
    _, with_key = server_kms.one("AWS::ECR::Repository")
    assert with_key["Properties"]["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": {"Fn::GetAtt": [key, "Arn"]},
    }
    # The copy's log group is kept like the other log groups.
    for app, key_id in ((server, None), (server_kms, {"Fn::GetAtt": [key, "Arn"]})):
        _, logs = app.one("AWS::Logs::LogGroup", re.sub(r"[^A-Za-z0-9]", "", COPY_FUNCTION))
        assert logs["Properties"]["RetentionInDays"] == 90 and logs["DeletionPolicy"] == "Delete"
        assert logs["Properties"].get("KmsKeyId") == key_id


def test_with_removal_policy_destroy_the_repository_goes_with_its_images(tmp_path: Path) -> None:
    app = _synthesize(tmp_path / "cdk.out", {"labeling.removalPolicy": "destroy"})
    _, repository = app.one("AWS::ECR::Repository")
    assert repository["DeletionPolicy"] == "Delete" and repository["Properties"]["EmptyOnDelete"] is True


# --- network ------------------------------------------------------------------------------------------------


def test_two_zones_one_nat_gateway_and_flow_logs(server: ServerApp) -> None:
    subnets = server.resources("AWS::EC2::Subnet").values()
    zones = {json.dumps(subnet["Properties"]["AvailabilityZone"], sort_keys=True) for subnet in subnets}
    assert zones == {
        json.dumps({"Fn::Select": [index, {"Fn::GetAZs": ""}]}, sort_keys=True) for index in (0, 1)
    }  # resolved by CloudFormation, no lookup at synth
    public = [s for s in subnets if s["Properties"]["MapPublicIpOnLaunch"]]
    assert len(public) == 2 and len(subnets) == 4
    assert len(server.resources("AWS::EC2::NatGateway")) == 1
    [flow_log] = server.resources("AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["ResourceType"] == "VPC"
    assert flow_log["Properties"]["LogGroupName"] == server.ref(
        "AWS::Logs::LogGroup", "LabelStudioServerNetworkFlowLogs"
    )


def test_security_groups_admit_only_the_next_hop(server: ServerApp) -> None:
    groups = {
        name: logical_id(server.template, "AWS::EC2::SecurityGroup", f"LabelStudioServer{name}")
        for name in ("LoadBalancerSecurityGroup", "TaskSecurityGroup", "DatabaseSecurityGroup")
    }
    # No inline ingress anywhere, and no CIDR in any ingress rule: every way in names a security group.
    for group in server.resources("AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]
    ingress = {
        (rule["Properties"]["GroupId"]["Fn::GetAtt"][0], rule["Properties"]["FromPort"], rule["Properties"]["ToPort"]):
        rule["Properties"]["SourceSecurityGroupId"]
        for rule in server.resources("AWS::EC2::SecurityGroupIngress").values()
    }  # fmt: skip
    lookup = logical_id(server.template, "Custom::AWS", "LabelStudioServerSiteVpcOriginsSecurityGroup")
    assert ingress == {
        (groups["LoadBalancerSecurityGroup"], 80, 80): {"Fn::GetAtt": [lookup, "SecurityGroups.0.GroupId"]},
        (groups["TaskSecurityGroup"], 8080, 8080): {"Fn::GetAtt": [groups["LoadBalancerSecurityGroup"], "GroupId"]},
        (groups["DatabaseSecurityGroup"], 5432, 5432): {"Fn::GetAtt": [groups["TaskSecurityGroup"], "GroupId"]},
    }
    # The lookup finds CloudFront's VPC origin security group in this VPC, after the distribution exists.
    _, found = server.one("Custom::AWS", "LabelStudioServerSiteVpcOriginsSecurityGroup")
    rendered = json.dumps(found["Properties"]["Create"])
    assert "CloudFront-VPCOrigins-Service-SG" in rendered and "describeSecurityGroups" in rendered
    assert logical_id(server.template, "AWS::CloudFront::Distribution", "LabelStudioServerSite") in found["DependsOn"]
    # The load balancer sends only to the tasks' port (requests and health checks), as its group's one inline
    # rule: a group without inline egress would keep EC2's default allow-all egress, whatever separate
    # AWS::EC2::SecurityGroupEgress resources add.
    assert server.resources("AWS::EC2::SecurityGroupEgress") == {}
    balancer = server.raw["Resources"][groups["LoadBalancerSecurityGroup"]]["Properties"]
    assert balancer["SecurityGroupEgress"] == [
        {
            "Description": "The load balancer to Label Studio's tasks (requests and health checks)",
            "DestinationSecurityGroupId": {"Fn::GetAtt": [groups["TaskSecurityGroup"], "GroupId"]},
            "FromPort": 8080,
            "IpProtocol": "tcp",
            "ToPort": 8080,
        }
    ]
    # Only the tasks go out to the internet (ECR through the NAT gateway, S3, the webhook's function URL); the
    # database keeps aws-cdk-lib's rule that matches no traffic.
    open_egress = {
        name
        for name, group in server.resources("AWS::EC2::SecurityGroup").items()
        for rule in group["Properties"].get("SecurityGroupEgress", [])
        if rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"
    }
    assert open_egress == {groups["TaskSecurityGroup"]}


# --- database -----------------------------------------------------------------------------------------------


def test_postgres_encrypted_private_backed_up_and_protected(server: ServerApp, server_kms: ServerApp) -> None:
    _, instance = server.one("AWS::RDS::DBInstance")
    properties = instance["Properties"]
    assert properties["Engine"] == "postgres" and properties["EngineVersion"].startswith("17.")
    assert properties["DBInstanceClass"] == "db.t4g.micro"
    assert properties["MultiAZ"] is False
    assert properties["StorageEncrypted"] is True and "KmsKeyId" not in properties
    assert properties["PubliclyAccessible"] is False
    assert properties["BackupRetentionPeriod"] == 7
    assert properties["DeletionProtection"] is True
    assert instance["DeletionPolicy"] == instance["UpdateReplacePolicy"] == "Snapshot"
    credentials = logical_id(server.template, "AWS::SecretsManager::Secret", "LabelStudioServerDatabaseCredentials")
    assert properties["MasterUserPassword"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": credentials}, ":SecretString:password::}}"]]
    }
    [subnet_group] = server.resources("AWS::RDS::DBSubnetGroup").values()
    private = {
        name
        for name, subnet in server.resources("AWS::EC2::Subnet").items()
        if not subnet["Properties"]["MapPublicIpOnLaunch"]
    }
    assert {ref["Ref"] for ref in subnet_group["Properties"]["SubnetIds"]} == private
    # With labeling.kmsKey the pipeline's key encrypts the storage and every server secret.
    key = logical_id(server_kms.template, "AWS::KMS::Key", "EncryptionKey")
    _, kms_instance = server_kms.one("AWS::RDS::DBInstance")
    assert kms_instance["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    for name, secret in server_kms.resources("AWS::SecretsManager::Secret").items():
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}, name


def test_removal_policy_destroy_drops_deletion_protection() -> None:
    stack = cdk.Stack(cdk.App(), "Bare", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], restrict_default_security_group=False)
    LabelStudioDatabase(
        stack,
        "Database",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        instance_type="t4g.small",
        backup_days=3,
        multi_az=True,
        retain=False,
        key=None,
    )
    template = Template.from_stack(stack)
    [instance] = template.find_resources("AWS::RDS::DBInstance").values()
    assert instance["DeletionPolicy"] == "Delete" and instance["Properties"]["DeletionProtection"] is False
    assert instance["Properties"]["MultiAZ"] is True and instance["Properties"]["BackupRetentionPeriod"] == 3
    [secret] = template.find_resources("AWS::SecretsManager::Secret").values()
    assert secret["DeletionPolicy"] == "Delete"


# --- the service --------------------------------------------------------------------------------------------


def _site_url(app: ServerApp) -> Any:
    distribution = logical_id(app.template, "AWS::CloudFront::Distribution", "LabelStudioServerSite")
    return {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution, "DomainName"]}]]}


def _plugin_uri(app: ServerApp) -> str:
    asset = app.plugin_asset()
    return f"s3://{asset['bucketName']}/{asset['objectKey']}"


def test_the_container_gets_settings_as_environment_and_secrets_as_ecs_secrets(server: ServerApp) -> None:
    _, task = server.one("AWS::ECS::TaskDefinition")
    [container] = task["Properties"]["ContainerDefinitions"]
    database = logical_id(server.template, "AWS::RDS::DBInstance", "LabelStudioServerDatabase")
    environment = server.environment()
    assert environment == {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": "labelstudio",
        "POSTGRE_USER": "labelstudio",
        "POSTGRE_HOST": {"Fn::GetAtt": [database, "Endpoint.Address"]},
        "POSTGRE_PORT": {"Fn::GetAtt": [database, "Endpoint.Port"]},
        "LABEL_STUDIO_HOST": _site_url(server),
        "CSRF_TRUSTED_ORIGINS": _site_url(server),
        "SESSION_COOKIE_SECURE": "1",
        "CSRF_COOKIE_SECURE": "1",
        "DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "SSRF_PROTECTION_ENABLED": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABELING_PLUGIN_S3_URI": _plugin_uri(server),
        "LABELING_PLUGIN_REGION": REGION,
    }
    secrets = {item["Name"]: item["ValueFrom"] for item in container["Secrets"]}
    secret = {
        name: logical_id(server.template, "AWS::SecretsManager::Secret", prefix)
        for name, prefix in (
            ("db", "LabelStudioServerDatabaseCredentials"),
            ("admin", "LabelStudioServerAdminPassword"),
            ("token", "LabelStudioSecretsApiToken"),
            ("django", "LabelStudioServerDjangoSecretKey"),
        )
    }
    assert secrets == {
        "POSTGRE_PASSWORD": {"Fn::Join": ["", [{"Ref": secret["db"]}, ":password::"]]},
        "LABEL_STUDIO_PASSWORD": {"Ref": secret["admin"]},
        "LABEL_STUDIO_USER_TOKEN": {"Ref": secret["token"]},
        "SECRET_KEY": {"Ref": secret["django"]},
    }
    assert not set(secrets) & set(environment)
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    logs = container["LogConfiguration"]["Options"]["awslogs-group"]
    assert server.raw["Resources"][logs["Ref"]]["Properties"]["RetentionInDays"] == 90
    assert task["Properties"]["Cpu"] == "1024" and task["Properties"]["Memory"] == "2048"


def test_the_container_starts_labeling_gate_fetched_from_its_asset(server: ServerApp, server_kms: ServerApp) -> None:
    for app in (server, server_kms):
        container = app.container()
        # python3 -c with exactly the file's text; the arguments after it go to labeling_gate.start.
        assert container["EntryPoint"] == ["python3", "-c", (PLUGIN / "fetch_and_start.py").read_text()]
        assert container["Command"] == ["--bind", "0.0.0.0", "--port", "8080"]
        environment = app.environment()
        assert environment["LABELING_PLUGIN_S3_URI"] == _plugin_uri(app)
        assert environment["LABELING_PLUGIN_REGION"] == REGION
    # The asset is the plugin folder as it is, zipped, without Python's caches.
    asset = server.plugin_asset()
    assert asset["packaging"] == "zip" and asset["objectKey"].endswith(".zip")
    assert asset["bucketName"] == f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"  # the bootstrap's assets bucket

    def files(folder: Path) -> set[str]:
        return {
            str(path.relative_to(folder))
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        }

    staged = server.outdir / asset["path"]
    assert files(staged) == files(PLUGIN) and "labeling_gate/start.py" in files(staged)
    assert not [path for path in staged.rglob("*") if "__pycache__" in path.parts or path.suffix == ".pyc"]


def test_csrf_trusts_every_address_of_the_site(server: ServerApp, server_kms: ServerApp) -> None:
    # Without a domain the site has one address; with one, the distribution's own address answers too, and
    # Label Studio splits CSRF_TRUSTED_ORIGINS on commas (label_studio/core/settings/base.py).
    assert server.environment()["CSRF_TRUSTED_ORIGINS"] == _site_url(server)
    environment = server_kms.environment()
    distribution = logical_id(server_kms.template, "AWS::CloudFront::Distribution", "LabelStudioServerSite")
    assert environment["LABEL_STUDIO_HOST"] == f"https://{DOMAIN}"
    assert environment["CSRF_TRUSTED_ORIGINS"] == {
        "Fn::Join": ["", [f"https://{DOMAIN},https://", {"Fn::GetAtt": [distribution, "DomainName"]}]]
    }


def test_no_secret_value_in_any_template(server: ServerApp, server_kms: ServerApp) -> None:
    for app in (server, server_kms):
        for name, secret in app.resources("AWS::SecretsManager::Secret").items():
            # Every secret is generated by Secrets Manager; none carries a value in the template.
            assert "SecretString" not in secret["Properties"], name
            assert "GenerateSecretString" in secret["Properties"], name
        for path in app.outdir.glob("*.template.json"):
            text = path.read_text()
            assert not re.search(
                r'"(POSTGRE_PASSWORD|LABEL_STUDIO_PASSWORD|LABEL_STUDIO_USER_TOKEN|SECRET_KEY)",\s*"Value"', text
            )
            assert '"MasterUserPassword": "' not in text


def test_the_service_one_task_scaling_on_cpu_with_rollback(server: ServerApp) -> None:
    [cluster] = server.resources("AWS::ECS::Cluster").values()
    assert cluster["Properties"]["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enabled"}]
    _, service = server.one("AWS::ECS::Service")
    properties = service["Properties"]
    assert properties["DesiredCount"] == 1 and properties["LaunchType"] == "FARGATE"
    assert properties["DeploymentConfiguration"] == {
        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
        "MaximumPercent": 200,
        "MinimumHealthyPercent": 100,
    }
    assert properties["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert properties["HealthCheckGracePeriodSeconds"] == 600
    [target] = server.resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 2)
    [policy] = server.resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert tracking["TargetValue"] == 70
    [group] = server.resources("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert group["Properties"]["HealthCheckPath"] == "/health" and group["Properties"]["Port"] == 8080
    assert group["Properties"]["TargetType"] == "ip"


def test_an_internal_load_balancer_with_access_logs(server: ServerApp) -> None:
    _, balancer = server.one("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert balancer["Properties"]["Scheme"] == "internal"
    attributes = {item["Key"]: item["Value"] for item in balancer["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["idle_timeout.timeout_seconds"] == "120"
    [listener] = server.resources("AWS::ElasticLoadBalancingV2::Listener").values()
    assert (listener["Properties"]["Port"], listener["Properties"]["Protocol"]) == (80, "HTTP")


# --- the site -----------------------------------------------------------------------------------------------


def test_cloudfront_https_only_uncached_through_a_vpc_origin(server: ServerApp) -> None:
    balancer, _ = server.one("AWS::ElasticLoadBalancingV2::LoadBalancer")
    origin_id, vpc_origin = server.one("AWS::CloudFront::VpcOrigin")
    assert vpc_origin["Properties"]["VpcOriginEndpointConfig"]["Arn"] == {"Ref": balancer}
    assert vpc_origin["Properties"]["VpcOriginEndpointConfig"]["OriginProtocolPolicy"] == "http-only"
    _, distribution = server.one("AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["CachePolicyId"] == CACHING_DISABLED and behavior["OriginRequestPolicyId"] == ALL_VIEWER
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": [balancer, "DNSName"]}
    assert origin["VpcOriginConfig"] == {"OriginReadTimeout": 60, "VpcOriginId": {"Fn::GetAtt": [origin_id, "Id"]}}
    assert "Logging" in config and "Aliases" not in config and "ViewerCertificate" not in config


def test_a_custom_domain_with_its_certificate(server_kms: ServerApp) -> None:
    _, distribution = server_kms.one("AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    assert config["Aliases"] == [DOMAIN]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CERTIFICATE,
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "SslSupportMethod": "sni-only",
    }
    assert server_kms.raw["Outputs"]["LabelStudioSiteUrl"]["Value"] == f"https://{DOMAIN}"


def test_outputs_and_the_url_the_pipeline_uses(server: ServerApp) -> None:
    outputs = server.raw["Outputs"]
    assert outputs["LabelStudioSiteUrl"]["Value"] == _site_url(server)
    assert outputs["LabelStudioAdminSecretArn"]["Value"] == server.ref(
        "AWS::SecretsManager::Secret", "LabelStudioServerAdminPassword"
    )
    # BACKEND_RESOURCES (what the functions and the CLI get) is JSON text joined with tokens; the URL is a token
    # inside a JSON string, so it is read back as text.
    distribution = logical_id(server.template, "AWS::CloudFront::Distribution", "LabelStudioServerSite")
    _separator, parts = outputs[StackOutput.BACKEND_RESOURCES]["Value"]["Fn::Join"]
    text = "".join(part if isinstance(part, str) else f"<{json.dumps(part, sort_keys=True)}>" for part in parts)
    domain = json.dumps({"Fn::GetAtt": [distribution, "DomainName"]}, sort_keys=True)
    assert f'"{Resources.URL}":"https://<{domain}>"' in text
    [(_, project)] = server.resources("Custom::LabelStudioProject").items()
    assert project["Properties"]["Url"] == _site_url(server)
    # The project is set up once the service is stable and CloudFront's VPC origin may reach the load balancer.
    for resource_type, prefix in (
        ("AWS::ECS::Service", "LabelStudioServerService"),
        ("AWS::EC2::SecurityGroupIngress", "LabelStudioServerSiteFromVpcOrigin"),
        ("AWS::CloudFront::Distribution", "LabelStudioServerSite"),
    ):
        assert logical_id(server.template, resource_type, prefix) in project["DependsOn"]


def test_server_alarms_notify_the_results_topic(server: ServerApp) -> None:
    topic = logical_id(server.template, "AWS::SNS::Topic", "FollowResults")
    alarms = {
        re.sub(r"[0-9A-F]{8}$", "", name).removeprefix("LabelStudioServerAlarms"): alarm["Properties"]
        for name, alarm in server.resources("AWS::CloudWatch::Alarm").items()
        if name.startswith("LabelStudioServerAlarms")
    }
    assert sorted(alarms) == sorted(
        [
            "UnhealthyTargets",
            "NoHealthyTarget",
            "LoadBalancer5xx",
            "LabelStudio5xx",
            "DatabaseCpu",
            "DatabaseStorageLow",
        ]
    )
    for properties in alarms.values():
        assert properties["AlarmActions"] == [{"Ref": topic}]
    assert alarms["UnhealthyTargets"]["MetricName"] == "UnHealthyHostCount"
    assert alarms["LoadBalancer5xx"]["MetricName"] == "HTTPCode_ELB_5XX_Count"
    assert alarms["DatabaseCpu"]["MetricName"] == "CPUUtilization"
    assert alarms["DatabaseStorageLow"]["MetricName"] == "FreeStorageSpace"
    assert alarms["DatabaseStorageLow"]["ComparisonOperator"] == "LessThanThreshold"


# --- the edge: the CloudFront Function in front of Label Studio -----------------------------------------------

FIXTURES = ROOT / "tests" / "label_studio" / "fixtures"
# A signed-in worker's browser: its session cookie and CSRF token, no Authorization header.
WORKER_BROWSER = {"cookie": "csrftoken=abc; sessionid=worker-session", "x-csrftoken": "abc"}
PIPELINE_CLIENT = {
    "authorization": "Token 0123456789abcdef0123456789abcdef01234567",
    "content-type": "application/json",
}
# The pipeline's own calls (backends/label_studio/api.py, project.py, workers.py): labeling_gate decides on them,
# the edge lets them through.
PIPELINE_CALLS = [
    ("GET", "/api/projects?title=Bounding+boxes&page=1&page_size=100&ordering=id"),
    ("POST", "/api/projects"),
    ("PATCH", "/api/projects/1"),
    ("POST", "/api/projects/1/import?return_task_ids=true"),
    ("GET", "/api/tasks?project=1&page=1&page_size=100&resolve_uri=false&fields=all"),
    ("DELETE", "/api/tasks/7"),
    ("POST", "/api/storages/s3"),
    ("PATCH", "/api/webhooks/1/"),
    ("GET", "/api/invite"),
    ("POST", "/api/invite/reset-token"),
    ("DELETE", "/api/organizations/1/memberships/2"),
    ("GET", "/api/projects/1/export?exportType=JSON"),
]
# (status, the function's x-labeling-gate reason) for what no browser or client of the pipeline sends.
AMBIGUOUS = (400, "ambiguous-path")
CLOSED = (403, "closed")
REFUSED_PATHS = {
    # dot segments
    "/api/projects/1/../../admin/": AMBIGUOUS,
    "/static/./js/main.js": AMBIGUOUS,
    "/api/projects/..": AMBIGUOUS,
    # encoded dots, slashes and backslashes
    "/api/projects/1/%2e%2e/2": AMBIGUOUS,
    "/api/projects/1/%2E%2E/2": AMBIGUOUS,
    "/api/projects%2f1": AMBIGUOUS,
    "/api%2Fprojects/1": AMBIGUOUS,
    "/api/projects%5c1": AMBIGUOUS,
    "/api/projects\\1": AMBIGUOUS,
    # ';' parameters, plain and encoded
    "/api/projects;x=1/1": AMBIGUOUS,
    "/api/projects/1;jsessionid=abc": AMBIGUOUS,
    "/api/projects/1%3bx": AMBIGUOUS,
    # doubled slashes
    "//api/projects": AMBIGUOUS,
    "/api//projects/1/export": AMBIGUOUS,
    # NUL and malformed escapes
    "/api/projects%00": AMBIGUOUS,
    "/api/projects/%zz": AMBIGUOUS,
    # Django's admin site and the job queue's pages, in any case and spelling
    "/admin": CLOSED,
    "/admin/": CLOSED,
    "/ADMIN/auth/user/": CLOSED,
    "/Admin/login/": CLOSED,
    "/%61dmin/": CLOSED,
    "/django-rq": CLOSED,
    "/django-rq/queues/0/": CLOSED,
    "/Django-RQ/": CLOSED,
}
OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override", "X-HTTP-Method-Override")
UNKNOWN_METHODS = ("TRACE", "CONNECT", "PROPFIND", "MOVE", "get")
# CloudFront Functions' maximum code size (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html).
MAX_FUNCTION_BYTES = 10 * 1024


def _target(request: Mapping[str, str]) -> str:
    query = request.get("query", "")
    return f"{request['path']}?{query}" if query else request["path"]


def _answer(edge: CloudFrontFunction, method: str, uri: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The function's answer to a request for exactly this URI (urlsplit would read '//api' as a host)."""
    event = viewer_request_event(method, "/", headers)
    event["request"].update(method=method, uri=uri)
    return edge.run(event)


def _refusal(answer: Mapping[str, Any]) -> tuple[int, str] | None:
    if "statusCode" not in answer:
        return None
    return answer["statusCode"], answer["headers"]["x-labeling-gate"]["value"]


@pytest.fixture(scope="module")
def edge(server: ServerApp) -> Iterator[CloudFrontFunction]:
    """The function's code as the template has it, run under Node.js."""
    _, function = server.one("AWS::CloudFront::Function")
    with CloudFrontFunction(function["Properties"]["FunctionCode"]) as running:
        yield running


def test_the_edge_filter_is_the_js_file_on_every_viewer_request(server: ServerApp, server_kms: ServerApp) -> None:
    code = VIEWER_REQUEST_JS.read_text()
    assert len(code.encode()) < MAX_FUNCTION_BYTES
    for app in (server, server_kms):
        function_id, function = app.one("AWS::CloudFront::Function")
        assert function["Properties"]["FunctionCode"] == code  # the file as it is: no credential, no token
        assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
        assert function["Properties"]["AutoPublish"] is True
        _, distribution = app.one("AWS::CloudFront::Distribution")
        behavior = distribution["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
        assert behavior["FunctionAssociations"] == [
            {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
        ]
        assert "CacheBehaviors" not in distribution["Properties"]["DistributionConfig"]  # no path escapes it
        # Authorization is labeling_gate's, inside Label Studio: nothing in the template computes a credential.
        assert "Digest" not in json.dumps(app.raw)
        assert {r["Type"] for r in app.raw["Resources"].values() if r["Type"].startswith("Custom::")} == {
            "Custom::AWS",
            "Custom::CDKECRDeployment",
            "Custom::LabelStudioProject",
            "Custom::S3BucketNotifications",
        }


def test_a_workers_browser_session_and_the_pipelines_calls_pass_the_edge(edge: CloudFrontFunction) -> None:
    session = json.loads((FIXTURES / "worker_session_requests.json").read_text())["requests"]
    refused = [
        f"{request['method']} {_target(request)}"
        for request in session
        if edge.refuses(request["method"], _target(request), WORKER_BROWSER)
    ]
    assert refused == []
    # The recording is a whole session: sign-in, the labeling stream, the image, the submitted box.
    methods_and_paths = {(request["method"], request["path"]) for request in session}
    assert ("POST", "/user/login/") in methods_and_paths
    assert any(m == "POST" and re.fullmatch(r"/api/tasks/\d+/annotations", p) for m, p in methods_and_paths)
    assert any(p.startswith("/tasks/") and "/resolve" in p for _, p in methods_and_paths)
    refused = [f"{m} {target}" for m, target in PIPELINE_CALLS if edge.refuses(m, target, PIPELINE_CLIENT)]
    assert refused == []
    # A path that only starts like a closed one is not closed.
    assert not edge.refuses("GET", "/administrators-guide", WORKER_BROWSER)


def test_the_edge_refuses_what_no_browser_or_client_sends(edge: CloudFrontFunction) -> None:
    for headers in (WORKER_BROWSER, PIPELINE_CLIENT):
        answers = {uri: _refusal(_answer(edge, "GET", uri, headers)) for uri in REFUSED_PATHS}
        assert answers == REFUSED_PATHS
        for name in OVERRIDE_HEADERS:
            answer = _answer(edge, "POST", "/api/tasks/7/annotations", {**headers, name: "DELETE"})
            assert _refusal(answer) == (400, "method-override"), name
        for method in UNKNOWN_METHODS:
            assert _refusal(_answer(edge, method, "/api/projects", headers)) == (405, "method"), method
    # The refusals are not cached anywhere between.
    answer = _answer(edge, "GET", "/admin/", WORKER_BROWSER)
    assert answer["headers"]["cache-control"] == {"value": "no-store"}


# --- IAM ----------------------------------------------------------------------------------------------------

SECRETS = (
    "${LabelStudioSecretsApiToken}",
    "${LabelStudioServerAdminPassword}",
    "${LabelStudioServerDatabaseCredentials}",
    "${LabelStudioServerDjangoSecretKey}",
)


REPOSITORY = "${LabelStudioServerImageRepository.Arn}"
COPY_LOGS = "${" + re.sub(r"[^A-Za-z0-9]", "", COPY_FUNCTION) + "LogGroup.Arn}"


def _plugin_object(app: ServerApp) -> str:
    asset = app.plugin_asset()
    return f"arn:aws:s3:::{asset['bucketName']}/{asset['objectKey']}"


def _expected(app: ServerApp, key: bool) -> dict[str, set[Grant]]:
    decrypt = allow("kms:Decrypt", "${EncryptionKey.Arn}") if key else set()
    return {
        # The container fetches the plugin's one object at start; Label Studio presigns image links with this
        # role: read images/, check the bucket.
        "LabelStudioServerTaskRole": allow("s3:GetObject", _plugin_object(app))
        | allow("s3:GetObject", f"{BUCKET}/images/*")
        | allow("s3:ListBucket", BUCKET)
        | decrypt,
        # ECS pulls the image from the stack's repository (ECR's sign-in has no resource), the four secrets, and
        # writes the container's log. ECR decrypts the image itself (a grant on the key): no kms:Decrypt for it.
        "LabelStudioServerTaskExecutionRole": allow(
            "ecr:BatchCheckLayerAvailability ecr:GetDownloadUrlForLayer ecr:BatchGetImage", REPOSITORY
        )
        | allow("ecr:GetAuthorizationToken", "*")
        | allow("logs:CreateLogStream logs:PutLogEvents", "${LabelStudioServerLogs.Arn}")
        | allow("secretsmanager:GetSecretValue secretsmanager:DescribeSecret", *SECRETS)
        | decrypt,
        # The deploy-time copy: into the one repository, and its own log group; none of cdk-ecr-deployment's own
        # statements (every ECR action and s3:GetObject on "*").
        "LabelStudioServerImageCopyRole": allow("ecr:GetAuthorizationToken", "*")
        | allow(
            "ecr:BatchCheckLayerAvailability ecr:GetDownloadUrlForLayer ecr:BatchGetImage ecr:InitiateLayerUpload "
            "ecr:UploadLayerPart ecr:CompleteLayerUpload ecr:PutImage",
            REPOSITORY,
        )
        | allow("logs:CreateLogStream logs:PutLogEvents", COPY_LOGS),
        "LabelStudioServerNetworkVpcFlowLogIAMRole": allow(
            "logs:CreateLogStream logs:PutLogEvents logs:DescribeLogStreams", "${LabelStudioServerNetworkFlowLogs.Arn}"
        ),
    }


def test_the_servers_roles_grant_exactly(server: ServerApp, server_kms: ServerApp) -> None:
    for app, key in ((server, False), (server_kms, True)):
        grants = grants_by_role(app.raw)
        expected = _expected(app, key)
        assert {role: grants[role] for role in expected} == expected
        assert {role for role in grants if role.startswith("LabelStudioServer")} == set(expected)
        # CDK's AwsCustomResource provider: the one lookup of CloudFront's VPC origin security group.
        assert ("Allow", "ec2:DescribeSecurityGroups", "*") in grants["CdkCustomResourceRole"]


def test_the_task_reads_exactly_the_plugins_object_of_the_assets_bucket(server: ServerApp) -> None:
    # Not Asset.grant_read: that would add s3:List* and s3:GetObject* on the whole CDK assets bucket.
    assets = {
        (role, grant)
        for role, grants in grants_by_role(server.raw).items()
        for grant in grants
        if "cdk-hnb659fds-assets" in grant[2]
    }
    assert assets == {("LabelStudioServerTaskRole", ("Allow", "s3:GetObject", _plugin_object(server)))}
    [statement] = [
        statement
        for name, policy in server.resources("AWS::IAM::Policy").items()
        if name.startswith("LabelStudioServerTaskAccess")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Sid"] == "ReadPlugin"
    ]
    assert statement["Action"] == "s3:GetObject" and render(statement["Resource"]) == _plugin_object(server)
    assert "*" not in _plugin_object(server)


# --- the tools ----------------------------------------------------------------------------------------------


def _templates(*apps: ServerApp) -> list[str]:
    return sorted(str(path) for app in apps for path in app.outdir.glob("*.template.json"))


def test_cfn_lint_finds_nothing(server: ServerApp, server_kms: ServerApp) -> None:
    templates = _templates(server, server_kms)
    assert len(templates) == 2
    assert cfn_lint_findings(templates) == []


def test_cdk_nag_has_no_unacknowledged_finding(server: ServerApp, server_kms: ServerApp) -> None:
    for app in (server, server_kms):
        report = json.loads((app.outdir / "validation-report.json").read_text())
        assert all(plugin["violations"] == [] for plugin in report["pluginReports"])


def test_the_servers_acknowledgements_and_their_reasons(server: ServerApp, server_kms: ServerApp) -> None:
    acknowledged = _acknowledged(server.app)
    bucket = logical_id(server.template, "AWS::S3::Bucket", "StorageBucket")
    # cdk-nag's findings (aws-cdk-lib acknowledges two CloudFormation-Validate findings on the flow log itself).
    ours = {
        (path.removeprefix(f"{PIPELINE}/"), rule)
        for path, rule in acknowledged
        if "/LabelStudio/Server" in path and rule.startswith("AwsSolutions-")
    }
    assert ours == {
        ("LabelStudio/Server/Database/Credentials", "AwsSolutions-SMG4"),
        ("LabelStudio/Server/Database/Instance", "AwsSolutions-RDS3"),
        ("LabelStudio/Server/Database/Instance", "AwsSolutions-RDS6"),
        ("LabelStudio/Server/Database/Instance", "AwsSolutions-RDS11"),
        ("LabelStudio/Server/AdminPassword", "AwsSolutions-SMG4"),
        ("LabelStudio/Server/DjangoSecretKey", "AwsSolutions-SMG4"),
        ("LabelStudio/Server/TaskAccess", f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/images/*]"),
        ("LabelStudio/Server/Task", "AwsSolutions-ECS2"),
        ("LabelStudio/Server/Task/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
        ("LabelStudio/Server/Image/CopyAccess", "AwsSolutions-IAM5[Resource::*]"),
        ("LabelStudio/Server/Site/AccessLogs", "AwsSolutions-S1"),
        ("LabelStudio/Server/Site/Distribution", "AwsSolutions-CFR1"),
        ("LabelStudio/Server/Site/Distribution", "AwsSolutions-CFR2"),
        ("LabelStudio/Server/Site/Distribution", "AwsSolutions-CFR4"),
        ("LabelStudio/Server/Site/VpcOriginsSecurityGroup", "AwsSolutions-IAM5[Resource::*]"),
    }
    for (path, rule), reason in acknowledged.items():
        if "/LabelStudio/Server" in path and rule.startswith("AwsSolutions-"):
            assert len(reason) >= 80, path
    # With a domain and its certificate the TLS policy is set, so nothing is acknowledged about it.
    assert not [rule for (path, rule) in _acknowledged(server_kms.app) if rule == "AwsSolutions-CFR4"]


@pytest.fixture(scope="module")
def checkov(server: ServerApp, server_kms: ServerApp) -> CheckovRun:
    return run_checkov(
        {
            str(Path(path).resolve()): variant
            for variant, app in (("default", server), ("kms", server_kms))
            for path in _templates(app)
        }
    )


def test_checkov_has_no_failed_check(checkov: CheckovRun) -> None:
    assert checkov.passed > 100
    assert not checkov.failed, "\n".join(f"  {f['check_id']} {f['resource']}" for f in checkov.failed)
    for _variant, _check, reason in checkov.skips():
        assert len(reason) >= 80, reason


def test_every_server_skip_is_used_with_its_reason(checkov: CheckovRun) -> None:
    skipped = checkov.skips()
    for skip in SERVER_SKIPS:
        assert len(skip.reason) >= 80, skip
        assert ("default", skip.check, skip.reason) in skipped, skip
        # The key fixes the encryption findings; the domain's certificate fixes the viewer TLS finding.
        fixed_in_kms_variant = skip.without_kms or isinstance(skip, WithoutDomainSkip)
        assert (("kms", skip.check, skip.reason) in skipped) is not fixed_in_kms_variant, skip


def test_synthesis_time(server: ServerApp, server_kms: ServerApp) -> None:
    assert server.seconds < 60 and server_kms.seconds < 60


# --- configuration ------------------------------------------------------------------------------------------


def _config(**settings: object) -> LabelingConfig:
    return parse_config({**BACKEND, **{f"labeling.{key}": value for key, value in settings.items()}})


def test_server_settings_and_their_defaults() -> None:
    config = _config(
        labelStudioAdminEmail="lead@example.com",
        labelStudioMinTasks=2,
        labelStudioMaxTasks=4,
        labelStudioDatabaseInstanceType="t4g.small",
        labelStudioDatabaseBackupDays=14,
        labelStudioDatabaseMultiAz=True,
    )
    assert config.label_studio_admin_email == "lead@example.com"  # type: ignore[attr-defined]
    assert (config.label_studio_min_tasks, config.label_studio_max_tasks) == (2, 4)  # type: ignore[attr-defined]
    default = _config()
    assert default.label_studio_admin_email == "admin@example.com"  # type: ignore[attr-defined]
    assert default.label_studio_database_backup_days == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"labelStudioDomain": DOMAIN}, r"^labeling\.labelStudioDomain: give labelStudioDomain and labelStudioCert"),
        ({"labelStudioCertificateArn": CERTIFICATE}, r"^labeling\.labelStudioDomain: give labelStudioDomain and"),
        (
            {"labelStudioDomain": DOMAIN, "labelStudioCertificateArn": CERTIFICATE.replace("us-east-1", "eu-west-1")},
            r"^labeling\.labelStudioCertificateArn: .* in us-east-1.*CloudFront takes certificates from us-east-1",
        ),
        ({"labelStudioDomain": "https://labels.example.com"}, r"^labeling\.labelStudioDomain: .* DNS name"),
        ({"labelStudioAdminEmail": "admin"}, r"^labeling\.labelStudioAdminEmail: 'admin' is not an email address"),
        ({"labelStudioMinTasks": 3, "labelStudioMaxTasks": 2}, r"^labeling\.labelStudioMinTasks: must not exceed"),
        ({"labelStudioMaxTasks": 11}, r"^labeling\.labelStudioMaxTasks: must be between 1 and 10"),
        ({"labelStudioDatabaseBackupDays": 0}, r"^labeling\.labelStudioDatabaseBackupDays: must be between 1 and 35"),
        ({"labelStudioDatabaseInstanceType": "db.t4g.micro"}, r"without 'db\.'"),
        (
            {"labelStudioUrl": "https://labels.example.com", "labelStudioDomain": DOMAIN},
            r"^labeling\.labelStudioDomain: a setting of the Label Studio server this stack deploys, but "
            r"labelStudioUrl names an existing server",
        ),
    ],
)
def test_server_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**settings)
