"""Start Label Studio as deployed: migrations (under Label Studio's PostgreSQL advisory lock when there are
several tasks), the administrator's credentials from the environment (credentials.py), then the server.

    python -m labeling_gate.start [--server uwsgi|runserver] [--bind 0.0.0.0] [--port 8080]

uwsgi is how upstream runs Label Studio in production (its image's ``label-studio-uwsgi`` command and
deploy/uwsgi.ini); ``runserver`` is Django's development server that ``label-studio start`` runs, kept for the
side-by-side load benchmark. The process replaces itself with the server, so the container's signals reach it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from labeling_gate.bootstrap import label_studio_dir, setup_django

logger = logging.getLogger("labeling_gate.start")
UWSGI_INI = Path(__file__).resolve().parent / "uwsgi.ini"
PLUGIN_DIR = Path(__file__).resolve().parent.parent
# The user upstream's image creates and runs Label Studio as (its Dockerfile: useradd label-studio, gosu).
SERVER_USER = "label-studio"


def migrate() -> None:
    from django.core.management import call_command
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    connection.prepare_database()
    executor = MigrationExecutor(connection)
    if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return
    # locked_migrate takes a PostgreSQL advisory lock, so that tasks starting together migrate once.
    command = "locked_migrate" if connection.vendor == "postgresql" else "migrate"
    call_command(command, interactive=False, verbosity=1)


def apply_credentials() -> None:
    from labeling_gate.credentials import apply_admin_credentials

    email = os.environ.get("LABEL_STUDIO_USERNAME", "")
    if not email:
        logger.warning("LABEL_STUDIO_USERNAME is not set: no administrator credentials applied")
        return
    applied = apply_admin_credentials(
        email, os.environ.get("LABEL_STUDIO_PASSWORD", ""), os.environ.get("LABEL_STUDIO_USER_TOKEN", "")
    )
    what = "created" if applied.created else (", ".join(applied.changed) + " applied" if applied.changed else "in step")
    print(f"labeling_gate: administrator {applied.email}: {what}", flush=True)


def server_environment() -> dict[str, str]:
    environment = dict(os.environ)
    paths = [str(PLUGIN_DIR), str(label_studio_dir())]
    if environment.get("PYTHONPATH"):
        paths.append(environment["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def exec_uwsgi(bind: str, port: int) -> None:
    uwsgi = shutil.which("uwsgi", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if uwsgi is None:
        raise SystemExit("labeling_gate: no uwsgi next to this Python or on PATH (pip install pyuwsgi)")
    environment = server_environment()
    environment.update(
        {
            "LABELING_UWSGI_HTTP": f"{bind}:{port}",
            "LABELING_UWSGI_CHDIR": str(label_studio_dir()),
            "LABELING_UWSGI_HOME": sys.prefix,
        }
    )
    command = [uwsgi, "--ini", str(UWSGI_INI)]
    if os.geteuid() == 0:
        # Started as root (the container's entry point is replaced, so the image's own drop to its user does not
        # run): uwsgi's workers run as Label Studio's user, as in upstream's image.
        command += ["--uid", SERVER_USER, "--gid", SERVER_USER] if _user_exists(SERVER_USER) else []
    os.execve(uwsgi, command, environment)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def run_development_server(bind: str, port: int) -> None:
    from django.core.management import call_command

    call_command("runserver", "--noreload", f"{bind}:{port}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("uwsgi", "runserver"), default="uwsgi")
    parser.add_argument("--bind", default=os.environ.get("LABELING_BIND", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABELING_PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    setup_django()
    migrate()
    apply_credentials()
    if args.server == "uwsgi":
        exec_uwsgi(args.bind, args.port)
    else:
        run_development_server(args.bind, args.port)


if __name__ == "__main__":
    main()
