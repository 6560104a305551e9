"""Folders of photos: the image files under a folder, and class folders named after their class.

Training, the zero-shot report, rollout checks and the load tools all read photos this way.
"""

from pathlib import Path

from animals.errors import UserError
from animals.labels import english_name

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def image_files(folder: Path) -> list[Path]:
    """Every image file under `folder`, sorted."""
    return sorted(path for path in Path(folder).rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def class_folders(root: Path) -> dict[str, Path]:
    """Class name to folder, sorted by class name; refuses empty data sets and empty classes.

    Animals-10's Italian folder names become the English class names."""
    folders = {english_name(folder.name): folder for folder in sorted(Path(root).iterdir()) if folder.is_dir()}
    if not folders:
        raise UserError(f"{root} has no class folders: expected one folder of images per class")
    empty = [name for name, folder in folders.items() if not image_files(folder)]
    if empty:
        raise UserError(f"class folder(s) with no images in {root}: {', '.join(empty)}")
    return dict(sorted(folders.items()))


def photos_in(folder: Path) -> list[Path]:
    """The images under a folder of class folders, or one clear error when there are none."""
    images = image_files(folder) if Path(folder).is_dir() else []
    if not images:
        raise UserError(f"no images in {folder}: pass a folder of class folders of photos")
    return images
