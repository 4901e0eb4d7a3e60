"""Label Studio under Django's development server against uwsgi, side by side: simulated annotators working through
the editor's requests, with Label Studio pinned to one CPU.

Run: .venv/bin/python benchmarks/label_studio_server_load.py        (defaults: --annotators 5 20 50, --seconds 30,
                                                                    --warm-up 5, --tasks 4000; about 6 minutes)
     worker counts: ... --servers uwsgi --annotators 20 --uwsgi-processes 2 4 --uwsgi-threads 2 4
     (every combination; without them, uwsgi runs with label_studio_plugin/labeling_gate/uwsgi.ini's defaults)
     the deployment's database: ... --database postgresql   (a throwaway local PostgreSQL; default: SQLite)

Each server mode gets a Label Studio of its own on a fresh data dir (sandbox.label_studio_server, started as the
ECS task starts it: labeling_gate.start, with the access middleware, "the authorization layer", inside Label
Studio either way), pinned with `taskset -c 0`: `runserver` is what `label-studio start` runs, uwsgi how upstream
runs Label Studio in production and how the ECS task runs it. This process (the annotators) and moto's server run on
the other CPU. The project is the pipeline's (tests/label_studio/pipeline_world.py: S3 storage on moto with
presigned links, the job-events webhook, whose receiver here answers 200 at once), with `--tasks` tasks imported by
the admin's token as the launcher imports them (one annotation each, so nobody runs out; a next-task 404 would
count as an error). The database is Label Studio's SQLite in its data dir, or with `--database postgresql` a copy
of a migrated template in a local PostgreSQL server (initdb, pg_ctl; as `postgres` when run as root) that runs off
the server's CPU, as the ECS task's RDS instance does.

An annotator is a worker account (`workers add`, its password chosen on the one-time link) signed in through the
login form: a cookie session whose unsafe requests carry X-CSRFToken, Origin and Referer, as a browser's do. It
opens the labeling page once (its data manager tab made as the page makes it), then loops without think time
(closed loop) over the editor's requests for a task (tests/label_studio/fixtures/worker_session_requests.json):
  next task   POST /api/dm/actions?id=next_task&tabID=V&project=P   (the labeling stream, with its task lock)
  resolve     GET  /tasks/<id>/resolve/?fileuri=...                  (a 303 to a presigned S3 URL, not followed)
  submit      POST /api/tasks/<id>/annotations?project=P             (one box; Label Studio then sends the webhook)
  page read   one of GET /api/projects/P, /api/dm/views?project=P, /api/tasks?page=1&page_size=30&view=V&project=P,
              /api/current-user/whoami, in turn, one per task (the page refreshing itself as the worker goes)
For each server and N: `--warm-up` seconds of load, then `--seconds` measured: the requests that ended in that
window, the errors among them (an answer other than 2xx/3xx, or no answer), requests per second, p50 and p95
latency at the client, overall and per kind; the server's memory when the window ends (RSS summed over its process
group, and PSS, which counts pages that forked processes share once), the CPU time it used, how busy each CPU was,
and the load generator's own CPU (threads in one process: if it came near one core, the client would be the
bottleneck), and what Label Studio's log says meanwhile ("database is locked": on SQLite, Label Studio's
DatabaseIsLockedRetryMiddleware sleeps 1 s, 1.5 s, ... and runs the request again, so a lock shows as latency,
not as an error). Then the ratios uwsgi/runserver.

Caveats: SQLite unless --database postgresql, and then a PostgreSQL on the load generator's CPU, not RDS; loopback,
no load balancer or CloudFront; the machine's other processes may run on CPU 0 too (the line "CPU 0 busy" against
the server's own CPU time shows it). Figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT)]
os.environ.update(AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark", AWS_DEFAULT_REGION="us-east-1")

import requests  # noqa: E402

from benchmarks.label_studio_side_by_side import code_state, ratio, seconds, status_mb  # noqa: E402
from labeling_pipeline.backends.label_studio.service import task_data  # noqa: E402
from labeling_pipeline.backends.label_studio.workers import LabelStudioWorkers  # noqa: E402
from labeling_pipeline.images import ImageRef  # noqa: E402
from sandbox.emulator import MotoServer, free_port  # noqa: E402
from sandbox.label_studio_server import (  # noqa: E402
    LABEL_STUDIO,
    MIGRATE_TIMEOUT_SECONDS,
    LabelStudioServer,
    environment,
    installed_version,
)
from sandbox.simulated_annotators import choose_password, password_link, signed_in_session  # noqa: E402
from tests.label_studio.pipeline_world import Pipeline, label_studio_pipeline, rectangle  # noqa: E402

SERVER_CPU = 0
PASSWORD = "Maple-lantern-27"  # Django's validators refuse one like the email
IMAGE_SIZE = (800, 600)
IMPORT_CHUNK = 1000
SETUP_ATTEMPTS = 3  # choosing a password on a new link (once seen: "the password link no longer works")
TIMEOUT = (10, 120)  # connect, read: a slow answer is a figure, not an error
KINDS = ("next task", "resolve", "submit", "page read")
ALL = "all"
UWSGI_INI = ROOT / "label_studio_plugin" / "labeling_gate" / "uwsgi.ini"
# What Label Studio's log says about failures (counted per cell, in what it wrote during the cell).
LOG_MARKS = (
    "database is locked",
    "Traceback",
    "Broken pipe",
    "ConnectionResetError",
    "HARAKIRI",
    "Internal Server Error",
)


# --- the annotators ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    ended: float
    seconds: float
    error: str  # "" when the answer was 2xx or 3xx


@dataclass
class Annotator:
    email: str
    session: requests.Session
    project_id: int
    view: int
    page_reads: Iterator[str]


def open_labeling_page(session: requests.Session, base_url: str, project_id: int) -> int:
    """What the labeling page reads first, and its data manager tab (made when the worker has none): its id."""
    for path in ("/api/current-user/whoami", f"/api/projects/{project_id}"):
        session.get(base_url + path, timeout=TIMEOUT).raise_for_status()
    views = session.get(f"{base_url}/api/dm/views", params={"project": project_id}, timeout=TIMEOUT)
    views.raise_for_status()
    if views.json():
        return int(views.json()[0]["id"])
    made = session.post(
        f"{base_url}/api/dm/views",
        params={"tabID": 0, "project": project_id},
        json={
            "project": project_id,
            "data": {
                "title": "Default",
                "type": "list",
                "target": "tasks",
                "ordering": [],
                "filters": {"conjunction": "and", "items": []},
            },
        },
        timeout=TIMEOUT,
    )
    made.raise_for_status()
    return int(made.json()["id"])


def page_read_paths(project_id: int, view: int) -> Iterator[str]:
    return itertools.cycle(
        [
            f"/api/projects/{project_id}",
            f"/api/dm/views?project={project_id}",
            f"/api/tasks?page=1&page_size=30&view={view}&project={project_id}",
            "/api/current-user/whoami",
        ]
    )


def make_annotators(pipeline: Pipeline, count: int) -> list[Annotator]:
    """`count` worker accounts, added by the admin, each choosing its password on its link and signing in."""
    base_url = pipeline.label_studio.url
    page = f"{base_url}/projects/{pipeline.project_id}/data?labeling=1"

    def one(number: int) -> Annotator:
        email = f"annotator-{number:03d}@example.com"
        workers = LabelStudioWorkers(pipeline.api)
        message = workers.add(email)
        for attempt in range(SETUP_ATTEMPTS):
            try:
                choose_password(password_link(message), PASSWORD)
                break
            except PermissionError as error:
                if attempt == SETUP_ATTEMPTS - 1:
                    raise
                print(f"   setup: {error}; `workers reset` for a new link")
                message = workers.reset(email)
        session = signed_in_session(base_url, email, PASSWORD, page)
        view = open_labeling_page(session, base_url, pipeline.project_id)
        return Annotator(email, session, pipeline.project_id, view, page_read_paths(pipeline.project_id, view))

    # One after another: on SQLite, concurrent account writes meet "database is locked" (and the server has one CPU).
    return [one(number) for number in range(count)]


def timed(
    samples: list[Sample],
    kind: str,
    session: requests.Session,
    method: str,
    url: str,
    read: Callable[[requests.Response], Any] = lambda answer: answer,
    **options: Any,
) -> Any:
    """One request, timed at the client; `read` of its answer when it was 2xx or 3xx and `read` could read it, else
    None (an error)."""
    started = time.perf_counter()
    try:
        answer = session.request(method, url, timeout=TIMEOUT, **options)
    except requests.RequestException as error:
        ended = time.perf_counter()
        samples.append(Sample(kind, ended, ended - started, type(error).__name__))
        return None
    ended = time.perf_counter()
    if not 200 <= answer.status_code < 400:
        samples.append(Sample(kind, ended, ended - started, f"HTTP {answer.status_code}"))
        return None
    try:
        found = read(answer)
    except (ValueError, KeyError, TypeError) as error:
        samples.append(Sample(kind, ended, ended - started, f"unexpected answer ({type(error).__name__})"))
        return None
    samples.append(Sample(kind, ended, ended - started, ""))
    return found


def task_and_link(answer: requests.Response) -> tuple[int, str]:
    """The next task's id and its image's link, from the labeling stream's answer."""
    task = answer.json()
    return int(task["id"]), str(task["data"]["image"])


