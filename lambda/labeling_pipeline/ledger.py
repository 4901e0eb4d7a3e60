"""The image ledger: a DynamoDB table that assigns each image version to exactly one job.

Items:
- ``image#<bucket>/<key>#<version>``: ``job_name`` of the one job that labels this image version.
  Written with a conditional put, so the first claim wins and a repeated claim by the same job is a no-op.
- ``job#<name>``: written once CreateLabelingJob has succeeded (``status = CREATED``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.images import ImageRef

BATCH_GET_LIMIT = 100


def _image_key(image: ImageRef) -> dict[str, Any]:
    return {"pk": {"S": f"image#{image.image_id}"}}


def _job_key(job_name: str) -> dict[str, Any]:
    return {"pk": {"S": f"job#{job_name}"}}


class Ledger:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def claim(self, image: ImageRef, job_name: str) -> str:
        """Assign the image to `job_name` unless another job has it; return the owning job."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_image_key(image),
                    "job_name": {"S": job_name},
                    "source_ref": {"S": image.source_ref},
                    "claimed_at": {"S": datetime.now(UTC).isoformat()},
                },
                ConditionExpression="attribute_not_exists(pk) OR job_name = :job",
                ExpressionAttributeValues={":job": {"S": job_name}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return job_name
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = error.response.get("Item")
            if item and "job_name" in item:
                return str(item["job_name"]["S"])
        owner = self.owners([image]).get(image)
        if owner is None:  # the claim lost to a writer that has since vanished: cannot happen, never deleted
            raise RuntimeError(f"ledger lost the claim of {image.image_id}")
        return owner

    def owners(self, images: Iterable[ImageRef]) -> dict[ImageRef, str | None]:
        """Consistent read of who owns each image (None when unclaimed)."""
        wanted = {f"image#{image.image_id}": image for image in images}
        found: dict[ImageRef, str | None] = dict.fromkeys(wanted.values())
        keys = list(wanted)
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": {"S": key}} for key in keys[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "pk, job_name",
                }
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[wanted[item["pk"]["S"]]] = item["job_name"]["S"]
                request = response.get("UnprocessedKeys") or {}
        return found

    def job_created(self, job_name: str) -> bool:
        response = self._client.get_item(TableName=self._table, Key=_job_key(job_name), ConsistentRead=True)
        item = response.get("Item")
        return bool(item and item.get("status", {}).get("S") == "CREATED")

    def mark_job_created(self, job_name: str, image_count: int, manifest_uri: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **_job_key(job_name),
                "status": {"S": "CREATED"},
                "image_count": {"N": str(image_count)},
                "manifest_uri": {"S": manifest_uri},
                "created_at": {"S": datetime.now(UTC).isoformat()},
            },
        )
