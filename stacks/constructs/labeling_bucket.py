"""The one bucket of the pipeline: images/ in, jobs/ for task definitions, output/ and exports/ out."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.nag import acknowledge


class LabelingBucket(Construct):
    """Private, encrypted, TLS-only, versioned bucket whose images a labeling UI in the browser may fetch (CORS).

    Versioning is on so that a key overwritten while a job is open keeps the version the job was
    built from (the ledger records version ids); old versions expire after 30 days.
    CORS: GET from any origin, as browser-based labeling tools load each image from the bucket with a
    presigned URL: Ground Truth documents this rule for its image tasks, and Label Studio's editor needs it
    too, as it fetches the image cross-origin to show it as a blob: URL.

    With a customer-managed key (labeling.kmsKey) the bucket's default encryption is SSE-KMS with that
    key and an S3 Bucket Key (one KMS request per bucket key instead of one per object). The access-log
    bucket stays SSE-S3: server access log delivery supports only SSE-S3 on the target bucket
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == cdk.RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # Logs are write-once; versioning keeps a deleted or overwritten log recoverable for 90 days.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=cdk.Duration.days(365), noncurrent_version_expiration=cdk.Duration.days(90))
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the labeling bucket; logging it into itself would loop.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.KMS if encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=encryption_key,
            bucket_key_enabled=True if encryption_key else None,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="labeling-bucket/",
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET],
                    allowed_origins=["*"],
                    allowed_headers=[],
                    exposed_headers=["Access-Control-Allow-Origin"],
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket.bucket_name}/{key}"
