"""What an int8 archive is built from and checked against: the images that calibrate its activations, and its top-1
agreement with the float model on images not used for calibration.

A run calibrates on its own training split and is checked on its validation and test splits; the ImageNet default,
or a folder the user names, is halved: every other image calibrates, the others check.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from animals import quantization
from animals.acceleration import InferenceModel
from animals.errors import BadInput, UserError
from animals.folders import photos_in
from animals.inference_settings import InferenceSettings
from animals.model import ModelSpec, load_model
from animals.preprocessing import decode_image, eval_transform
from animals.run import Split
from serving.config import SAMPLE_IMAGES

CALIBRATION_IMAGES = 256  # at most; on a small shapes model 64 gave 98.7% agreement and 256 gave 99.3% (measured)
BATCH = 8
MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class ImagePlan:
    """Which images calibrate the int8 model, and which check it."""

    calibration: list[Path]
    held_out: list[Path]
    description: str


def image_plan(run: Path | None, folder: Path | None, count: int = CALIBRATION_IMAGES) -> ImagePlan:
    """The images to calibrate on and to check with, for a run (its splits) or a folder (halved)."""
    if folder is None and run is not None:
        split = Split.load(run / "split.json") if (run / "split.json").is_file() else None
        if split is None or not split.root.is_dir():
            raise UserError(f"the training images of {run} are not where split.json says: pass CALIBRATION=folder")
        train = [split.root / path for path, _ in split.parts["train"]]
        held_out = [split.root / path for part in ("valid", "test") for path, _ in split.parts[part]]
        return ImagePlan(_spread(train, count), held_out, f"the training split of {run}; checked on its valid+test")
    folder = Path(folder or SAMPLE_IMAGES)
    images = photos_in(folder)
    return ImagePlan(_spread(images[0::2], count), images[1::2], f"every other image of {folder}; checked on the rest")


def _spread(images: list[Path], count: int) -> list[Path]:
    """`count` images taken evenly across the list (class folders stay represented)."""
    step = max(1, len(images) / count)
    return [images[int(index * step)] for index in range(min(count, len(images)))]


def float_model(folder: Path, weights: Path) -> torch.nn.Module:
    """The staged model in fp32, as the int8 program is made from."""
    return load_model(ModelSpec.load(folder / "model.json"), weights)


def batches(images: list[Path], description: str) -> list[torch.Tensor]:
    """Preprocessed images, as the server preprocesses them, in batches; unreadable files are left out."""
    transform, tensors = eval_transform(), []
    for path in tqdm(images, desc=description, unit="image", leave=False, disable=None):
        try:
            tensors.append(transform(decode_image(path.read_bytes())))
        except (BadInput, OSError):
            continue
    if not tensors:
        raise UserError(f"none of the {len(images)} images to {description} could be read")
    return [torch.stack(tensors[start : start + BATCH]) for start in range(0, len(tensors), BATCH)]


def quantize_into(folder: Path, weights: Path, plan: ImagePlan) -> None:
    """Quantize the staged model, calibrated on the plan's images, into folder/model.int8.pt2."""
    print(f"Quantizing to int8, calibrated on {len(plan.calibration)} images: {plan.description}")
    program = quantization.quantize(float_model(folder, weights), batches(plan.calibration, "calibrate"))
    quantization.save(program, folder / quantization.PROGRAM)


def compile_ahead(folder: Path) -> None:
    """The staged int8 program compiled for this machine's kind of CPU, as workers load it."""
    print("Compiling the int8 program ahead of time (AOTInductor), so that workers start without compiling it")
    quantization.compile_ahead(folder)


def agreement(folder: Path, weights: Path, plan: ImagePlan) -> float:
    """Top-1 agreement of the compiled int8 program with the fp32 model on the plan's held-out images."""
    print(f"Checking int8 against fp32 on {len(plan.held_out)} held-out images")
    fp32 = InferenceModel(folder, InferenceSettings(precision="fp32", channels_last=False), weights=str(weights))
    int8 = InferenceModel(folder, InferenceSettings(precision="int8"), max_batch=BATCH)
    pairs = [(fp32(images).argmax(dim=1), int8(images).argmax(dim=1)) for images in batches(plan.held_out, "check")]
    return sum(int((a == b).sum()) for a, b in pairs) / sum(len(a) for a, _ in pairs)
