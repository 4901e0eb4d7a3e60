"""bbox-labeling (also installed as gt-labeling): one tool, subcommands, --help on each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from labeling_cli import commands
from labeling_cli.prelabel_report import proposals_by_image, read_report, report_command
from labeling_cli.sources import local_manifest
from labeling_cli.stack import CliError, StackInfo, load_stack, resolve_region
from labeling_cli.upload import upload
from labeling_pipeline.backends import BackendError, LabelingBackend, WorkerError
from labeling_pipeline.backends.registry import parts
from labeling_pipeline.ledger import Ledger

DEFAULT_PROJECT = "gt-labeling"
LABELS_EXAMPLE = """'["Dog","Cat"]'"""  # as typed in a shell
# The console scripts (pyproject.toml), one entry point: bbox-labeling, and gt-labeling, its first name.
PROGRAM_NAMES = ("bbox-labeling", "gt-labeling")


def program_name(argv0: str | None = None) -> str:
    """The name the command was typed as, for its help, usage and messages; run otherwise (python -m, in-process),
    bbox-labeling."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name.removesuffix(".exe")
    return name if name in PROGRAM_NAMES else PROGRAM_NAMES[0]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog or program_name(), description=__doc__)
    parser.add_argument(
        "--project",
        default=DEFAULT_PROJECT,
        help="projectName of the deployment (stack <project>-pipeline, and its labeling backend's stacks)",
    )
    parser.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION or your AWS profile's region)"
    )
    parser.add_argument("--profile", help="AWS profile")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upload", help="upload a folder of images; each upload starts labeling")
    p.add_argument("directory", type=Path)
    p.add_argument("--dataset", required=True, help="folder under images/ to upload into")
    p.add_argument("--workers", type=int, default=8, help="parallel uploads (default 8)")

    p = sub.add_parser("status", help="jobs with their progress, and the queues")
    p.add_argument("--limit", type=int, default=20, help="newest jobs to show (default 20)")

    for name, text in (
        ("export", "write COCO, YOLO or Pascal VOC from a job, a local output manifest or a whole dataset"),
        ("review", "write an index.html gallery with the boxes drawn on the images"),
    ):
        p = sub.add_parser(name, help=text)
        source_help = "job name, or a local output.manifest file"
        if name == "export":
            what = p.add_mutually_exclusive_group(required=True)
            what.add_argument("source", nargs="?", metavar="JOB|MANIFEST", help=source_help)
            what.add_argument(
                "--dataset",
                metavar="NAME",
                help="every image under images/NAME/ across all jobs, each with the labels of its newest "
                "labeled version (summary.json lists images whose newest version is not labeled yet)",
            )
        else:
            p.add_argument("source", metavar="JOB|MANIFEST", help=source_help)
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--attribute", help="label attribute (default: the stack's, or detected)")
        p.add_argument("--labels", help='label order as JSON, e.g. \'["Dog","Cat"]\' (default: the stack\'s)')
        if name == "export":
            p.add_argument("--format", required=True, choices=["coco", "yolo", "voc"])
            p.add_argument(
                "--with-images",
                action="store_true",
                help="also download the labeled images from S3 (yolo: images/, voc: JPEGImages/), ready to train",
            )
        else:
            p.add_argument("--images", required=True, help="local folder of the images, or 's3' to download them")
            p.add_argument("--note", help="a line shown above the gallery, e.g. who labeled these images")

    p = sub.add_parser("report", help="whether the detector's proposals helped in a job (labeling.prelabel)")
    p.add_argument("job")

    p = sub.add_parser("workers", help="manage the worker group without a redeploy")
    p.add_argument("action", choices=["add", "reset", "remove", "list"], help="reset: a forgotten password")
    p.add_argument("email", nargs="?")
    # Takes the address as its value too, so that both `workers add --reviewer EMAIL` and `workers add EMAIL
    # --reviewer` parse (argparse gives an optional positional its value before the options that follow it).
    p.add_argument(
        "--reviewer",
        nargs="?",
        const=True,
        default=False,
        metavar="EMAIL",
        help="Label Studio: add a reviewer (or make an existing worker one); with remove, take only the reviewer "
        "role away",
    )

    sub.add_parser(
        "rotate-credentials",
        help="Label Studio deployed by the stack: a new API token for the pipeline and a new administrator password",
    )

    p = sub.add_parser("relabel", help="requeue the images of a failed or stopped job")
    p.add_argument("job")

    p = sub.add_parser(
        "ledger",
        help="upgrade: once after upgrading a deployment made before the ledger's index, index the older items "
        "(the one command that scans the ledger table)",
    )
    p.add_argument("action", choices=["upgrade"])
    return parser


def _session(args: argparse.Namespace) -> Any:
    return boto3.Session(profile_name=args.profile, region_name=resolve_region(args.region))


def _backend(session: Any, stack: StackInfo) -> LabelingBackend:
    """The deployment's labeling backend, built as its functions build it, with the CLI's session."""
    return parts(stack.settings.backend).build(stack.settings, stack.backend_resources, session.client, stack.region)


def _labels(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise CliError(f"--labels takes a JSON list of label names, e.g. {LABELS_EXAMPLE}, not {raw}")
    return labels


def _export_dataset(args: argparse.Namespace, connect: Callable[[], Any]) -> list[str]:
    labels = _labels(args.labels)
    session = connect()
    stack = load_stack(session, args.project)
    s3 = session.client("s3")
    summary = commands.dataset_export_command(
        args.dataset,
        args.format,
        args.out,
        stack.labels if labels is None else labels,
        Ledger(session.client("dynamodb"), stack.ledger_table),
        commands.job_label_reader(_backend(session, stack)),
        s3,
        with_images=args.with_images,
    )
    return [
        f"wrote {args.format} of dataset {args.dataset} to {args.out}",
        json.dumps(summary, indent=1, ensure_ascii=False),
    ]


def _export_or_review(args: argparse.Namespace, connect: Callable[[], Any]) -> list[str]:
    if getattr(args, "dataset", None) is not None:
        return _export_dataset(args, connect)
    # A local file that is not there is said first: no region or credentials are needed to say it.
    manifest = local_manifest(args.source)
    labels = _labels(args.labels)
    wants_s3 = getattr(args, "images", None) == "s3" or getattr(args, "with_images", False)
    session: Any = None
    stack: StackInfo | None = None
    if manifest is None:
        session = connect()
        stack = load_stack(session, args.project)
    elif labels is None:
        # A local manifest needs the deployment only for the label order (the stack's labels).
        try:
            session = connect()
            stack = load_stack(session, args.project)
        except (CliError, BotoCoreError) as error:
            if args.command == "export":
                reason = str(error).split(": ", 1)[0].rstrip(".")
                print(
                    f"{program_name()}: note: no --labels, and the deployed stack's labels were not read ({reason}): "
                    "class ids follow the order in which labels first appear in the manifest. "
                    f"Pass --labels {LABELS_EXAMPLE} to set it.",
                    file=sys.stderr,
                )
    if session is None and wants_s3:
        session = connect()
    s3 = session.client("s3") if stack is not None or wants_s3 else None
    source = commands.ResultsSource(
        name=args.source,
        backend=_backend(session, stack) if stack else None,
        settings=stack.settings if stack else None,
        attribute=args.attribute,
    )
    if labels is None:
        labels = stack.labels if stack else []
    if args.command == "export":
        summary = commands.export_command(source, args.format, args.out, labels, s3, with_images=args.with_images)
        return [f"wrote {args.format} to {args.out}", json.dumps(summary, indent=1, ensure_ascii=False)]
    report = read_report(s3, stack.bucket, args.source) if stack is not None and manifest is None else None
    proposals = proposals_by_image(report) if report is not None else None
    index = commands.review_command(source, args.images, args.out, labels, s3, args.note, proposals)
    return [f"open {index}"]


def run(args: argparse.Namespace, connect: Callable[[], Any]) -> list[str]:
    """The subcommand's output lines; connect() makes the boto3 session, only once AWS is needed."""
    if args.command in ("export", "review"):
        return _export_or_review(args, connect)
    session = connect()
    stack = load_stack(session, args.project)
    if args.command == "report":
        return report_command(session.client("s3"), stack.bucket, args.job)
    if args.command == "upload":
        limits = parts(stack.settings.backend).limits
        report = upload(session.client("s3"), stack.bucket, args.directory, args.dataset, limits, args.workers)
        if report.failed:
            raise CliError("\n".join(report.lines()))
        return report.lines()
    ledger = Ledger(session.client("dynamodb"), stack.ledger_table)
    if args.command == "status":
        return commands.status_command(stack, ledger, _backend(session, stack), session.client("sqs"), args.limit)
    if args.command == "workers":
        try:
            directory = parts(stack.settings.backend).workers(stack.backend_resources, session.client, stack.region)
        except WorkerError as error:
            raise CliError(str(error)) from error
        email, reviewer = args.email, args.reviewer
        if isinstance(reviewer, str):
            if email:
                raise CliError(f"one email address, please: workers {args.action} --reviewer EMAIL")
            email, reviewer = reviewer, True
        return commands.workers_command(directory, args.action, email, reviewer=reviewer)
    if args.command == "rotate-credentials":
        rotate = parts(stack.settings.backend).rotate_credentials
        if rotate is None:
            raise CliError(
                f"the {stack.settings.backend} backend keeps no credentials of this deployment's own to rotate"
            )
        try:
            return rotate(stack.backend_resources, session.client, stack.region)
        except WorkerError as error:
            raise CliError(str(error)) from error
    if args.command == "ledger":
        return commands.ledger_upgrade_command(ledger)
    return commands.relabel_command(session.client("s3"), ledger, stack.bucket, args.job)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for line in run(args, lambda: _session(args)):
            print(line)
    except CliError as error:
        print(f"{program_name()}: {error}", file=sys.stderr)
        return 2
    except ProfileNotFound as error:
        profile = error.kwargs.get("profile", "")
        print(
            f"{program_name()}: AWS profile {profile!r} is not in your AWS config or credentials file: "
            f"check --profile and AWS_PROFILE, or create it with `aws configure --profile {profile}`.",
            file=sys.stderr,
        )
        return 2
    except NoCredentialsError:
        print(f"{program_name()}: no AWS credentials found: run `aws configure` or `aws sso login`.", file=sys.stderr)
        return 2
    except ClientError as error:
        code, message = error.response.get("Error", {}).get("Code", "?"), error.response.get("Error", {}).get("Message")
        print(f"{program_name()}: AWS refused {error.operation_name}: {code}: {message or ''}", file=sys.stderr)
        return 2
    except BackendError as error:
        print(f"{program_name()}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
