"""`make demo DEMO_ARGS="--backend label-studio"`: the demo's steps with a real Label Studio as the labeling service.

- The port is picked first (sandbox.emulator.free_port), so that the synthesis' labeling.labelStudioUrl is the
  server's address: http://127.0.0.1:<port> (plain http is allowed for loopback only).
- What the template makes for Label Studio is made as CloudFormation would (sandbox.provision): the two
  generated secrets, in moto's Secrets Manager; the job-events function's URL, a loopback receiver that runs the
  function through sandbox.lambda_runtime (its log goes to logs/ with the others); the reconciler's schedule,
  recorded and run once at the end; and the project custom resource, whose setup function (the project's own,
  through LocalLambda) runs with the template's properties, plus ``S3Endpoint``: moto's URL, so that Label
  Studio hands a browser presigned URLs of moto's S3.
- Label Studio itself (sandbox.label_studio_server: the PyPI package in .venv-label-studio, bound to 127.0.0.1)
  starts when the template gets to the project, with the API token read from the generated secret: what the
  deployed server gets as LABEL_STUDIO_USER_TOKEN. It starts as the deployed task does (labeling_gate.start:
  uwsgi, the access rules inside Label Studio), and the site's address is the deployed site's edge in front of
  it (sandbox.label_studio_gate: the CloudFront Function's code under Node.js): on a laptop, the same two layers
  a deployed worker meets.
- Simulated annotators (sandbox.simulated_annotators) answer through Label Studio's API as a worker account made
  with `bbox-labeling workers add` (the simulated annotator chooses its password on the link the command prints);
  with --interactive, a person opens that link, chooses a password, labels in Label Studio's web UI, and presses
  Enter.
- With --prelabel, each task is imported with the stand-in detector's proposals as its prediction: the simulated
  annotator corrects them (keeps, moves, relabels, deletes, draws what is missing) as the editor would submit it,
  and a person (--interactive) finds them drawn in the editor, to correct the same way.
- Label Studio's webhook ends the job through the function URL. The output folder gets the job's raw tasks
  (jobs/<job>/tasks.jsonl) and Label Studio's own JSON export of the project (label-studio/export.json), to
  compare with exports/<job>/.

Label Studio's webhook is sent inside the request that saved the annotation, and waits for the function's
answer: so whatever makes annotations here runs on a thread of its own while this thread runs the function
(every function runs on the demo's main thread, see sandbox.lambda_runtime).
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
import requests

from labeling_pipeline.backends.label_studio.api import LabelStudioApi
from labeling_pipeline.backends.label_studio.results import TaskData
from labeling_pipeline.backends.label_studio.service import TASKS_FILE, answers
from labeling_pipeline.images import split_s3_uri
from labeling_pipeline.names import CANDIDATES_FILE, OUTPUT_PREFIX
from sandbox.demo_steps import (
    DATASET,
    DEMO_CONTEXT,
    PREFIX,
    DemoError,
    LabelingRun,
    Prelabel,
    point_aws_at,
    run_cli,
    say,
)
from sandbox.emulator import MotoServer, free_port
from sandbox.label_studio_gate import LabelStudioGate
from sandbox.label_studio_server import (
    INSTALL_HINT,
    LabelStudioError,
    LabelStudioServer,
    installed_version,
    is_installed,
    template_path,
)
from sandbox.lambda_runtime import LocalLambda
from sandbox.provision import FunctionSpec, LocalHooks
from sandbox.simulated_annotators import (
    Answer,
    LabelStudioClient,
    SimulatedAnnotator,
    choose_password,
    image_size,
    password_link,
)
from sandbox.simulated_workers import SIMULATED_NOTE

PERSON_PREFIX = "[local demo | a person labels]"
PERSON_NOTE = "boxes drawn by a person in the Label Studio web UI (local demo)"
SIMULATED_WORKER = "simulated-annotator@example.com"
PERSON_WORKER = "worker@example.com"
# stacks/backends/label_studio/infrastructure.py, CUSTOM_RESOURCE_TYPE (not imported: that would load aws-cdk-lib).
PROJECT_RESOURCE = "Custom::LabelStudioProject"
# The password the simulated annotator chooses on its link (a local demo's account on loopback).
SIMULATED_PASSWORD = "Quartz-meadow-64"
PUMP_SECONDS = 0.1
PROBE_INTERVAL_SECONDS = 0.2
PROBE_WAIT_SECONDS = 30

T = TypeVar("T")


class FirstTaskProbe:
    """From the upload's start: how long until a worker can open a task, i.e. the project has a task whose image
    opens through Label Studio (polled on a thread of its own while the launcher runs)."""

    def __init__(self, client: LabelStudioClient, project_id: int) -> None:
        self.client = client
        self.project_id = project_id
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="first-task-probe", daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(requests.RequestException, OSError, KeyError, ValueError):
                page = self.client.request("GET", "/api/tasks", params={"project": self.project_id, "page_size": 1})
                tasks = page.get("tasks", []) if isinstance(page, dict) else page
                if tasks and image_size(self.client.open_image(int(tasks[0]["id"]))):
                    self.seconds = time.monotonic() - self._started
                    return
            self._stop.wait(PROBE_INTERVAL_SECONDS)

    def result(self) -> float:
        self._thread.join(PROBE_WAIT_SECONDS)
        self.stop()
        if self.seconds is None:
            raise DemoError(f"no task's image opened through Label Studio within {PROBE_WAIT_SECONDS} s of the import")
        return self.seconds


class LabelStudioStandIn:
    """A real Label Studio on this machine; its annotators simulated, or a person (--interactive)."""

    stopped = "Label Studio and the emulator stopped"
    interrupted = "Label Studio and the emulator are stopped"

    def __init__(self, out: Path, interactive: bool = False, prelabel: Prelabel | None = None) -> None:
        self.out = out
        self.interactive = interactive
        self.prelabel = prelabel
        # The site's address (the edge in front); Label Studio itself listens on a port of its own behind it.
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = PERSON_PREFIX if interactive else PREFIX
        if prelabel is not None:
            self.prefix = prelabel.line_prefix(self.prefix)
        self.note = PERSON_NOTE if interactive else SIMULATED_NOTE
        self.results_heading = (
            "the boxes below were drawn by a person" if interactive else "every box below is simulated"
        )
        self.context = {
            "labeling.backend": "label-studio",
            "labeling.labelStudioUrl": self.url,
            "labeling.batchingWindowSeconds": DEMO_CONTEXT["labeling.batchingWindowSeconds"],
        }
        self.summary: dict[str, Any] = {"backend": "label-studio", "interactive": interactive}
        self.export_path = out / "label-studio" / "export.json"
        self._services: contextlib.ExitStack | None = None
        self._emulator: MotoServer | None = None
        self._runtime: LocalLambda | None = None
        self._server: LabelStudioServer | None = None
        self._probe: FirstTaskProbe | None = None
        self._project_id = 0

    # --- steps 1 to 3 ---------------------------------------------------------------------------------
    def introduce(self) -> None:
        if not is_installed():  # said before the synthesis, not after
            raise DemoError(INSTALL_HINT)
        say("No AWS account is used: AWS is emulated on this machine (moto), and the labeling service is a real")
        if self.interactive:
            say("Label Studio on this machine, on 127.0.0.1. You draw the boxes in its web UI: nothing is simulated.")
        else:
            say(
                "Label Studio on this machine, on 127.0.0.1. Simulated annotators answer through its API. "
                + SIMULATED_NOTE[0].upper()
                + SIMULATED_NOTE[1:]
                + "."
            )

    def start(self, services: contextlib.ExitStack, emulator: MotoServer) -> Any:
        self._services, self._emulator = services, emulator
        point_aws_at(emulator.url)
        say(
            f"   Label Studio {installed_version()} will listen on {self.url} (the synthesized labelStudioUrl); it "
            "starts when the stack gets to its project"
        )
        return boto3.Session()

    def hooks(self, runtime: LocalLambda) -> LocalHooks:
        self._runtime = runtime
        return LocalHooks(function_url=runtime.serve_function_url, custom_resource=self._custom_resource)

    @property
    def runtime(self) -> LocalLambda:
        assert self._runtime is not None, "hooks() gives the runtime"
        return self._runtime

    @property
    def server(self) -> LabelStudioServer:
        assert self._server is not None, "the project resource starts the server"
        return self._server

    @property
    def api(self) -> LabelStudioApi:
        """The pipeline's own client, with its token: what the demo reads Label Studio with."""
        return LabelStudioApi(self.url, self.server.token)

    def _custom_resource(self, function: FunctionSpec, request: dict[str, Any]) -> dict[str, Any]:
        if request["ResourceType"] != PROJECT_RESOURCE:
            return dict(self.runtime.invoke(function, request))
        properties = request["ResourceProperties"]
        # The server is up before its project is made, as the deployment's would be.
        self._start_server(properties["ApiTokenSecretArn"])
        assert self._emulator is not None
        # The deployed storage reads AWS's S3; here Label Studio presigns moto's URLs, which a browser on this
        # machine opens (the setup handler's optional S3Endpoint property).
        request = {**request, "ResourceProperties": {**properties, "S3Endpoint": self._emulator.url}}
        answer = dict(self.runtime.invoke(function, request))
        self._project_id = int(answer["PhysicalResourceId"])
        return answer

    def _start_server(self, token_secret_arn: str) -> None:
        assert self._services is not None
        token = boto3.client("secretsmanager").get_secret_value(SecretId=token_secret_arn)["SecretString"]
        if not template_path().exists():
            say("   First run here: Label Studio migrates its database once (about a minute; kept in .cache/)")
        started = time.monotonic()
        try:
            server = LabelStudioServer(self.out / "label-studio" / "server", token=token)
            self._server = self._services.enter_context(server)
            self._services.enter_context(LabelStudioGate(server.url, port=self.port))
        except (LabelStudioError, OSError) as error:
            raise DemoError(str(error)) from error
        say(
            f"3/6 Label Studio {installed_version()} on {self.url}, pid {server.pid} (started in "
            f"{time.monotonic() - started:.1f} s, bound to 127.0.0.1), with the API token that the stack generated "
            "in Secrets Manager, as the deployed server gets it (LABEL_STUDIO_USER_TOKEN)"
        )
        say(
            "   as deployed: uwsgi with the access rules inside Label Studio (workers label their own work only), "
            f"behind the site's edge function on {self.url} (Label Studio itself on {server.url})"
        )
        self.summary["label_studio"] = {
            "version": installed_version(),
            "url": self.url,
            "pid": server.pid,
            "data_dir": str(server.data_dir),
        }

    # --- step 4 -----------------------------------------------------------------------------------------
    def before_upload(self, run: LabelingRun) -> None:
        self._probe = FirstTaskProbe(LabelStudioClient(self.url, self.server.token), self._project_id)
        assert self._services is not None
        self._services.callback(self._probe.stop)
        self._probe.start()

    def all_handled(self, run: LabelingRun, expected_keys: list[str]) -> bool:
        tasks = self.api.tasks(self._project_id, {}, with_annotations=False)
        return set(expected_keys) <= {split_s3_uri(task["data"][TaskData.IMAGE])[1] for task in tasks}

    def _figures(self, run: LabelingRun, task_count: int) -> None:
        """The two figures of step 4: upload to a task a worker can open, and the launcher's import rate."""
        assert self._probe is not None
        seconds = round(self._probe.result(), 1)
        source = run.launcher_source
        launcher = [i for i in run.runtime.invocations if i.function == source.function.name and i.event_count]
        launch_seconds = sum(invocation.seconds for invocation in launcher)
        rate = round(task_count / launch_seconds, 1)
        self.summary["seconds_upload_to_first_task"] = seconds
        self.summary["tasks_imported_per_second"] = rate
        say(
            f"   seconds from upload to a task a worker can open: {seconds} (from the start of `bbox-labeling "
            f"upload` to the first task whose image opens through Label Studio; the {source.batching_window_seconds} "
            "s batching window is most of it)"
        )
        say(
            f"   tasks imported per second: {rate} ({task_count} tasks in {len(launcher)} launcher invocation(s) of "
            f"{launch_seconds:.2f} s, ledger and candidate list included)"
        )

    # --- step 5 -----------------------------------------------------------------------------------------
    def label(self, run: LabelingRun, expected_keys: list[str]) -> list[str]:
        tasks = list(self.api.tasks(self._project_id, {}, with_annotations=False))
        names = sorted({str(task["data"][TaskData.JOB]) for task in tasks})
        project_page = f"{self.url}/projects/{self._project_id}/data"
        for name in names:
            count = sum(1 for task in tasks if task["data"][TaskData.JOB] == name)
            say(f"   labeling job {name} created: {count} tasks in Label Studio's project, {project_page}")
        self._figures(run, len(tasks))
        self.summary["label_studio"]["project_id"] = self._project_id
        if self.interactive:
            self._person_labels(run, names)
        else:
            self._simulated_annotators_label(run, expected_keys)
        run.wait_for_exports(names, lambda: self.runtime.poll_function_urls(PUMP_SECONDS))
        say(f"   Label Studio's webhook -> function URL -> job-events Lambda: exports written for {len(names)} job(s)")
        schedule = run.pipeline.schedules[0]
        left = self.runtime.run_schedule(schedule)["checked"]
        say(
            f"   {schedule.expression} schedule -> job-events Lambda, run once as the schedule would: the reconciler "
            f"found {left} open job(s) left" + ("" if left else " (the webhook ended the job)")
        )
        export = self.api.request("GET", f"/api/projects/{self._project_id}/export", query={"exportType": "JSON"})
        self.export_path.write_text(json.dumps(export, indent=1, ensure_ascii=False) + "\n")
        self.summary["label_studio"]["export"] = str(self.export_path)
        return names

    def _add_worker(self, email: str) -> tuple[list[str], str]:
        """The pipeline's own `bbox-labeling workers add`: its lines, and the link on which the worker chooses a
        password."""
        lines = run_cli(["workers", "add", email])
        try:
            link = password_link("\n".join(lines))
        except ValueError:
            raise DemoError(f"`bbox-labeling workers add {email}` printed no password link: {lines}") from None
        (user,) = [u for u in self.api.users() if u["email"] == email]
        self.summary["worker"] = {"email": email, "id": user["id"]}
        return lines, link

    def _meanwhile(self, work: Callable[[], T], tick: Callable[[], None] = lambda: None) -> T:
        """`work` on a thread of its own, while this thread runs what reaches the function URL (the webhook that
        Label Studio sends inside the request the work makes)."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = work()
            except Exception as error:
                outcome["error"] = error

        thread = threading.Thread(target=target, name="label-studio-work", daemon=True)
        thread.start()
        while thread.is_alive():
            self.runtime.poll_function_urls(PUMP_SECONDS)
            tick()
        tick()
        if "error" in outcome:
            error = outcome["error"]
            raise DemoError(f"working in Label Studio failed: {type(error).__name__}: {error}") from error
        value: T = outcome["value"]
        return value

    def _simulated_annotators_label(self, run: LabelingRun, expected_keys: list[str]) -> None:
        say(f"5/6 Simulated annotators label {len(expected_keys)} images through Label Studio's API ({SIMULATED_NOTE})")
        _lines, link = self._add_worker(SIMULATED_WORKER)
        choose_password(link, SIMULATED_PASSWORD)
        client = LabelStudioClient.signed_in(self.url, SIMULATED_WORKER, SIMULATED_PASSWORD)
        worker = self.summary["worker"]
        say(
            f"   bbox-labeling workers add {SIMULATED_WORKER}: the simulated annotator chooses its password on the "
            f"link that printed, signs in and annotates with its own API token (user {worker['id']}, not the "
            "pipeline's admin)"
        )
        timed = self.prelabel is not None
        annotator = SimulatedAnnotator(client, self._project_id, list(run.settings().labels), timed=timed)
        done: queue.Queue[Answer] = queue.Queue()

        def show() -> None:
            while not done.empty():
                answer = done.get()
                image = split_s3_uri(answer.source_ref)[1].removeprefix(f"images/{DATASET}/")
                labels = ", ".join(str(box[0]) for box in answer.boxes)
                say(
                    f"   task {answer.task_id} {image} ({answer.width}x{answer.height}): {len(answer.boxes)} simulated "
                    f"box(es): {labels}"
                )
                if answer.proposals == 0:
                    say(
                        f"     its prediction holds no box (the stand-in found none); lead time {answer.lead_time:g} s "
                        "(simulated)"
                    )
                elif answer.correction is not None:
                    done_with = ", ".join(f"{key} {count}" for key, count in answer.correction.items())
                    say(
                        f"     from {answer.proposals} STAND-IN proposal(s) shown in the task: {done_with}; lead time "
                        f"{answer.lead_time:g} s (simulated)"
                    )
                elif timed:
                    say(f"     no proposals shown: drawn from scratch; lead time {answer.lead_time:g} s (simulated)")

        answered = self._meanwhile(lambda: annotator.label_all(done.put), show)
        self.summary["annotations"] = [answer.__dict__ for answer in answered]

    def _person_labels(self, run: LabelingRun, names: list[str]) -> None:
        say("5/6 Your turn: label the images yourself, in Label Studio's web UI")
        lines, _link = self._add_worker(PERSON_WORKER)
        for line in "\n".join(lines).splitlines():
            say("   " + line)
        say("   Open that link in a browser on this machine and choose your password. Then open")
        say(f"   Open {self.url}/projects/{self._project_id}/data?labeling=1")
        say(f"   and sign in as {PERSON_WORKER} with your password. Pick a label, drag a box around each object, press")
        say("   Submit (Skip when there is nothing to label). Label as many images as you like.")
        if self.prelabel is not None:
            say("   Most images open with the STAND-IN detector's boxes already drawn (its proposals, not a trained")
            say("   model's): keep the right ones, drag or resize the near misses, relabel, delete the false ones")
            say("   (select, then Backspace) and draw what it missed. Held-out images open empty, on purpose.")
        say("   Press Enter here when you are done: the images you did not answer are skipped for you, so that the job")
        say("   ends and its exports are written. Ctrl-C stops everything.")
        user = self.summary["worker"]["id"]
        while True:
            self.runtime.poll_function_urls(PUMP_SECONDS)
            if all(run.exists(f"exports/{name}/summary.json") for name in names):
                say("   You answered every image: Label Studio's webhook ended the job.")
                self.summary["answered_by_the_person"] = len(self._answered_by(user)[1])
                return
            if not select.select([sys.stdin], [], [], 0)[0]:
                continue
            entered = sys.stdin.readline()
            tasks, mine = self._answered_by(user)
            if mine:
                break
            if not entered:
                raise DemoError("the terminal closed before any answer in Label Studio (--interactive needs one)")
            say("   No answer from you yet: submit at least one image in Label Studio, then press Enter.")
        left = [int(task["id"]) for task in tasks if answers(task) < int(task.get("overlap") or 1)]
        say(
            f"   You answered {len(mine)} of {len(tasks)} images; the other {len(left)} are skipped for you (a skip "
            "counts as an answer: those images are exported without boxes, marked for relabeling)"
        )
        # Skipped as the person (the pipeline's administrator may name the author; a worker may not).
        skip = {"result": [], "was_cancelled": True, "completed_by": user}
        self._meanwhile(
            lambda: [self.api.request("POST", f"/api/tasks/{task_id}/annotations", body=skip) for task_id in left]
        )
        self.summary["answered_by_the_person"] = len(mine)

    def _answered_by(self, user: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The project's tasks, and those that this user answered."""
        tasks = list(self.api.tasks(self._project_id, {}, with_annotations=True))
        return tasks, [task for task in tasks if any(_author(a) == user for a in task.get("annotations") or [])]

    # --- step 6 -----------------------------------------------------------------------------------------
    def job_files(self, run: LabelingRun, name: str, job_dir: Path) -> tuple[list[str], dict[str, Any]]:
        tasks_file = job_dir / TASKS_FILE
        run.s3.download_file(run.bucket, f"{OUTPUT_PREFIX}{name}/{TASKS_FILE}", str(tasks_file))
        answered = "drawn by a person" if self.interactive else "simulated"
        lines = [
            f"candidates      {job_dir / CANDIDATES_FILE}",
            f"tasks           {tasks_file} (the raw tasks the job-events function kept; answers {answered})",
            f"Label Studio    {self.export_path} (its own JSON export of the project, to compare)",
        ]
        entries = {
            "candidates": str(job_dir / CANDIDATES_FILE),
            "tasks": str(tasks_file),
            "label_studio_export": str(self.export_path),
        }
        return lines, entries


def _author(annotation: dict[str, Any]) -> Any:
    author = annotation.get("completed_by")
    return author.get("id") if isinstance(author, dict) else author
