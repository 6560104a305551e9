"""Where ImageNet VGG weights come from: a local file named by an environment variable, or torchvision's cache."""

import os
import socket
from pathlib import Path

import torch
from torchvision.models import get_model_weights

from animals.errors import UserError

DOWNLOAD_TIMEOUT_S = 30


def weights_variable(arch: str) -> str:
    """The environment variable that names a local state dict for `arch`, e.g. VGG16_WEIGHTS."""
    return f"{arch.upper()}_WEIGHTS"


def imagenet_weights(arch: str) -> object:
    """torchvision's ImageNet weights entry for `arch` (its metadata is available offline)."""
    return get_model_weights(arch).IMAGENET1K_V1


def imagenet_categories(arch: str = "vgg16") -> list[str]:
    """The 1000 ImageNet class names, from torchvision's weight metadata (no download)."""
    return list(imagenet_weights(arch).meta["categories"])


def imagenet_source(arch: str) -> str:
    """Describe where the ImageNet weights will come from, without loading them."""
    local = os.environ.get(weights_variable(arch))
    if local:
        return f"{weights_variable(arch)}={local}"
    return f"torchvision cache or download ({imagenet_weights(arch).url})"


def imagenet_weights_file(arch: str) -> Path | None:
    """The local file that holds the weights, if there is one (for staleness checks)."""
    local = os.environ.get(weights_variable(arch))
    if local:
        return Path(local)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet_weights(arch).url).name
    return cached if cached.exists() else None


def load_imagenet_state_dict(arch: str) -> dict:
    """Load ImageNet weights for `arch` from the environment variable's file, else torchvision's cache/download."""
    variable = weights_variable(arch)
    local = os.environ.get(variable)
    if local:
        if not Path(local).is_file():
            raise UserError(
                f"{variable}={local} is not a file: point it at a {arch} state dict (.pth), "
                f"or unset it to use torchvision's cache or download"
            )
        return torch.load(local, map_location="cpu", weights_only=True)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return imagenet_weights(arch).get_state_dict(progress=True)
    except OSError as error:
        raise UserError(
            f"no ImageNet {arch} weights: torchvision could not download them ({error}). Either run once on a "
            f"machine with internet (torchvision caches them under {torch.hub.get_dir()}), or set "
            f"{variable}=/path/to/{arch}.pth (a state dict in torchvision's key layout)"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
