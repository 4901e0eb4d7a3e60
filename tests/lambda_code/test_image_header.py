"""Image sizes from file headers, checked against Pillow writing each format (the backends' image suffixes)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from labeling_pipeline.image_header import image_size

SIZES = [(1, 1), (640, 480), (451, 300), (3000, 17), (17, 3000)]


def encoded(size: tuple[int, int], fmt: str, **options: object) -> bytes:
    body = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(body, format=fmt, **options)
    return body.getvalue()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 40_000}),  # a camera's EXIF before the frame
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_the_header_gives_the_size_pillow_wrote(size: tuple[int, int], fmt: str, options: dict[str, object]) -> None:
    assert image_size(encoded(size, fmt, **options)[: 256 * 1024]) == size


def test_an_unknown_or_cut_header_gives_no_size() -> None:
    assert image_size(b"not an image at all") is None
    assert image_size(b"") is None
    assert image_size(encoded((50, 40), "PNG")[:20]) is None
    jpeg = encoded((50, 40), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 1000)
    assert image_size(jpeg[:200]) is None  # the frame header is past the cut
