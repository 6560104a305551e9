"""The model: torchvision's VGG with its last layer replaced for the animal classes.

A ModelSpec (saved as model.json beside the weights) says which VGG to build, so that training, offline
prediction and the TorchServe handler build the same network from the same state dict.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

VGG_LAYOUTS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
IMAGENET_CLASSES = 1000
HIDDEN_UNITS = 4096
HEADS = ("linear", "imagenet-groups")


@dataclass(frozen=True)
class ModelSpec:
    """Which network to build.

    width scales every layer's channels and hidden units (1.0 is the real VGG; tests use small widths for speed).
    head "linear" is a trained last layer; "imagenet-groups" keeps the 1000-way ImageNet layer and adds up its
    probabilities per animal (the zero-shot default served before anything is trained).
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
    def load(cls, path: Path) -> "ModelSpec":
        return cls(**json.loads(Path(path).read_text()))


class ImageNetGroups(nn.Module):
    """Adds ImageNet class probabilities into animal classes.

    Returns log-probabilities, so a softmax over the output gives each animal's summed probability,
    renormalised over the animals.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("membership", torch.zeros(IMAGENET_CLASSES, num_classes))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        grouped = logits.softmax(dim=1) @ self.membership
        return grouped.clamp_min(torch.finfo(grouped.dtype).tiny).log()


def build_model(spec: ModelSpec) -> VGG:
    """Build the network with fresh weights; state dict keys follow torchvision's VGG layout."""
    layout = [v if v == "M" else _scaled(v, spec.width) for v in cfgs[VGG_LAYOUTS[spec.arch]]]
    model = VGG(make_layers(layout), num_classes=IMAGENET_CLASSES, init_weights=True)
    if spec.width != 1.0:
        last_channels = [v for v in layout if v != "M"][-1]
        hidden = _scaled(HIDDEN_UNITS, spec.width)
        model.classifier[0] = nn.Linear(last_channels * 7 * 7, hidden)
        model.classifier[3] = nn.Linear(hidden, hidden)
    if spec.head == "linear":
        model.classifier[6] = nn.Linear(model.classifier[3].out_features, spec.num_classes)
    else:
        model.classifier[6] = nn.Linear(model.classifier[3].out_features, IMAGENET_CLASSES)
        model.classifier.append(ImageNetGroups(spec.num_classes))
    return model


def _scaled(units: int, width: float) -> int:
    return max(1, round(units * width))


def load_model(spec: ModelSpec, weights: Path, device: torch.device | str = "cpu") -> VGG:
    """Build the network and load a state dict into it, ready for inference on `device`."""
    with torch.device("meta"):
        model = build_model(spec)
    state_dict = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    model.load_state_dict(state_dict, assign=True)
    return model.to(device).eval()


def imagenet_zero_shot(
    imagenet_state_dict: dict, groups: dict[str, list[int]], arch: str = "vgg16"
) -> tuple[VGG, ModelSpec]:
    """The default model before training: ImageNet VGG whose class probabilities are summed per animal."""
    spec = ModelSpec(arch=arch, num_classes=len(groups), head="imagenet-groups")
    model = build_model(spec)
    membership = torch.zeros(IMAGENET_CLASSES, len(groups))
    for column, indices in enumerate(groups.values()):
        membership[indices, column] = 1.0
    model.load_state_dict({**imagenet_state_dict, "classifier.7.membership": membership})
    return model.eval(), spec
