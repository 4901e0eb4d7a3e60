"""The image ledger: a DynamoDB table that assigns each image version to exactly one job.

Items:
- ``image#<bucket>/<key>#<version>``: ``job_name`` of the one job that labels this image version, with
  ``source_ref``, ``claimed_at`` and, when the key is in a dataset (the first folder under ``images/``, see
  `dataset_of`), ``dataset`` and its index group (``group_key`` = ``dataset#<name>``, ``group_sort`` = the
  claim time). Written by a put conditioned on the item not existing, 100 to a transaction
  (``claim_many``): the first claim wins, and a repeated claim, by the same job or another, writes nothing
  and returns the owner.
- ``job#<name>``: written once the job has been created (``status = CREATED``, ``created_at``,
  ``image_count``, and its index group: ``group_key`` = ``jobs``, ``group_sort`` = ``created_at``); when the
  job ends, the job-events Lambda takes a lease on it (``FINISHING``) and records the end (``COMPLETED``,
  ``FAILED`` or ``STOPPED``), so a repeated event does the work once.
- After the job ends, each image item also holds ``status`` (``LABELED`` with ``box_count``, or
  ``NEEDS_RELABEL`` with ``failure_reason``); ``bbox-labeling relabel`` sets ``RELABEL_REQUESTED``.

Items are read by key, or through the one sparse secondary index of `labeling_pipeline.ledger_schema`
(``ledger-groups``): the newest jobs (`jobs`) and a dataset's image versions (`images_of_dataset`). Index
reads are eventually consistent; each caller says why that is enough. A job's images are read by key from
its candidate list (`members`, through `labeling_pipeline.launcher.job_images`), consistently.

One Scan, `upgrade_items`: `bbox-labeling ledger upgrade`, run once by the operator after the deploy that
added the index, gives the items written before it their group. Nothing else scans the table.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from labeling_pipeline.images import ImageRef
from labeling_pipeline.ledger_schema import GROUP_KEY, GROUP_SORT, GROUPS_INDEX, JOBS_GROUP, dataset_group
from labeling_pipeline.names import CREATED_LEDGER_STATUSES, FINISHED_LEDGER_STATUSES, INPUT_PREFIX, LedgerJobStatus

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
TRANSACT_WRITE_LIMIT = 100  # TransactWriteItems takes at most 100 actions
CLAIM_ATTEMPTS = 6  # transactions sent for the same images while they conflict or are throttled
# Cancellation reasons that decide nothing about the item: the same transaction may pass later.
TRANSIENT_CANCELLATION_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
# What a claim writes besides pk; record_results keeps them (the index is built on group_key and group_sort).
CLAIM_ATTRIBUTES = ("job_name", "source_ref", "claimed_at", "dataset", GROUP_KEY, GROUP_SORT)
# The group_sort of an item whose time is not known (see upgrade_items): before every real time.
UNKNOWN_TIME = "1970-01-01T00:00:00+00:00"


def dataset_of(key: str) -> str | None:
    """The dataset an image key belongs to: the first folder under images/ (``images/NAME/...``, as
    ``bbox-labeling upload --dataset NAME`` and the stack's UploadCommand write). A key directly under
    images/, or whose first folder is empty (``images//x.jpg``), belongs to no dataset: its item has no
    ``dataset`` and is in no index group."""
    if not key.startswith(INPUT_PREFIX):
        return None
    name, slash, _ = key[len(INPUT_PREFIX) :].partition("/")
    return name if slash and name else None


def _image_key(image: ImageRef) -> dict[str, Any]:
    return {"pk": {"S": f"image#{image.image_id}"}}


def _image_group(image: ImageRef, claimed_at: str) -> dict[str, Any]:
    """The attributes that put an image item in its dataset's index group (none outside a dataset)."""
    dataset = dataset_of(image.key)
    if not dataset:
        return {}
    return {"dataset": {"S": dataset}, GROUP_KEY: {"S": dataset_group(dataset)}, GROUP_SORT: {"S": claimed_at}}


def _job_key(job_name: str) -> dict[str, Any]:
    return {"pk": {"S": f"job#{job_name}"}}


class Ledger:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def claim(self, image: ImageRef, job_name: str) -> str:
        """Assign the image to `job_name` unless another job has it; return the owning job."""
        return self.claim_many([image], job_name)[image]

    def claim_many(self, images: Iterable[ImageRef], job_name: str) -> dict[ImageRef, str]:
        """Assign each image to `job_name` unless a job already has it; return each image's owner.

        One TransactWriteItems per 100 images, each item a Put conditioned on `attribute_not_exists(pk)`:
        the first claim of an image wins, and a repeated claim (by this job or another) writes nothing and
        reads the owner back from the cancellation reason. See `_claim_group`."""
        ordered = list(dict.fromkeys(images))
        owners: dict[ImageRef, str] = {}
        for start in range(0, len(ordered), TRANSACT_WRITE_LIMIT):
            owners.update(self._claim_group(ordered[start : start + TRANSACT_WRITE_LIMIT], job_name))
        return owners

    def _claim_group(self, group: list[ImageRef], job_name: str) -> dict[ImageRef, str]:
        """Claim up to 100 images in transactions until each has an owner.

        A transaction is all or nothing, so one image that another job owns cancels it. The cancellation
        lists a reason per item, in request order: `ConditionalCheckFailed` marks an image that is already
        owned (its owner is in the returned item, else read with a consistent BatchGetItem), and that answer
        is final because claims are never deleted; the transaction is sent again without those images.
        `TransactionConflict` or throttling of an item means nothing was decided for it: the transaction
        is sent again after a pause, at most CLAIM_ATTEMPTS times, then the error is raised (retryable:
        SQS delivers the message again). Any other reason is raised as is. Each round either ends, settles
        at least one image, or spends an attempt, so the loop is bounded."""
        owners: dict[ImageRef, str] = {}
        pending = group
        claimed_at = datetime.now(UTC).isoformat()
        attempts = 0
        while pending:
            try:
                self._client.transact_write_items(
                    TransactItems=[self._claim_put(image, job_name, claimed_at) for image in pending]
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                if len(reasons) != len(pending):
                    raise  # cannot tell which item failed: let the message be retried
                settled, unknown, transient = self._read_reasons(pending, reasons, error)
                if unknown:
                    for image, owner in self.owners(unknown).items():
                        if owner is None:  # a claim is never deleted, so this cannot happen
                            raise RuntimeError(f"ledger lost the claim of {image.image_id}") from error
                        settled[image] = owner
                owners.update(settled)
                pending = [image for image in pending if image not in owners]
                if pending and (transient or not settled):
                    attempts += 1
                    if attempts >= CLAIM_ATTEMPTS:
                        raise
                    time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempts)))
                continue
            owners.update(dict.fromkeys(pending, job_name))
            pending = []
        return owners

    @staticmethod
    def _read_reasons(
        pending: list[ImageRef], reasons: list[dict[str, Any]], error: ClientError
    ) -> tuple[dict[ImageRef, str], list[ImageRef], bool]:
        """(owners read from the cancellation, owned images whose owner was not returned, any transient)."""
        settled: dict[ImageRef, str] = {}
        unknown: list[ImageRef] = []
        transient = False
        for image, reason in zip(pending, reasons, strict=True):
            code = reason.get("Code") or "None"
            if code == "ConditionalCheckFailed":
                owner = reason.get("Item", {}).get("job_name", {}).get("S")
                if owner:
                    settled[image] = str(owner)
                else:
                    unknown.append(image)
            elif code in TRANSIENT_CANCELLATION_CODES:
                transient = True
            elif code != "None":
                raise error
        return settled, unknown, transient

    def _claim_put(self, image: ImageRef, job_name: str, claimed_at: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **_image_key(image),
                    "job_name": {"S": job_name},
                    "source_ref": {"S": image.source_ref},
                    "claimed_at": {"S": claimed_at},
                    **_image_group(image, claimed_at),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def owners(self, images: Iterable[ImageRef]) -> dict[ImageRef, str | None]:
        """Consistent read of who owns each image (None when unclaimed)."""
        wanted = {_image_key(image)["pk"]["S"]: image for image in images}
        found: dict[ImageRef, str | None] = dict.fromkeys(wanted.values())
        for item in self._batch_get([{"pk": {"S": pk}} for pk in wanted], "pk, job_name"):
            found[wanted[item["pk"]["S"]]] = item["job_name"]["S"]
        return found

    def created_jobs(self, job_names: Iterable[str]) -> set[str]:
        """Which of these jobs the ledger shows as created, ended ones included (consistent reads, 100 jobs a
        call): a late duplicate of an upload whose job has ended must not start that job again."""
        keys = [_job_key(name) for name in sorted(set(job_names))]
        return {
            item["pk"]["S"].removeprefix("job#")
            for item in self._batch_get(keys, "pk, #status", {"#status": "status"})
            if item.get("status", {}).get("S") in CREATED_LEDGER_STATUSES
        }

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: str, names: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Consistent BatchGetItem, 100 keys a call, unprocessed keys asked again."""
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys[start : start + BATCH_GET_LIMIT],
                    "ConsistentRead": True,
                    "ProjectionExpression": projection,
                    **({"ExpressionAttributeNames": names} if names else {}),
                }
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                yield from response.get("Responses", {}).get(self._table, [])
                request = response.get("UnprocessedKeys") or {}

    def job_created(self, job_name: str) -> bool:
        response = self._client.get_item(TableName=self._table, Key=_job_key(job_name), ConsistentRead=True)
        item = response.get("Item")
        return bool(item and item.get("status", {}).get("S") in CREATED_LEDGER_STATUSES)

    def try_lease_job_start(self, job_name: str, now: datetime, lease_seconds: int) -> bool:
        """Take the right to start a job (for a backend whose start is not idempotent): a job item in
        ``STARTING`` with a lease, written only when there is no job item or the previous lease lapsed. The
        item is in no index group until `mark_job_created` replaces it. False when the job exists or is held."""
        return self._conditionally(
            self._client.put_item,
            Item={
                **_job_key(job_name),
                "status": {"S": LedgerJobStatus.STARTING.value},
                "lease_until": {"N": str(int(now.timestamp()) + lease_seconds)},
            },
            ConditionExpression="attribute_not_exists(pk) OR (#status = :starting AND lease_until < :now)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":starting": {"S": LedgerJobStatus.STARTING.value},
                ":now": {"N": str(int(now.timestamp()))},
            },
        )

    def release_job_start(self, job_name: str) -> None:
        """Give up a start lease after a failed attempt, so that the next attempt can start the job at once."""
        self._conditionally(
            self._client.delete_item,
            Key=_job_key(job_name),
            ConditionExpression="#status = :starting",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":starting": {"S": LedgerJobStatus.STARTING.value}},
        )

    def mark_job_created(self, job_name: str, image_count: int, manifest_uri: str) -> None:
        created_at = datetime.now(UTC).isoformat()
        self._client.put_item(
            TableName=self._table,
            Item={
                **_job_key(job_name),
                "status": {"S": LedgerJobStatus.CREATED.value},
                "image_count": {"N": str(image_count)},
                "manifest_uri": {"S": manifest_uri},
                "created_at": {"S": created_at},
                GROUP_KEY: {"S": JOBS_GROUP},
                GROUP_SORT: {"S": created_at},
            },
        )

    def job_status(self, job_name: str) -> str | None:
        response = self._client.get_item(TableName=self._table, Key=_job_key(job_name), ConsistentRead=True)
        item = response.get("Item")
        return str(item["status"]["S"]) if item and "status" in item else None

    def _conditionally(self, operation: Callable[..., Any], **request: Any) -> bool:
        """Run a conditional write; False when its condition does not hold."""
        try:
            operation(TableName=self._table, **request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def try_lease_job(self, job_name: str, now: datetime, lease_seconds: int) -> bool:
        """Take the right to finish a created job: only one invocation at a time, and a crashed one's
        lease lapses after `lease_seconds`. False when the job is finished, leased, or not ours."""
        return self._conditionally(
            self._client.update_item,
            Key=_job_key(job_name),
            UpdateExpression="SET #status = :finishing, lease_until = :until",
            ConditionExpression="#status = :created OR (#status = :finishing AND lease_until < :now)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":finishing": {"S": LedgerJobStatus.FINISHING.value},
                ":created": {"S": LedgerJobStatus.CREATED.value},
                ":until": {"N": str(int(now.timestamp()) + lease_seconds)},
                ":now": {"N": str(int(now.timestamp()))},
            },
        )

    def try_lease_job_again(self, job_name: str, results_version: str, now: datetime, lease_seconds: int) -> bool:
        """Take the right to finish an ended job once more, because its results changed since it was
        finished: only while the ledger still holds the job as finished with another results version."""
        return self._conditionally(
            self._client.update_item,
            Key=_job_key(job_name),
            UpdateExpression="SET #status = :finishing, lease_until = :until",
            ConditionExpression=(
                "#status IN (:completed, :failed, :stopped) AND "
                "(attribute_not_exists(results_version) OR results_version <> :version)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":finishing": {"S": LedgerJobStatus.FINISHING.value},
                ":completed": {"S": LedgerJobStatus.COMPLETED.value},
                ":failed": {"S": LedgerJobStatus.FAILED.value},
                ":stopped": {"S": LedgerJobStatus.STOPPED.value},
                ":until": {"N": str(int(now.timestamp()) + lease_seconds)},
                ":version": {"S": results_version},
            },
        )

    def job_results_version(self, job_name: str) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=_job_key(job_name),
            ConsistentRead=True,
            ProjectionExpression="results_version",
        )
        version = response.get("Item", {}).get("results_version", {}).get("S")
        return str(version) if version is not None else None

    def release_lease(self, job_name: str) -> None:
        """Give the job back after a failed attempt, so that the next event can finish it at once."""
        self._conditionally(
            self._client.update_item,
            Key=_job_key(job_name),
            UpdateExpression="SET #status = :created REMOVE lease_until",
            ConditionExpression="#status = :finishing",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":created": {"S": LedgerJobStatus.CREATED.value},
                ":finishing": {"S": LedgerJobStatus.FINISHING.value},
            },
        )

    def mark_job_finished(
        self, job_name: str, status: str, summary: dict[str, Any], results_version: str | None = None
    ) -> None:
        if status not in FINISHED_LEDGER_STATUSES:
            raise ValueError(f"not a finished status: {status}")
        values = {
            ":status": {"S": status},
            ":at": {"S": datetime.now(UTC).isoformat()},
            ":summary": {"S": json.dumps(summary)[:300_000]},
        }
        update = "SET #status = :status, finished_at = :at, summary = :summary"
        if results_version is not None:
            update += ", results_version = :version"
            values[":version"] = {"S": results_version}
        self._client.update_item(
            TableName=self._table,
            Key=_job_key(job_name),
            UpdateExpression=update + " REMOVE lease_until",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )

    def record_results(self, job_name: str, results: Iterable[tuple[ImageRef, dict[str, Any]]]) -> int:
        """Write each image's outcome into its item, keeping what the claim wrote (CLAIM_ATTRIBUTES, the
        index group among them). BatchWriteItem replaces whole items, so the claims of each 100 images are
        read first (one consistent BatchGetItem) and written back with the outcome, 25 a call, unprocessed
        items retried. Only images that the ledger shows claimed by this job are written: an item is never
        created or taken over here (the job end passes only the job's own images). A claim written before
        claims carried their group gets it here. Returns the number of items written."""
        written = 0
        group: dict[ImageRef, dict[str, Any]] = {}
        for image, fields in results:
            group[image] = fields  # the same image twice in one group: the later outcome wins
            if len(group) == BATCH_GET_LIMIT:
                written += self._record_group(job_name, group)
                group = {}
        if group:
            written += self._record_group(job_name, group)
        return written

    def _record_group(self, job_name: str, group: dict[ImageRef, dict[str, Any]]) -> int:
        claims = self._claims(group)
        written = 0
        batch: list[dict[str, Any]] = []
        for image, fields in group.items():
            claim = claims.get(image)
            if claim is None or claim.get("job_name", {}).get("S") != job_name:
                continue
            item = dict(claim)
            if GROUP_KEY not in item and "claimed_at" in item:
                # A claim written before claims carried their group (before the deploy that added the index).
                item.update(_image_group(image, item["claimed_at"]["S"]))
            for name, value in fields.items():
                item[name] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == BATCH_WRITE_LIMIT:
                written += self._write(batch)
                batch = []
        if batch:
            written += self._write(batch)
        return written

    def _claims(self, images: Iterable[ImageRef]) -> dict[ImageRef, dict[str, Any]]:
        """The claim attributes of each claimed image (consistent reads, 100 a call)."""
        wanted = {_image_key(image)["pk"]["S"]: image for image in images}
        names = {f"#a{number}": name for number, name in enumerate(("pk", *CLAIM_ATTRIBUTES))}
        return {
            wanted[item["pk"]["S"]]: item
            for item in self._batch_get([{"pk": {"S": pk}} for pk in wanted], ", ".join(names), names)
        }

    def _write(self, batch: list[dict[str, Any]]) -> int:
        pending: dict[str, Any] = {self._table: batch}
        for attempt in range(8):
            response = self._client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return len(batch)
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError(f"ledger kept {len(pending[self._table])} writes unprocessed")

    def _query(self, request: dict[str, Any], limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item a Query returns, page after page (LastEvaluatedKey), or the first `limit` of them."""
        request = {"TableName": self._table, **request}
        returned = 0
        while limit is None or returned < limit:
            if limit is not None:
                request["Limit"] = limit - returned
            response = self._client.query(**request)
            items = response.get("Items", [])
            returned += len(items)
            yield from items
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def jobs(self, limit: int) -> list[dict[str, str]]:
        """The `limit` newest jobs, newest first, each with ``name``, ``status``, ``created_at`` and
        ``image_count``: a Query of the index's ``jobs`` group backwards with Limit, one call however many
        jobs and images the ledger holds. The index lags writes by a moment, so a job created in the last
        second may be missing from this list; the next look shows it."""
        found = []
        for item in self._query(
            {
                "IndexName": GROUPS_INDEX,
                "KeyConditionExpression": f"{GROUP_KEY} = :group",
                "ExpressionAttributeValues": {":group": {"S": JOBS_GROUP}},
                "ScanIndexForward": False,
            },
            limit,
        ):
            job = _fields(item)
            job["name"] = job.pop("pk").removeprefix("job#")
            job["created_at"] = job.pop(GROUP_SORT)
            job.pop(GROUP_KEY)
            found.append(job)
        return found

    def open_jobs(self, since: datetime) -> list[str]:
        """Jobs created since `since` that have not ended (``CREATED``, or ``FINISHING`` with a lease that may
        have lapsed), oldest first: what the scheduled reconciler asks the backend about. One paged Query of
        the index's ``jobs`` group, bounded by the time window (its reads follow the jobs created in the
        window, never the images)."""
        return [
            item["pk"]["S"].removeprefix("job#")
            for item in self._query(
                {
                    "IndexName": GROUPS_INDEX,
                    "KeyConditionExpression": f"{GROUP_KEY} = :group AND {GROUP_SORT} >= :since",
                    "FilterExpression": "#status IN (:created, :finishing)",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":group": {"S": JOBS_GROUP},
                        ":since": {"S": since.isoformat()},
                        ":created": {"S": LedgerJobStatus.CREATED.value},
                        ":finishing": {"S": LedgerJobStatus.FINISHING.value},
                    },
                }
            )
        ]

    def members(self, job_name: str, candidates: Iterable[ImageRef]) -> dict[ImageRef, str | None]:
        """Which of the `candidates` the ledger gives `job_name`, each with its status (None until the job
        ended), in the candidates' order: consistent BatchGetItem, 100 keys a call. With the job's candidate
        list this is the job's images (`labeling_pipeline.launcher.job_images`): reads that follow the size
        of the job, never of the ledger, and see every write made before them."""
        wanted = {_image_key(image)["pk"]["S"]: image for image in candidates}
        statuses: dict[ImageRef, str | None] = {}
        for item in self._batch_get(
            [{"pk": {"S": pk}} for pk in wanted], "pk, job_name, #status", {"#status": "status"}
        ):
            if item.get("job_name", {}).get("S") == job_name:
                statuses[wanted[item["pk"]["S"]]] = item["status"]["S"] if "status" in item else None
        return {image: statuses[image] for image in wanted.values() if image in statuses}

    def images_of_dataset(self, dataset: str) -> Iterator[tuple[ImageRef, dict[str, str]]]:
        """Every claimed image version under images/<dataset>/, across all jobs, with its ``job_name``,
        ``claimed_at`` (the index's sort key: the claim time, or for an item the upgrade gave its group, the
        estimate it wrote) and ``status``: a paged Query of the dataset's index group. Eventually
        consistent: a claim or a result written in the last second may not show yet; an export run then
        leaves that version out (or counts it as pending), as it would had it run a second earlier."""
        for item in self._query(
            {
                "IndexName": GROUPS_INDEX,
                "KeyConditionExpression": f"{GROUP_KEY} = :group",
                "ExpressionAttributeValues": {":group": {"S": dataset_group(dataset)}},
            }
        ):
            image, fields = _image_row(item)
            fields["claimed_at"] = fields.pop(GROUP_SORT)
            fields.pop(GROUP_KEY)
            yield image, fields

    def set_image_status(self, image: ImageRef, status: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=_image_key(image),
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
        )

    def upgrade_items(self, progress: Callable[[int], None] | None = None) -> UpgradeReport:
        """Give every item written before the ledger-groups index its group (``bbox-labeling ledger
        upgrade``, run once after the deploy that added the index). The one Scan of the code.

        A paged Scan of the items without ``group_key`` (a filter: DynamoDB still reads, and bills, the
        whole table once); each job item and each image item in a dataset gets ``group_key`` and
        ``group_sort`` by an UpdateItem conditioned on the item existing without ``group_key``, so a
        second run, a concurrent run, or the pipeline writing the item meanwhile is never overwritten,
        and a run that stops can be started again. ``group_sort``: a job's ``created_at``; an image's
        ``claimed_at``, which items that their job had finished before lack (the code of that time wrote
        the outcome without it): then its job's ``created_at`` (read by key, the claim came just before),
        else its ``finished_at``, else UNKNOWN_TIME. Nothing else is changed. `progress` is called with
        the number of items each page examined."""
        report = UpgradeReport()
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": f"attribute_not_exists({GROUP_KEY})",
            "ProjectionExpression": "pk, job_name, claimed_at, created_at, finished_at",
        }
        created: dict[str, str | None] = {}  # job name -> created_at, for images without claimed_at
        while True:
            page = self._client.scan(**request)
            items = page.get("Items", [])
            report.examined += int(page.get("ScannedCount", len(items)))
            self._job_times({item["job_name"]["S"] for item in items if _needs_job_time(item)} - set(created), created)
            for item in items:
                group = _old_group(item, created)
                if group is None:
                    report.in_no_group += 1
                elif self._set_group(item["pk"]["S"], *group):
                    report.updated += 1
                else:
                    report.already_grouped += 1
            if progress is not None:
                progress(int(page.get("ScannedCount", len(items))))
            if "LastEvaluatedKey" not in page:
                return report
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _job_times(self, job_names: set[str], into: dict[str, str | None]) -> None:
        into.update(dict.fromkeys(job_names))
        keys = [_job_key(name) for name in sorted(job_names)]
        for item in self._batch_get(keys, "pk, created_at"):
            if "created_at" in item:
                into[item["pk"]["S"].removeprefix("job#")] = item["created_at"]["S"]

    def _set_group(self, pk: str, group_key: str, group_sort: str) -> bool:
        """Add the group to an item that has none; False when it has one by now."""
        return self._conditionally(
            self._client.update_item,
            Key={"pk": {"S": pk}},
            UpdateExpression=f"SET {GROUP_KEY} = :key, {GROUP_SORT} = :sort",
            ConditionExpression=f"attribute_exists(pk) AND attribute_not_exists({GROUP_KEY})",
            ExpressionAttributeValues={":key": {"S": group_key}, ":sort": {"S": group_sort}},
        )


