"""Corrected photos on disk, one file per content digest: <CORRECTIONS_DIR>/photos/<2 hex>/<digest>.<kind>."""

import hashlib
import io
import os
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from animals.errors import BadInput

KINDS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


def digest(photo: bytes) -> str:
    return hashlib.sha256(photo).hexdigest()


def kind(photo: bytes) -> str:
    """The suffix for the photo's format, read from its header only (TorchServe has already decoded it whole)."""
    try:
        with Image.open(io.BytesIO(photo)) as image:
            found = image.format
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise BadInput("not an image in a supported format") from error
    if found not in KINDS:
        raise BadInput(f"{found} images are not kept: send JPEG, PNG, GIF, WEBP, BMP or TIFF")
    return KINDS[found]


def photos_dir() -> Path:
    return Path(settings.CORRECTIONS_DIR) / "photos"


def path_of(file_name: str) -> Path:
    return photos_dir() / file_name[:2] / file_name


def save(photo: bytes, file_name: str) -> Path:
    """Write the photo under its name, whole or not at all (a temporary file renamed into place)."""
    path = path_of(file_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as partial:
        partial.write(photo)
    os.replace(partial.name, path)
    return path


def delete(file_name: str) -> None:
    path_of(file_name).unlink(missing_ok=True)