def work(annotator: Annotator, base_url: str, samples: list[Sample], stop: threading.Event) -> None:
    """The editor's loop for one task after another, no think time, until `stop`."""
    session, project_id = annotator.session, annotator.project_id
    actions = f"{base_url}/api/dm/actions?id=next_task&tabID={annotator.view}&project={project_id}"
    while not stop.is_set():
        started_at = datetime.now(UTC).isoformat()
        # The labeling stream's "Label All Tasks" sends no filters, selection or ordering: Label Studio's own queue.
        found = timed(samples, "next task", session, "POST", actions, task_and_link, json={})
        if found is None:
            stop.wait(0.1)  # not a hot loop against a server that refuses
            continue
        task_id, link = found
        timed(
            samples, "resolve", session, "GET", base_url + link if link.startswith("/") else link, allow_redirects=False
        )
        body = {
            "result": [rectangle(20.0, 25.0, 30.0, 40.0, "Cat", IMAGE_SIZE)],
            "was_cancelled": False,
            "ground_truth": False,
            "lead_time": 4.0,
            "started_at": started_at,
            "draft_id": 0,
            "parent_prediction": None,
            "parent_annotation": None,
            "project": str(project_id),
        }
        submit = f"{base_url}/api/tasks/{task_id}/annotations?project={project_id}"
        timed(samples, "submit", session, "POST", submit, json=body)
        timed(samples, "page read", session, "GET", base_url + next(annotator.page_reads))


