"""bbox-labeling review: an index.html gallery with each image's boxes and label names drawn over it.

Boxes are an SVG layer over the untouched image (scaled with it), so nothing is re-encoded and the
page shows exactly the pixel coordinates of the export.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labeling_pipeline.consolidation import LOW_AGREEMENT
from labeling_pipeline.exports.formats import LabelSpace, relative_path
from labeling_pipeline.labels import Box, LabeledImage

# High-contrast colours, one per class id (cycled).
PALETTE = ["#ff1744", "#00e676", "#2979ff", "#ffea00", "#d500f9", "#00e5ff", "#ff9100", "#76ff03"]


@dataclass(frozen=True)
class ReviewItem:
    image: LabeledImage
    href: str | None  # path of the picture relative to index.html; None when it could not be found
    # The detector's proposals for the image (labeling.prelabel), drawn dashed beside the final boxes; None when
    # the image had none (held out, the detector failed, or pre-labels were off).
    proposals: tuple[Box, ...] | None = None
    # With several annotators: how well they agreed (consolidation.image_agreement), shown and marked when low; the
    # image's boxes are then the consolidated ones.
    agreement: float | None = None


def colour(class_id: int) -> str:
    return PALETTE[class_id % len(PALETTE)]


def _panel(
    image: LabeledImage, picture: str, boxes: Iterable[Box], labels: LabelSpace, *, dashed: bool, caption: str
) -> str:
    """The picture with `boxes` drawn over it (dashed: a model's proposals)."""
    stroke = max(2, round(max(image.width, image.height) / 300))
    font = max(12, round(image.height / 30))
    dash = f' stroke-dasharray="{3 * stroke} {2 * stroke}"' if dashed else ""
    shapes = []
    for box in boxes:
        class_id = labels.class_id(box.label)
        shapes.append(
            f'<rect x="{box.left:g}" y="{box.top:g}" width="{box.width:g}" height="{box.height:g}" '
            f'fill="none" stroke="{colour(class_id)}" stroke-width="{stroke}"{dash}/>'
            f'<text x="{box.left:g}" y="{max(box.top - stroke, font):g}" font-size="{font}" '
            f'fill="{colour(class_id)}" stroke="#000" stroke-width="{max(1, stroke // 2)}" paint-order="stroke">'
            f"{html.escape(box.label)}</text>"
        )
    small = f"<small>{html.escape(caption)}</small>" if caption else ""
    return (
        f'<div class="panel"><div class="frame">{picture}'
        f'<svg viewBox="0 0 {image.width} {image.height}" preserveAspectRatio="none">{"".join(shapes)}</svg>'
        f"</div>{small}</div>"
    )


def render_gallery(items: Iterable[ReviewItem], labels: LabelSpace, title: str, note: str | None = None) -> str:
    figures = []
    for item in items:
        image = item.image
        name = html.escape(relative_path(image.source_ref))
        if image.failed:
            figures.append(
                f'<figure class="failed"><figcaption>{name}: failed: '
                f"{html.escape(image.failure_reason or '')}</figcaption></figure>"
            )
            continue
        picture = (
            f'<img src="{html.escape(item.href)}" alt="{name}">'
            if item.href
            else f'<div class="missing" style="aspect-ratio:{image.width}/{image.height}">image not found</div>'
        )

        if item.proposals is None:
            panels = _panel(image, picture, image.boxes, labels, dashed=False, caption="")
            figure_class = ""
        else:
            # The model's proposals beside what people kept: what was accepted, moved, deleted and added.
            proposed, final = f"proposed: {len(item.proposals)}", f"final: {len(image.boxes)}"
            panels = _panel(image, picture, item.proposals, labels, dashed=True, caption=proposed) + _panel(
                image, picture, image.boxes, labels, dashed=False, caption=final
            )
            figure_class = ' class="compared"'
        agreement = ""
        if item.agreement is not None:
            low = item.agreement < LOW_AGREEMENT
            agreement = (
                f' <span class="{"low" if low else "agreement"}">{len(image.annotators)} annotators, agreement '
                f"{item.agreement:.2f}{' (low: review it)' if low else ''}</span>"
            )
        figures.append(
            f"<figure{figure_class}>{panels}<figcaption>{name}: {len(image.boxes)} box(es){agreement}"
            "</figcaption></figure>"
        )
    legend = "".join(
        f'<li><span style="background:{colour(index)}"></span>{html.escape(label)}</li>'
        for index, label in enumerate(labels.names)
    )
    note_paragraph = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1rem; background: #fafafa; }}
h1 {{ overflow-wrap: anywhere; font-size: 1.4rem; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; width: 360px; }}
figure.compared {{ width: 730px; display: flex; flex-wrap: wrap; gap: 10px; }}
figure.compared .panel {{ width: 360px; }}
figure.compared figcaption {{ width: 100%; }}
.frame {{ position: relative; line-height: 0; }}
.frame img, .frame .missing {{ width: 100%; display: block; }}
.frame svg {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
.missing {{ background: #ddd; line-height: normal; }}
figure.failed figcaption {{ color: #b00020; }}
span.low {{ color: #b00020; font-weight: bold; }}
p.note {{ background: #fff3cd; border: 2px solid #b58100; padding: .5rem 1rem; font-weight: bold; }}
ul.legend {{ list-style: none; padding: 0; display: flex; gap: 1rem; }}
ul.legend span {{ display: inline-block; width: 1em; height: 1em; margin-right: .3em; vertical-align: middle; }}
</style></head>
<body><h1>{html.escape(title)}</h1>{note_paragraph}<ul class="legend">{legend}</ul>
<div class="gallery">
{"".join(figures)}
</div></body></html>
"""


def local_href(image_path: Path, out_dir: Path) -> str | None:
    if not image_path.is_file():
        return None
    return Path(os.path.relpath(image_path.resolve(), out_dir.resolve())).as_posix()
