"""Image decoding and the evaluation transform, defined once for training and serving (like torchvision's presets)."""

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from animals.errors import BadInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_SIZE = 256
CROP_SIZE = 224
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass(frozen=True)
class DecodeLimits:
    """What one image may cost, checked from its header before a pixel is decoded (model-config.yaml's handler
    section sets them; README: Reliability and security). Measured on one core: a 16-megapixel PNG costs 0.3 s and
    50 MB to decode; a 1-megapixel RLE-compressed BMP about 0.1 s."""

    max_pixels: int = 50_000_000  # JPEG: decoded straight to a reduced scale (draft mode)
    max_full_pixels: int = 16_000_000  # every other format decodes every pixel
    max_aspect_ratio: float = 20.0  # Resize(256) makes the long side this many times 256
    max_slow_pixels: int = 1_000_000  # what Pillow decodes in Python, pixel by pixel (RLE-compressed BMP)

    @classmethod
    def from_config(cls, settings: dict) -> "DecodeLimits":
        """The limits of model-config.yaml's handler section (keys as the README names them), defaults elsewhere."""
        return cls(
            max_pixels=int(settings.get("max_image_pixels", cls.max_pixels)),
            max_full_pixels=int(settings.get("max_full_decode_pixels", cls.max_full_pixels)),
            max_aspect_ratio=float(settings.get("max_aspect_ratio", cls.max_aspect_ratio)),
            max_slow_pixels=int(settings.get("max_slow_decode_pixels", cls.max_slow_pixels)),
        )


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image, or raise BadInput saying why not.

    Only the header is read before the limits are checked, so a decompression bomb, a thin image that the resize
    would blow up, or a slow format's large image is refused before it costs anything. Large JPEGs are decoded at a
    reduced scale that keeps their shorter side at least RESIZE_SIZE. GIFs give their first frame; EXIF orientation
    is applied; any colour mode becomes RGB.
    """
    if not data:
        raise BadInput("the request has no image: the body is empty", reason="empty")
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as error:
        raise _too_many_pixels("far more", limits.max_pixels) from error
    except Exception as error:  # Pillow raises many types on hostile bytes; all mean "not an image".
        raise BadInput(
            f"not an image in a supported format ({', '.join(IMAGE_FORMATS)})",
            reason="not_image",
        ) from error
    check_limits(image, limits)
    if image.format == "JPEG":
        # libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size while both sides stay at least RESIZE_SIZE, which
        # the resize then brings down anyway: a 12-megapixel photo decodes about ten times faster.
        image.draft("RGB", (RESIZE_SIZE, RESIZE_SIZE))
    try:
        image.load()
        return _to_rgb(ImageOps.exif_transpose(image))
    except Exception as error:  # truncated or corrupt pixel data, bad EXIF: the image cannot be read.
        raise BadInput(
            f"the image could not be decoded, it may be truncated or corrupt ({error})",
            reason="corrupt_image",
        ) from error


def check_limits(image: Image.Image, limits: DecodeLimits) -> None:
    """Raise BadInput when an opened (not yet decoded) image would cost more than `limits` allow."""
    width, height = image.size
    if min(width, height) < 1:
        raise BadInput(f"the image has no pixels ({width}x{height})", reason="not_image")
    if image.format == "JPEG":
        limit, kind = limits.max_pixels, ""
    elif any(tile.codec_name in Image.DECODERS for tile in image.tile):  # Pillow's decoders written in Python
        limit, kind = limits.max_slow_pixels, f" for this {image.format} encoding, which decodes slowly"
    else:
        limit, kind = limits.max_full_pixels, f" for {image.format}" if image.format else ""
    if width * height > limit:
        raise _too_many_pixels(f"{width}x{height}", limit, kind)
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise BadInput(
            f"the image is {width}x{height}: its sides differ more than {limits.max_aspect_ratio:g} times "
            "(crop it first)",
            reason="extreme_aspect_ratio",
        )


def _too_many_pixels(size: str, max_pixels: int, kind: str = "") -> BadInput:
    return BadInput(
        f"the image is too large: {size} pixels, the limit{kind} is {max_pixels:,} (resize it first)",
        reason="too_many_pixels",
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float32)
        image = Image.fromarray((pixels / 257.0).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def eval_transform() -> Callable[[Image.Image], torch.Tensor]:
    """The evaluation and serving transform: torchvision's Resize(256), CenterCrop(224), ToTensor and ImageNet
    Normalize, computed as torchvision computes them (test_preprocessing holds the tensors equal), without importing
    torchvision, which would add 2.9 s and 160 MiB to every worker's start (measured). Training's augmentations,
    which only training runs, use torchvision itself (training.augmentation)."""
    return _eval_tensor


def _eval_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as the model's 3 x 224 x 224 input."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    resized_long = int(RESIZE_SIZE * long / short)  # torchvision truncates the long side
    size = (RESIZE_SIZE, resized_long) if width <= height else (resized_long, RESIZE_SIZE)
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (round((side - CROP_SIZE) / 2) for side in size)  # as torchvision rounds: half to even
    image = image.crop((left, top, left + CROP_SIZE, top + CROP_SIZE))
    pixels = torch.from_numpy(np.array(image, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    mean, std = (torch.tensor(values).view(3, 1, 1) for values in (IMAGENET_MEAN, IMAGENET_STD))
    return pixels.to(torch.float32).div(255).sub_(mean).div_(std)


def seen_region(width: int, height: int) -> tuple[float, float, float, float]:
    """The part of a width x height image that eval_transform keeps (its centre crop), as (left, top, right, bottom)
    fractions of the image: where a map over the model's input lies on the photo."""
    scale = RESIZE_SIZE / min(width, height)
    half_width, half_height = CROP_SIZE / 2 / (width * scale), CROP_SIZE / 2 / (height * scale)
    return (0.5 - half_width, 0.5 - half_height, 0.5 + half_width, 0.5 + half_height)