@dataclass
class UpgradeReport:
    examined: int = 0  # items the Scan read (the whole table)
    updated: int = 0  # items given their group
    in_no_group: int = 0  # items without a group that need none: images outside a dataset
    already_grouped: int = 0  # given their group between the Scan and the update (the pipeline, another run)


def _needs_job_time(item: dict[str, Any]) -> bool:
    """An image in a dataset whose claim time is lost: its group_sort is its job's creation time."""
    pk = item["pk"]["S"]
    return (
        pk.startswith("image#")
        and "claimed_at" not in item
        and "job_name" in item
        and dataset_of(ImageRef.from_image_id(pk.removeprefix("image#")).key) is not None
    )


def _old_group(item: dict[str, Any], created: dict[str, str | None]) -> tuple[str, str] | None:
    """The (group_key, group_sort) that an item written before the index should have, or None."""
    pk = item["pk"]["S"]
    value = {
        name: str(item[name]["S"]) for name in ("job_name", "claimed_at", "created_at", "finished_at") if name in item
    }
    if pk.startswith("job#"):
        return JOBS_GROUP, value.get("created_at") or value.get("finished_at") or UNKNOWN_TIME
    if not pk.startswith("image#"):
        return None
    dataset = dataset_of(ImageRef.from_image_id(pk.removeprefix("image#")).key)
    if not dataset:
        return None
    job_time = created.get(value.get("job_name", ""))
    return dataset_group(dataset), value.get("claimed_at") or job_time or value.get("finished_at") or UNKNOWN_TIME


def _fields(item: dict[str, Any]) -> dict[str, str]:
    return {key: str(next(iter(value.values()))) for key, value in item.items()}


def _image_row(item: dict[str, Any]) -> tuple[ImageRef, dict[str, str]]:
    return ImageRef.from_image_id(item["pk"]["S"].removeprefix("image#")), _fields(item)
