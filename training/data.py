"""Data sets for training: find the class folders, split them reproducibly, and load images with the serving decoder.

A data directory is the Animals-10 download as it comes (raw-img/ with Italian folder names), any folder of class
folders, or a folder already split into train/, valid/ (or val/) and test/. A run may read several (the sample photos
and the exported corrections, for one).
"""

import math
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, default_collate

from animals.errors import BadInput, UserError
from animals.folders import class_folders, image_files
from animals.preprocessing import decode_image
from animals.run import Item, Split

SPLITS = ("train", "valid", "test")
SPLIT_FOLDERS = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}
HELD_OUT_FRACTION = 0.1  # of each class for validation, and as much again for test


def dataset_root(data_dir: Path) -> Path:
    """The folder that holds the class folders: Animals-10's raw-img/ when the download is given as it comes."""
    data_dir = Path(data_dir)
    return data_dir / "raw-img" if (data_dir / "raw-img").is_dir() else data_dir


def make_split(data_dirs: Path | Sequence[Path], seed: int = 0) -> Split:
    """Read data directories, each in any of its three layouts, into one Split (stratified when not pre-split:
    held_out_size). Several directories (the base photos and exported corrections, say) are split each on its own
    and joined: the classes are all of theirs, and the paths are relative to the directories' common folder."""
    folders = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
    splits = [_folder_split(folder, seed) for folder in folders]
    return splits[0] if len(splits) == 1 else _joined(splits)


def photos_per_folder(split: Split, data_dirs: Sequence[Path]) -> dict[str, dict[str, int]]:
    """How many photos of each class every data directory gave, all parts together."""
    counts: dict[str, dict[str, int]] = {}
    for folder in data_dirs:
        prefix = _relative(dataset_root(folder), split.root)
        classes = [split.class_names[label] for items in split.parts.values() for path, label in items
                   if prefix == Path(".") or Path(path).is_relative_to(prefix)]  # fmt: skip
        counts[str(folder)] = dict(sorted(Counter(classes).items()))
    return counts


def _relative(folder: Path, root: Path) -> Path:
    return Path(folder).resolve().relative_to(Path(root).resolve())


def _joined(splits: list[Split]) -> Split:
    class_names = sorted({name for split in splits for name in split.class_names})
    root = Path(os.path.commonpath([split.root.resolve() for split in splits]))
    parts: dict[str, list[Item]] = {part: [] for part in SPLITS}
    for split in splits:
        prefix = _relative(split.root, root)
        for part, items in split.parts.items():
            parts[part] += [(str(prefix / path), class_names.index(split.class_names[label])) for path, label in items]
    return Split(root, class_names, parts)


def _folder_split(data_dir: Path, seed: int) -> Split:
    data_dir = dataset_root(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data directory {data_dir} does not exist")
    presplit = {part: _first_existing(data_dir, SPLIT_FOLDERS[part]) for part in SPLITS}
    if all(presplit.values()):
        return _presplit(data_dir, presplit)
    return _stratified(data_dir, seed)


def _first_existing(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def _presplit(root: Path, folders: dict[str, Path]) -> Split:
    class_names = list(class_folders(folders["train"]))
    parts = {}
    for part, folder in folders.items():
        classes = class_folders(folder)
        unknown = set(classes) - set(class_names)
        if unknown:
            raise UserError(f"{folder} has classes that train/ lacks: {', '.join(sorted(unknown))}")
        parts[part] = [
            (str(path.relative_to(root)), class_names.index(name))
            for name, class_folder in classes.items()
            for path in image_files(class_folder)
        ]
    return Split(root, class_names, parts)


def _stratified(root: Path, seed: int) -> Split:
    classes = class_folders(root)
    rng = random.Random(seed)
    parts: dict[str, list[Item]] = {part: [] for part in SPLITS}
    for label, folder in enumerate(classes.values()):
        files = [str(path.relative_to(root)) for path in image_files(folder)]
        rng.shuffle(files)
        n_valid = n_test = held_out_size(len(files))
        n_train = len(files) - n_valid - n_test
        parts["train"] += [(path, label) for path in files[:n_train]]
        parts["valid"] += [(path, label) for path in files[n_train : n_train + n_valid]]
        parts["test"] += [(path, label) for path in files[n_train + n_valid :]]
    return Split(root, list(classes), parts)


def held_out_size(images: int) -> int:
    """Images of a class for validation (and as many for test): 10%, rounded half up, at least one from 3 images.

    With 16 images a class that is 12/2/2, with 25 it is 19/3/3, with 3 it is 1/1/1, with 2 it is 2/0/0."""
    if images < 3:
        return 0
    return max(1, math.floor(images * HELD_OUT_FRACTION + 0.5))


class ImageDataset(Dataset):
    """Images of one part of a split, decoded exactly as the server decodes them.

    An unreadable file yields None instead of failing the run; `skip_unreadable` drops it from the batch and reports it.
    """

    def __init__(self, root: Path, items: list[Item], transform: Callable) -> None:
        self.root = Path(root)
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, str]:
        path, label = self.items[index]
        try:
            image = decode_image((self.root / path).read_bytes())
        except (BadInput, OSError):
            return None, label, path
        return self.transform(image), label, path


@dataclass
class LoadedBatch:
    images: torch.Tensor
    labels: torch.Tensor
    unreadable: list[str]


def skip_unreadable(samples: list[tuple[torch.Tensor | None, int, str]]) -> LoadedBatch:
    """Collate a batch, leaving out (and naming) the files that could not be decoded."""
    readable = [(image, label) for image, label, _ in samples if image is not None]
    unreadable = [path for image, _, path in samples if image is None]
    images, labels = default_collate(readable) if readable else (torch.empty(0), torch.empty(0, dtype=torch.long))
    return LoadedBatch(images, labels, unreadable)


def as_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch as the model takes it: images channels-last, as the model's weights are (CPU convolutions train and
    run about 1.4x faster so); the cached path's feature rows as they are."""
    return images.to(device, memory_format=torch.channels_last) if images.dim() == 4 else images.to(device)
