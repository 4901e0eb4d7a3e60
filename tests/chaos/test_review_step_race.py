"""The review step under a race that the chaos run meets too rarely to count on: two job-events instances are told that
a job's last answer came in (two webhooks, or a webhook and a reconciler tick). Both find its review tasks missing;
the second takes the job's lease first and makes them; the first takes the lease once it is free. It must list the
review tasks again under the lease and make none: what it listed before holding the lease is stale, and importing
from it doubles every review task (left doubled when that import's answer is lost, as nothing is then missing for
a later step to clean up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from labeling_pipeline.backends.label_studio.project import review_project_ids
from labeling_pipeline.backends.label_studio.results import task_identity
from labeling_pipeline.job_results import JobFinisher
from labeling_pipeline.ledger import Ledger
from labeling_pipeline.names import EnvironmentVariable as Env
from sandbox.emulator import MotoServer
from sandbox.label_studio_server import LabelStudioServer
from tests.label_studio.pipeline_world import Pipeline, label_studio_pipeline, png, rectangle

IMAGES = 3


class OtherInstanceFirst(Ledger):
    """The ledger as the first instance sees it: when it asks for the job's lease, the other instance has just
    handled the job (taken its lease, made its review tasks, given the lease back)."""

    def __init__(self, client: Any, table: str, other: JobFinisher) -> None:
        super().__init__(client, table)
        self.other = other
        self.others_outcome: Any = None

    def try_lease_job(self, job_name: str, now: datetime, lease_seconds: int) -> bool:
        if self.others_outcome is None:
            self.others_outcome = self.other.handle(job_name)
        return super().try_lease_job(job_name, now, lease_seconds)


def finisher(pipeline: Pipeline, ledger: Ledger | None = None) -> tuple[JobFinisher, list[int]]:
    """A job-events instance (its own backend), and the sizes of the imports it sends to Label Studio."""
    backend = pipeline.backend()
    imports: list[int] = []
    send = backend.api.import_tasks

    def counted(project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        imports.append(len(tasks))
        return send(project_id, tasks)

    backend.api.import_tasks = counted  # type: ignore[method-assign]
    made = JobFinisher(
        s3_client=pipeline.client("s3"),
        sns_client=pipeline.client("sns"),
        ledger=ledger or pipeline.ledger,
        backend=backend,
        bucket=pipeline.bucket,
        topic_arn=pipeline.environment[Env.RESULTS_TOPIC_ARN],
        labels=pipeline.settings.labels,
    )
    return made, imports


def test_a_review_step_taken_meanwhile_is_not_taken_again(
    moto_s3_server: MotoServer, label_studio: LabelStudioServer
) -> None:
    with label_studio_pipeline(moto_s3_server, label_studio, "Review race", review={"sampleShare": 1.0}) as pipeline:
        pipeline.drop_webhooks = True  # the two instances below are the job-events function
        for number in range(IMAGES):
            pipeline.upload(f"images/race/{number}.png", png(64, 48))
        assert pipeline.launch(pipeline.receive_uploads(IMAGES)) == {"batchItemFailures": []}
        tasks = pipeline.tasks()
        (job,) = {task["data"]["job"] for task in tasks}
        for task in tasks:
            pipeline.annotate(int(task["id"]), [rectangle(10, 10, 20, 20, "Dog", (64, 48))])

        other, others_imports = finisher(pipeline)
        ledger = OtherInstanceFirst(pipeline.client("dynamodb"), pipeline.environment[Env.LEDGER_TABLE_NAME], other)
        first, first_imports = finisher(pipeline, ledger)
        outcome = first.handle(job)

        assert ledger.others_outcome.action == "step-taken" and others_imports == [IMAGES]
        assert outcome.action == "step-taken" and outcome.summary == {
            "step": "review",
            "done": "every review task was there",
        }
        assert first_imports == [], "the first instance made the review tasks again"
        (project_id,) = review_project_ids(pipeline.api, pipeline.settings)
        made = [task_identity(task) for task in pipeline.api.tasks(project_id, {"job": job}, with_annotations=False)]
        assert len(made) == len(set(made)) == IMAGES