# --- what the server and the machine did ------------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the command: state, ppid, pgrp
            found.append(int(entry.name))
    return found


def group_cpu_seconds(pgid: int) -> dict[int, float]:
    """User and system CPU of each of the group's processes. Not their reaped children's: a uwsgi worker that
    is replaced would bring its whole life's CPU into the master's."""
    found = {}
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """The group's CPU seconds between two readings (a process that ended in between: its share is lost)."""
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items())


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def group_memory(pgid: int) -> tuple[float, float, int]:
    """RSS summed over the process group, PSS summed, and how many processes (MB, MB, count)."""
    pids = group_pids(pgid)
    rss = sum(status_mb("VmRSS", pid) for pid in pids if Path(f"/proc/{pid}").exists())
    return rss, sum(pss_mb(pid) for pid in pids), len(pids)


def cpu_times() -> dict[int, tuple[int, int]]:
    """Each CPU's (busy, total) jiffies, from /proc/stat."""
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(value) for value in values[:8]]
            idle = numbers[3] + numbers[4]  # idle, iowait
            found[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return found


def busy(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpu: int) -> float:
    total = after[cpu][1] - before[cpu][1]
    return (after[cpu][0] - before[cpu][0]) / total if total else 0.0


# --- one cell: a server, N annotators ---------------------------------------------------------------------------


@dataclass
class Cell:
    server: str
    annotators: int
    window: float
    samples: list[Sample]
    rss_mb: float
    pss_mb: float
    processes: int
    server_cpu: float  # cores, over the window
    cpu_busy: dict[int, float]
    client_cpu: float  # cores
    replaced: int  # server processes gone during the window (uwsgi's max-requests, reload-on-rss, harakiri)
    log_marks: Counter[str]

    def of(self, kind: str) -> list[Sample]:
        return [sample for sample in self.samples if kind in (ALL, sample.kind)]

    def rate(self, kind: str = ALL) -> float:
        return len(self.of(kind)) / self.window

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of the server's own CPU: what other processes on its CPU do not change."""
        return self.rate() / self.server_cpu if self.server_cpu else float("nan")

    def quantile(self, kind: str, q: int) -> float:
        """The q-th percentile of the latencies of the kind's answered requests, in ms."""
        values = [sample.seconds * 1000 for sample in self.of(kind) if not sample.error]
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_cell(server: LabelStudioServer, label: str, annotators: list[Annotator], warm_up: float, window: float) -> Cell:
    assert server.pid is not None
    log_start = server.log_path.stat().st_size
    samples: list[Sample] = []
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=work,
            args=(annotator, server.url, samples, stop),
            name=f"annotator-{number}",
            daemon=True,
        )
        for number, annotator in enumerate(annotators)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warm_up)
    began = time.perf_counter()
    cpu_before, server_before, client_before = cpu_times(), group_cpu_seconds(server.pid), time.process_time()
    time.sleep(window)
    ended = time.perf_counter()
    cpu_after, server_after, client_after = cpu_times(), group_cpu_seconds(server.pid), time.process_time()
    rss, pss, processes = group_memory(server.pid)
    stop.set()
    for thread in threads:
        thread.join()
    measured = [sample for sample in samples if began <= sample.ended <= ended]
    return Cell(
        server=label,
        annotators=len(annotators),
        window=ended - began,
        samples=measured,
        rss_mb=rss,
        pss_mb=pss,
        processes=processes,
        server_cpu=cpu_used(server_before, server_after) / (ended - began),
        replaced=len(set(server_before) - set(server_after)),
        cpu_busy={cpu: busy(cpu_before, cpu_after, cpu) for cpu in cpu_after},
        client_cpu=(client_after - client_before) / (ended - began),
        log_marks=log_marks(server.log_path, log_start),
    )


