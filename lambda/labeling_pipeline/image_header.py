"""An image's width and height from the first bytes of its file, for a result that does not say them (Label
Studio records the size only inside a box, so an image answered with no box has none).

Hand-written rather than Pillow: the functions' asset is plain source with no build step, and Pillow is a
platform-specific wheel (about 12 MB installed) that would need one. The formats are the backends' image
suffixes: PNG, JPEG, GIF, BMP and WebP; the sizes sit in their first bytes (JPEG's in the first SOF segment).
"""

from __future__ import annotations

import struct

# Enough for every header here, and for a JPEG whose SOF follows EXIF and ICC segments of a camera's photo.
HEADER_BYTES = 256 * 1024
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): SOF0-SOF15 except DHT (C4),
# JPG (C8) and DAC (CC), from ITU T.81 table B.1.
JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(header: bytes) -> tuple[int, int] | None:
    """(width, height) from a file's first bytes, or None when the format is not known or the header is cut."""
    try:
        if header.startswith(b"\x89PNG\r\n\x1a\n") and header[12:16] == b"IHDR":
            width, height = struct.unpack(">II", header[16:24])
            return int(width), int(height)
        if header[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", header[6:10])
            return int(width), int(height)
        if header.startswith(b"BM"):
            width, height = struct.unpack("<ii", header[18:26])
            return abs(int(width)), abs(int(height))  # a negative height marks a top-down bitmap
        if header.startswith(b"RIFF") and header[8:12] == b"WEBP":
            return _webp_size(header)
        if header.startswith(b"\xff\xd8"):
            return _jpeg_size(header)
    except struct.error:
        return None
    return None


def _webp_size(header: bytes) -> tuple[int, int] | None:
    chunk = header[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(header[24:27], "little") + 1
        height = int.from_bytes(header[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", header[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(header[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(header: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(header):
        if header[position] != 0xFF:
            return None
        marker = header[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            position += 2
            continue
        (length,) = struct.unpack(">H", header[position + 2 : position + 4])
        if marker in JPEG_SOF_MARKERS:
            height, width = struct.unpack(">HH", header[position + 5 : position + 9])
            return int(width), int(height)
        position += 2 + int(length)
    return None
