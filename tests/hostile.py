"""The hostile corpus: small requests that once cost seconds of CPU or gigabytes of memory, or failed their batch
neighbours (README: Reliability and security), each with the answer it must get. Made by code, so no binary enters the
repository; inputs that `make fuzz` finds are kept beside it as files (fuzz/findings/) and read by the same tests."""

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tests.corpus import encode, png_declaring

FINDINGS = Path(__file__).resolve().parent.parent / "fuzz" / "findings"


@dataclass(frozen=True)
class Hostile:
    """A request body, how it is sent, and the status and reason it must be answered with (reason None: 200)."""

    body: bytes
    status: int
    reason: str | None
    content_type: str = "application/octet-stream"


def thin_png(width: int, height: int) -> bytes:
    """A one-colour PNG of any shape: a 1 x 100000 one is 377 bytes."""
    return encode(Image.new("L", (width, height)), "PNG", optimize=True)


def rle8_bmp(width: int, height: int, commands: bytes = b"\x00\x01") -> bytes:
    """A palette BMP whose pixels are BI_RLE8 `commands` (default: end of bitmap at once). Pillow decodes RLE in a
    Python loop, padding every "end of line" one byte at a time: seconds for a hundred bytes."""
    palette = b"\x00\x00\x00\x00" * 256
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(commands), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(commands), 0, 0, offset) + info + palette + commands


def gif_of(width: int, height: int) -> bytes:
    return encode(Image.new("P", (width, height)), "GIF")


def nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def kserve_v1(images: list[bytes]) -> bytes:
    return json.dumps({"instances": [{"data": base64.b64encode(image).decode()} for image in images]}).encode()


def kserve_v2(images: list[bytes]) -> bytes:
    data = [base64.b64encode(image).decode() for image in images]
    return json.dumps({"inputs": [{"name": "data", "shape": [len(data)], "datatype": "BYTES", "data": data}]}).encode()


def progressive_jpeg(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height)), "JPEG", progressive=True, quality=10)


def one_pixel_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")


def corpus() -> dict[str, Hostile]:
    """Every hostile input, by name."""
    padded_rows = b"\x01\x00\x00\x00" * 30 + b"\x00\x01"  # one pixel, then "end of line": a row of padding each
    pixel = one_pixel_png()
    cases = {
        "thin_png_1x100000": Hostile(thin_png(1, 100_000), 400, "extreme_aspect_ratio"),
        "thin_png_100000x1": Hostile(thin_png(100_000, 1), 400, "extreme_aspect_ratio"),
        "thin_gif_3x65535": Hostile(gif_of(3, 65_535), 400, "extreme_aspect_ratio"),
        "rle_bmp_25000000x2": Hostile(rle8_bmp(25_000_000, 2), 400, "too_many_pixels"),
        "rle_bmp_rows_7000x7000": Hostile(rle8_bmp(7000, 7000, padded_rows), 400, "too_many_pixels"),
        "rle_bmp_rows_2000x2000": Hostile(rle8_bmp(2000, 2000, padded_rows), 400, "too_many_pixels"),
        "rle_bmp_rows_1000x1000": Hostile(rle8_bmp(1000, 1000, b"\x01\x00\x00\x00" * 1000), 200, None),
        "png_bomb_100000x100000": Hostile(png_declaring(100_000, 100_000), 400, "too_many_pixels"),
        "png_rgb_7000x7000": Hostile(encode(Image.new("RGB", (7000, 7000)), "PNG"), 400, "too_many_pixels"),
        "png_rgb_4000x4000": Hostile(encode(Image.new("RGB", (4000, 4000)), "PNG"), 200, None),
        "progressive_jpeg_7000x7000": Hostile(progressive_jpeg(7000, 7000), 200, None),
        "nested_json_1000": Hostile(nested_json(1000), 400, "bad_json", "application/json"),
        "nested_json_1000_as_bytes": Hostile(nested_json(1000), 400, "bad_json"),
        "nested_arrays_100000": Hostile(b'{"instances": ' + b"[" * 100_000, 400, "bad_json"),
        "kserve_v1_100_images": Hostile(kserve_v1([pixel] * 100), 413, "too_many_images", "application/json"),
        "kserve_v2_400_images": Hostile(kserve_v2([pixel] * 400), 413, "too_many_images", "application/json"),
        "kserve_v1_bad_middle": Hostile(kserve_v1([pixel, b"not an image", pixel]), 400, "not_image"),
        "json_with_bom": Hostile(b"\xef\xbb\xbf" + json.dumps({"data": b64(pixel)}).encode(), 200, None),
        "json_after_whitespace": Hostile(b" \r\n\t" + json.dumps({"data": b64(pixel)}).encode(), 200, None),
    }
    for path in sorted(FINDINGS.glob("*/*")) if FINDINGS.is_dir() else []:
        cases[f"found_{path.parent.name}_{path.name}"] = Hostile(path.read_bytes(), 0, None)  # any 2xx/4xx, no 5xx
    return cases


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