def log_marks(path: Path, offset: int) -> Counter[str]:
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return Counter({mark: text.count(mark) for mark in LOG_MARKS if mark in text})


def print_cell(cell: Cell) -> None:
    print(f"\n-- {cell.server}, {cell.annotators} annotators: {cell.window:.1f} s measured")
    print(f"   {'kind':10s} {'requests':>9s} {'errors':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for kind in (ALL, *KINDS):
        found = cell.of(kind)
        errors = sum(1 for sample in found if sample.error)
        print(
            f"   {kind:10s} {len(found):9d} {errors:7d} {cell.rate(kind):8.1f} {cell.quantile(kind, 50):8.0f} "
            f"{cell.quantile(kind, 95):8.0f}"
        )
    kinds_of_error = Counter(f"{sample.kind}: {sample.error}" for sample in cell.samples if sample.error)
    if kinds_of_error:
        print("   errors: " + ", ".join(f"{what} x{count}" for what, count in kinds_of_error.most_common(6)))
    if cell.replaced:
        print(f"   {cell.replaced} server process(es) ended during the window (replaced by uwsgi's master)")
    if cell.log_marks:
        print(
            "   Label Studio's log (warm-up and window): " + ", ".join(f"{m!r} x{n}" for m, n in cell.log_marks.items())
        )
    cpus = ", ".join(f"CPU {cpu} busy {share:.0%}" for cpu, share in sorted(cell.cpu_busy.items()))
    print(
        f"   tasks submitted {cell.rate('submit'):.1f}/s; server: RSS {cell.rss_mb:.0f} MB over {cell.processes} "
        f"process(es), PSS {cell.pss_mb:.0f} MB, CPU {cell.server_cpu:.2f} cores ({cell.per_cpu_second:.1f} requests "
        f"per CPU-second); {cpus}; load generator {cell.client_cpu:.2f} cores"
    )


def compared(mine: float, theirs: float) -> str:
    """mine/theirs as a ratio, then both figures."""
    digits = 1 if max(mine, theirs) < 100 else 0
    return f"{ratio(mine, theirs):>6s} ({mine:5.{digits}f}/{theirs:5.{digits}f})"


def print_ratios(cells: list[Cell], base: str) -> None:
    others = sorted({cell.server for cell in cells} - {base}, key=[cell.server for cell in cells].index)
    by = {(cell.server, cell.annotators): cell for cell in cells}
    for other in others:
        print(f"\n== {other} / {base}: requests/s (above 1.00x: more), latency (below 1.00x: faster)")
        print(f"   {'N':>3s} {'kind':10s} {'req/s':>20s} {'p50 ms':>20s} {'p95 ms':>20s} {'req/CPU-s, RSS MB':>38s}")
        for count in sorted({cell.annotators for cell in cells}):
            if (base, count) not in by or (other, count) not in by:
                continue
            a, b = by[(other, count)], by[(base, count)]
            for kind in (ALL, *KINDS):
                whole = f"{compared(a.per_cpu_second, b.per_cpu_second)} {compared(a.rss_mb, b.rss_mb)}"
                print(
                    f"   {count:3d} {kind:10s} {compared(a.rate(kind), b.rate(kind))} "
                    f"{compared(a.quantile(kind, 50), b.quantile(kind, 50))} "
                    f"{compared(a.quantile(kind, 95), b.quantile(kind, 95))} {whole if kind == ALL else ''}"
                )


# --- PostgreSQL, as the ECS task's RDS ---------------------------------------------------------------------------


@dataclass
class PostgreSQL:
    """A PostgreSQL server on loopback (trust authentication) holding a migrated, user-less Label Studio database to
    copy for each server."""

    port: int
    template: str = "label_studio_template"

    def environment(self, name: str) -> dict[str, str]:
        """Label Studio's settings for database `name` (label_studio/core/settings/base.py, as the stack sets them)."""
        return {
            "DJANGO_DB": "default",
            "POSTGRE_NAME": name,
            "POSTGRE_USER": "postgres",
            "POSTGRE_PASSWORD": "postgres",
            "POSTGRE_HOST": "127.0.0.1",
            "POSTGRE_PORT": str(self.port),
        }

    def sql(self, statement: str) -> None:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                statement,
            ],
            check=True,
            capture_output=True,
        )

    def fresh_copy(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then the command runs as the `postgres` account."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def local_postgresql(folder: Path) -> Iterator[PostgreSQL]:
    """A throwaway PostgreSQL (the installed server: initdb, pg_ctl) on this process's CPUs, with Label Studio's
    migrations run once into its template database."""
    if shutil.which("pg_ctl") is None or shutil.which("psql") is None:
        raise SystemExit("--database postgresql needs PostgreSQL's server (initdb, pg_ctl) and psql on PATH")
    data = Path(tempfile.mkdtemp(prefix="label-studio-load-postgresql-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    database = PostgreSQL(free_port())
    started = time.perf_counter()
    subprocess.run(
        as_postgres_user(["initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {database.port} -c listen_addresses=127.0.0.1 -k {data} -c max_connections=200"
    server_log = data / "server.log"
    subprocess.run(
        as_postgres_user(["pg_ctl", "-D", str(data), "-l", str(server_log), "-o", options, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        database.sql(f'CREATE DATABASE "{database.template}"')
        migrating = folder / "migrate-postgresql"
        migrating.mkdir(parents=True, exist_ok=True)
        # Any command migrates first; `version` then only prints, and without LABEL_STUDIO_USERNAME makes no user.
        subprocess.run(
            [str(LABEL_STUDIO), "version", "--data-dir", str(migrating)],
            env={**environment(migrating), **database.environment(database.template)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=MIGRATE_TIMEOUT_SECONDS,
            check=True,
        )
        print(
            f"PostgreSQL on 127.0.0.1:{database.port} (CPU(s) {sorted(os.sched_getaffinity(0))}), Label Studio's "
            f"migrations in {seconds(time.perf_counter() - started)}"
        )
        yield database
    finally:
        subprocess.run(as_postgres_user(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


# --- servers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerMode:
    server: str  # "runserver" or "uwsgi"
    processes: int | None = None
    threads: int | None = None

    @property
    def label(self) -> str:
        if self.server == "runserver":
            return "runserver"
        if self.processes is None and self.threads is None:
            return f"uwsgi {ini_default('processes')}x{ini_default('threads')} (uwsgi.ini)"
        return f"uwsgi {self.processes or ini_default('processes')}x{self.threads or ini_default('threads')}"

    @property
    def environment(self) -> dict[str, str]:
        found = {}
        if self.processes is not None:
            found["UWSGI_PROCESSES"] = str(self.processes)
        if self.threads is not None:
            found["UWSGI_NUMBER_OF_THREADS"] = str(self.threads)
        return found


def baseline(modes: list[ServerMode]) -> ServerMode:
    """What the others are compared with: runserver, else uwsgi.ini's worker count, else the first."""
    default = (ini_default("processes"), ini_default("threads"))
    for mode in modes:
        if mode.server == "runserver":
            return mode
    for mode in modes:
        if (str(mode.processes or default[0]), str(mode.threads or default[1])) == default:
            return mode
    return modes[0]


def ini_default(option: str) -> str:
    """uwsgi.ini's value of `option` when its environment variable is unset (its `if-not-env` block)."""
    lines = UWSGI_INI.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("if-not-env") and lines[number + 1].split("=")[0].strip() == option:
            return lines[number + 1].split("=", 1)[1].strip()
    return "?"


@contextmanager
def loaded_server(
    moto: MotoServer, folder: Path, mode: ServerMode, tasks: int, annotators: int, database: PostgreSQL | None
) -> Iterator[Any]:
    """A fresh Label Studio on CPU SERVER_CPU (its own SQLite, or a fresh copy of `database`'s migrated template), the
    pipeline's project with `tasks` tasks, and signed-in annotators."""
    name = f"{len(list(folder.glob('label-studio-*')))}-" + mode.label.split(" (")[0].replace(" ", "-")
    started = time.perf_counter()
    environment = dict(mode.environment)
    if database is not None:
        environment.update(database.environment(database.fresh_copy("label_studio_" + name.replace("-", "_"))))
    with (
        LabelStudioServer(
            folder / f"label-studio-{name}",
            server=mode.server,
            extra_environment=environment,
            command_prefix=("taskset", "-c", str(SERVER_CPU)),
        ) as server,
        label_studio_pipeline(moto, server, f"Load {name}") as pipeline,
    ):
        pipeline.drop_webhooks = True
        api = pipeline.api
        images = [ImageRef(pipeline.bucket, f"images/load/{i:06d}.png", f"v{i}") for i in range(tasks)]
        for start in range(0, tasks, IMPORT_CHUNK):
            chunk = images[start : start + IMPORT_CHUNK]
            api.import_tasks(pipeline.project_id, [{"data": task_data(image, "lsbox-load")} for image in chunk])
        people = make_annotators(pipeline, annotators)
        print(
            f"\n== {mode.label}: {server.url} (pid {server.pid}), {tasks:,} tasks, {annotators} annotators signed in; "
            f"set up in {seconds(time.perf_counter() - started)}"
        )
        yield server, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--annotators", type=int, nargs="+", default=[5, 20, 50], help="N, one cell each")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured per cell")
    parser.add_argument("--warm-up", type=float, default=5.0, help="load before each cell's measurement")
    parser.add_argument("--tasks", type=int, default=4000, help="tasks imported per server")
    parser.add_argument("--servers", nargs="+", choices=("runserver", "uwsgi"), default=["runserver", "uwsgi"])
    parser.add_argument("--uwsgi-processes", type=int, nargs="+", default=[], help="UWSGI_PROCESSES to try")
    parser.add_argument("--uwsgi-threads", type=int, nargs="+", default=[], help="UWSGI_NUMBER_OF_THREADS to try")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="postgresql: a throwaway local PostgreSQL off the server's CPU, as the ECS task uses RDS",
    )
    args = parser.parse_args()
    modes = []
    for server in args.servers:
        if server == "runserver":
            modes.append(ServerMode("runserver"))
            continue
        for processes, threads in itertools.product(args.uwsgi_processes or [None], args.uwsgi_threads or [None]):
            modes.append(ServerMode("uwsgi", processes, threads))
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1 and SERVER_CPU in cpus:
        # The load generator (and moto's server, started from here) keep off the server's CPU.
        os.sched_setaffinity(0, [cpu for cpu in cpus if cpu != SERVER_CPU])
    began = time.perf_counter()
    print(
        f"Label Studio {installed_version()} pinned to CPU {SERVER_CPU}; load generator on CPU(s) "
        f"{sorted(os.sched_getaffinity(0))}; {os.cpu_count()} cores; annotators {args.annotators}, "
        f"{args.warm_up:.0f} s warm-up + {args.seconds:.0f} s per cell; database {args.database}; {code_state()}"
    )
    cells: list[Cell] = []
    with (
        tempfile.TemporaryDirectory(prefix="label-studio-load-") as work,
        MotoServer(Path(work) / "moto.log") as moto,
        local_postgresql(Path(work)) if args.database == "postgresql" else contextlib.nullcontext() as database,
    ):
        folder = Path(work)
        for mode in modes:
            with loaded_server(moto, folder, mode, args.tasks, max(args.annotators), database) as (server, people):
                for count in args.annotators:
                    cell = run_cell(server, mode.label, people[:count], args.warm_up, args.seconds)
                    cells.append(cell)
                    print_cell(cell)
    if len(modes) > 1:
        print_ratios(cells, baseline(modes).label)
    print(f"\nthe whole run: {seconds(time.perf_counter() - began)}")


if __name__ == "__main__":
    main()
