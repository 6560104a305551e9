"""The model: torchvision's VGG with its last layer replaced for the animal classes.

A ModelSpec (saved as model.json beside the weights) says which VGG to build, so that training, offline
prediction and the TorchServe handler build the same network from the same state dict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from animals.zero_shot import IMAGENET_CLASSES, ZeroShotHead

if TYPE_CHECKING:
    from torchvision.models.vgg import VGG

VGG_LAYOUTS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
HIDDEN_UNITS = 4096
HEADS = ("linear", "imagenet-groups")


@dataclass(frozen=True)
class ModelSpec:
    """Which network to build.

    width scales every layer's channels and hidden units (1.0 is the real VGG; tests use small widths for speed).
    head "linear" is a trained last layer; "imagenet-groups" keeps the 1000-way ImageNet layer and groups its
    scores into animals with animals.zero_shot (the zero-shot default served before anything is trained).
    """

    arch: str = "vgg16"
    num_classes: int = 10
    width: float = 1.0
    head: str = "linear"

    def __post_init__(self) -> None:
        if self.arch not in VGG_LAYOUTS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(VGG_LAYOUTS)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        return cls(**json.loads(Path(path).read_text()))


def build_model(spec: ModelSpec) -> VGG:
    """Build the network with fresh weights; state dict keys follow torchvision's VGG layout."""
    return _with_head(_network(spec), spec)


def _network(spec: ModelSpec) -> VGG:
    """The VGG whose state dict a run's model.pt (or ImageNet's weights, for the zero-shot head) holds. torchvision
    is imported here, not with the module: an int8 worker, which runs a compiled program, never builds the network
    (nor pays torchvision's 2.9 s and 160 MiB at start) until it explains."""
    from torchvision.models.vgg import VGG, cfgs, make_layers

    layout = [v if v == "M" else _scaled(v, spec.width) for v in cfgs[VGG_LAYOUTS[spec.arch]]]
    model = VGG(make_layers(layout), num_classes=IMAGENET_CLASSES, init_weights=True)
    if spec.width != 1.0:
        last_channels = [v for v in layout if v != "M"][-1]
        hidden = _scaled(HIDDEN_UNITS, spec.width)
        model.classifier[0] = nn.Linear(last_channels * 7 * 7, hidden)
        model.classifier[3] = nn.Linear(hidden, hidden)
    outputs = spec.num_classes if spec.head == "linear" else IMAGENET_CLASSES
    model.classifier[6] = nn.Linear(model.classifier[3].out_features, outputs)
    return model


def _with_head(model: VGG, spec: ModelSpec) -> VGG:
    """The zero-shot head turns the 1000 ImageNet scores into the animals; it has no weights of its own."""
    if spec.head == "imagenet-groups":
        model.classifier.append(ZeroShotHead())
    return model


def _scaled(units: int, width: float) -> int:
    return max(1, round(units * width))


def load_model(spec: ModelSpec, weights: Path | dict[str, torch.Tensor], device: torch.device | str = "cpu") -> VGG:
    """Build the network and load a state dict (or the file that holds one) into it, ready for inference on
    `device`."""
    with torch.device("meta"):
        model = _network(spec)
    if not isinstance(weights, dict):
        weights = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    model.load_state_dict(weights, assign=True)
    return _with_head(model, spec).to(device).eval()
