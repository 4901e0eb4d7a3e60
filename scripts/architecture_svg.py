"""docs/architecture.svg: the flow from upload to export, for both backends, as a picture a browser shows.

    .venv/bin/python scripts/architecture_svg.py           # print the SVG
    .venv/bin/python scripts/architecture_svg.py --write   # write docs/architecture.svg

Hand-placed boxes and right-angled arrows, every label a <text> element (no graphviz here). tests/test_docs.py
checks that the file parses, names both backends, and equals what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "architecture.svg"

WIDTH = 1240
HEIGHT = 800
FONT = "Helvetica, Arial, sans-serif"
TITLE_SIZE = 15
TEXT_SIZE = 13
LABEL_SIZE = 12
LINE = 17

GROUND_TRUTH = ("#eaf2fd", "#5b8fd6")
LABEL_STUDIO = ("#ebf7ec", "#58a55f")
OUTPUT_FILL = "#fff7e0"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> int:
        return self.x + self.w // 2

    @property
    def cy(self) -> int:
        return self.y + self.h // 2

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h


class Drawing:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(
        self,
        x: float,
        y: float,
        words: str,
        *,
        size: int = TEXT_SIZE,
        bold: bool = False,
        anchor: str = "middle",
        fill: str = "#222",
    ) -> None:
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(
            f'<text x="{x}" y="{y}" font-size="{size}"{weight} text-anchor="{anchor}" fill="{fill}">'
            f"{escape(words)}</text>"
        )

    def lane(self, box: Box, title: str, colours: tuple[str, str]) -> None:
        fill, stroke = colours
        self.parts.append(
            f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="10" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"/>'
        )
        self.text(box.x + 14, box.y + 22, title, size=TITLE_SIZE, bold=True, anchor="start", fill=stroke)

    def box(self, box: Box, title: str, lines: Sequence[str], *, dashed: bool = False, fill: str = "#ffffff") -> None:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.parts.append(
            f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="6" fill="{fill}" '
            f'stroke="#555" stroke-width="1.2"{dash}/>'
        )
        top = box.cy - (LINE * len(lines) + TITLE_SIZE) / 2 + TITLE_SIZE - 2
        self.text(box.cx, top, title, size=TITLE_SIZE, bold=True)
        for number, line in enumerate(lines, start=1):
            self.text(box.cx, top + number * LINE + 1, line)

    def arrow(
        self,
        points: Sequence[tuple[int, int]],
        label: str = "",
        at: tuple[int, int] | None = None,
        *,
        anchor: str = "start",
        dashed: bool = False,
    ) -> None:
        path = " ".join(f"{'M' if index == 0 else 'L'} {x} {y}" for index, (x, y) in enumerate(points))
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.parts.append(
            f'<path d="{path}" fill="none" stroke="#444" stroke-width="1.6"{dash} marker-end="url(#head)"/>'
        )
        if label and at is not None:
            self.text(at[0], at[1], label, size=LABEL_SIZE, anchor=anchor, fill="#333")

    def svg(self) -> str:
        header = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" role="img" aria-labelledby="title desc">\n'
            '<title id="title">Bounding-box labeling on AWS: from upload to export</title>\n'
            '<desc id="desc">Images uploaded to the S3 bucket notify an SQS queue; an optional pre-label stage '
            "proposes boxes; the launcher Lambda claims each image version in the DynamoDB ledger and starts a job "
            "on the configured backend: an Amazon SageMaker Ground Truth labeling job with its Cognito workforce, or "
            "Label Studio on ECS Fargate with RDS behind CloudFront. The job end (an EventBridge rule for Ground "
            "Truth; a webhook and a reconciler schedule for Label Studio) invokes the job-events Lambda, which "
            "writes COCO, YOLO and VOC exports and notifies the results topic; alarms go to the same topic.</desc>\n"
            "<defs>\n"
            '<marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker>\n'
            "</defs>\n"
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>\n'
        )
        return header + "\n".join(self.parts) + "\n</svg>\n"


def draw() -> str:
    d = Drawing()
    d.text(
        20,
        30,
        "From upload to export: one pipeline, two labeling backends (labeling.backend)",
        size=18,
        bold=True,
        anchor="start",
    )

    # Row 1: the shared intake.
    row = 80
    upload = Box(20, row, 170, 84)
    bucket = Box(220, row, 170, 84)
    queue = Box(420, row, 170, 84)
    prelabel = Box(620, row, 170, 84)
    launcher = Box(820, row, 170, 84)
    ledger = Box(1020, row, 200, 84)
    d.box(upload, "Upload images", ["bbox-labeling upload DIR", "or aws s3 cp"])
    d.box(bucket, "S3 bucket", ["images/<dataset>/…", "notifies ObjectCreated"])
    d.box(queue, "SQS upload queue", ["batching window 60 s", "DLQ after 5 receives"])
    d.box(prelabel, "Pre-label stage", ["optional (prelabel)", "a detector proposes"], dashed=True)
    d.box(launcher, "Launcher Lambda", ["filters, batches", "splits into jobs"])
    d.box(ledger, "Ledger (DynamoDB)", ["one job per image version", "start leases, job states"])
    d.arrow([(upload.right, upload.cy), (bucket.x, bucket.cy)])
    d.arrow([(bucket.right, bucket.cy), (queue.x, queue.cy)])
    d.arrow([(queue.right, queue.cy), (prelabel.x, prelabel.cy)], dashed=True)
    d.arrow([(prelabel.right, prelabel.cy), (launcher.x, launcher.cy)], dashed=True)
    d.arrow(
        [(queue.cx, queue.y), (queue.cx, row - 22), (launcher.cx, row - 22), (launcher.cx, launcher.y)],
        "without pre-labels",
        (queue.cx + 12, row - 28),
    )
    d.arrow([(launcher.right, launcher.cy), (ledger.x, ledger.cy)], "claim", (launcher.right + 4, launcher.cy - 8))

    # Job end, shared: one tall box to the right of both lanes.
    gt_lane = Box(20, 210, 920, 160)
    ls_lane = Box(20, 390, 920, 220)
    job_events = Box(960, 250, 260, 330)
    d.lane(gt_lane, "Ground Truth backend (labeling.backend: ground-truth)", GROUND_TRUTH)
    d.lane(ls_lane, "Label Studio backend (labeling.backend: label-studio)", LABEL_STUDIO)

    # Ground Truth lane.
    workforce = Box(40, 255, 270, 95)
    gt_job = Box(360, 255, 270, 95)
    rule = Box(700, 255, 220, 95)
    d.box(workforce, "Workforce stack", ["Cognito user pool, invited workers", "private workforce, worker portal"])
    d.box(gt_job, "Ground Truth labeling job", ["one per batch: manifest, template", "crowd-bounding-box tool"])
    d.box(rule, "EventBridge rule", ["labeling job state change", "Completed | Failed | Stopped"])
    d.arrow(
        [(workforce.right, workforce.cy), (gt_job.x, gt_job.cy)], "workers", (workforce.right + 6, workforce.cy - 8)
    )
    d.arrow([(gt_job.right, gt_job.cy), (rule.x, rule.cy)])
    d.arrow([(rule.right, rule.cy), (job_events.x, rule.cy)])

    # Label Studio lane.
    site = Box(40, 435, 270, 110)
    server = Box(360, 435, 270, 160)
    webhook = Box(700, 435, 220, 70)
    reconciler = Box(700, 520, 220, 75)
    d.box(site, "CloudFront (HTTPS)", ["edge function: a coarse filter", "internal load balancer", "workers' browsers"])
    d.box(
        server,
        "Label Studio on ECS Fargate",
        [
            "uwsgi + access rules (labeling_gate)",
            "RDS PostgreSQL, backups",
            "projects: parts 1…n",
            "+ the review project (optional)",
            "images: presigned S3 links",
        ],
    )
    d.box(webhook, "Webhook → function URL", ["secret header, per answer"])
    d.box(reconciler, "Reconciler schedule", ["EventBridge, every 5 minutes", "asks about open jobs"])
    d.arrow([(site.right, site.cy), (server.x, site.cy)], "workers", (site.right + 6, site.cy - 8))
    d.arrow([(server.right, webhook.cy), (webhook.x, webhook.cy)])
    d.arrow([(webhook.right, webhook.cy), (job_events.x, webhook.cy)])
    d.arrow([(reconciler.right, reconciler.cy), (job_events.x, reconciler.cy)])

    # The launcher starts a job on the configured backend.
    d.arrow(
        [(launcher.cx - 30, launcher.bottom), (launcher.cx - 30, 178), (gt_job.cx, 178), (gt_job.cx, gt_job.y)],
        "CreateLabelingJob",
        (gt_job.cx + 8, 196),
    )
    d.arrow(
        [(launcher.cx + 30, launcher.bottom), (launcher.cx + 30, 194), (665, 194), (665, 455), (server.right, 455)],
        "import tasks (API token)",
        (672, 384),
    )

    d.box(
        job_events,
        "Job-events Lambda",
        [
            "a lease per job",
            "reads the results",
            "consolidates annotators",
            "writes the exports",
            "marks the ledger",
            "notifies, once",
        ],
    )

    # Outputs.
    out = 670
    alarms = Box(20, out, 280, 80)
    failed = Box(330, out, 280, 80)
    topic = Box(640, out, 290, 80)
    exports = Box(960, out, 260, 80)
    d.box(
        alarms, "CloudWatch alarms", ["DLQs not empty, errors,", "failed jobs, Label Studio health"], fill=OUTPUT_FILL
    )
    d.box(
        failed, "Failed job events queue", ["after 4 retries; send again", "with aws lambda invoke"], fill=OUTPUT_FILL
    )
    d.box(topic, "SNS results topic", ["job summaries and alarms", "email: notificationEmails"], fill=OUTPUT_FILL)
    d.box(exports, "S3 exports/<job>/", ["coco.json, yolo.tar.gz,", "voc.tar.gz, summary.json"], fill=OUTPUT_FILL)
    d.arrow([(exports.cx, job_events.bottom), (exports.cx, exports.y)])
    d.arrow(
        [(job_events.x + 30, job_events.bottom), (job_events.x + 30, 640), (topic.cx, 640), (topic.cx, topic.y)],
        "summary",
        (topic.cx + 8, 635),
    )
    d.arrow(
        [(job_events.x + 15, job_events.bottom), (job_events.x + 15, 622), (failed.cx, 622), (failed.cx, failed.y)],
        "failed invocations",
        (failed.cx + 8, 617),
    )
    d.arrow(
        [(alarms.cx, alarms.bottom), (alarms.cx, 775), (topic.cx, 775), (topic.cx, topic.bottom)],
        "alarm actions",
        (alarms.cx + 8, 769),
    )

    d.text(WIDTH - 20, HEIGHT - 12, "dashed: optional", size=LABEL_SIZE, anchor="end", fill="#555")
    return d.svg()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="docs/architecture.svg")
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    arguments = parser.parse_args(argv)
    svg = draw()
    if arguments.write:
        OUT.write_text(svg)
        print(f"wrote {OUT.relative_to(ROOT)}")
    else:
        sys.stdout.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
