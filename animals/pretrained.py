"""Where ImageNet VGG weights come from: a local file named by an environment variable, or torchvision's cache."""

import os
import socket
from pathlib import Path

import torch

from animals.errors import UserError

DOWNLOAD_TIMEOUT_S = 30


def weights_variable(arch: str) -> str:
    """The environment variable that names a local state dict for `arch`, e.g. VGG16_WEIGHTS."""
    return f"{arch.upper()}_WEIGHTS"


def imagenet_weights(arch: str) -> object:
    """torchvision's ImageNet weights entry for `arch` (its metadata is available offline). torchvision is imported
    only here, where it is used: serving an int8 program never needs it (see animals.model._network)."""
    from torchvision.models import get_model_weights

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


def imagenet_weights_file(arch: str) -> Path:
    """The local file of ImageNet weights for `arch`: the environment variable's, else torchvision's cache, which is
    filled by one download the first time."""
    variable = weights_variable(arch)
    local = os.environ.get(variable)
    if local:
        if not Path(local).is_file():
            raise UserError(
                f"{variable}={local} is not a file: point it at a {arch} state dict (.pth), "
                f"or unset it to use torchvision's cache or download"
            )
        return Path(local)
    url = imagenet_weights(arch).url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cached.is_file():
        _download(url, cached, arch)
    return cached


def _download(url: str, path: Path, arch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=path.stem.rsplit("-", 1)[-1], progress=True)
    except OSError as error:
        raise UserError(
            f"no ImageNet {arch} weights: torchvision could not download them ({error}). Either run once on a "
            f"machine with internet (torchvision caches them under {torch.hub.get_dir()}), or set "
            f"{weights_variable(arch)}=/path/to/{arch}.pth (a state dict in torchvision's key layout)"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)


def load_imagenet_state_dict(arch: str) -> dict:
    """ImageNet weights for `arch`, from imagenet_weights_file."""
    return torch.load(imagenet_weights_file(arch), map_location="cpu", weights_only=True)
