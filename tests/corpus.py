"""Images and non-images made in the tests: odd but valid formats, and inputs a server must refuse."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 320, height: int = 240) -> Image.Image:
    """An RGB test picture with structure in both directions (so rotations are visible)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack([x.repeat(height, 0), y.repeat(width, 1), (x + y) / 2], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def valid_images() -> dict[str, bytes]:
    """One image per supported format and colour mode, each of which the server answers with 200."""
    picture = gradient()
    sixteen_bit = Image.fromarray(np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
    frames = [gradient(), gradient().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "jpeg": encode(picture, "JPEG"),
        "png": encode(picture, "PNG"),
        "grayscale_png": encode(picture.convert("L"), "PNG"),
        "palette_png": encode(picture.convert("P"), "PNG"),
        "rgba_png": encode(picture.convert("RGBA"), "PNG"),
        "sixteen_bit_png": encode(sixteen_bit, "PNG"),
        "cmyk_jpeg": encode(picture.convert("CMYK"), "JPEG"),
        "animated_gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": encode(picture, "WEBP"),
        "bmp": encode(picture, "BMP"),
        "tiff": encode(picture, "TIFF"),
        "exif_rotated_jpeg": exif_rotated_jpeg(),
        "one_pixel_png": encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    }


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """A 320x240 JPEG whose EXIF says to rotate it: displayed upright it is 240x320."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(gradient(), "JPEG", exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    data = encode(gradient(), "JPEG")
    return data[: len(data) // 2]


def corrupt_header_jpeg() -> bytes:
    data = bytearray(encode(gradient(), "JPEG"))
    data[2:40] = b"\x00" * 38
    return bytes(data)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`x`height` pixels: a decompression bomb's calling card."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def invalid_inputs() -> dict[str, bytes]:
    """Bodies the server must answer with 400 and a JSON message."""
    return {
        "plain_text": b"this is not an image\n",
        "html": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "truncated_jpeg": truncated_jpeg(),
        "corrupt_header_jpeg": corrupt_header_jpeg(),
        "decompression_bomb": png_declaring(100_000, 100_000),
        "random_bytes": np.random.default_rng(0).bytes(4096),
    }
