"""A TorchServe batch split into the images that decoded and the requests that failed, by position."""

from dataclasses import dataclass, field

import torch

from animals.errors import BadInput


@dataclass
class Batch:
    """The decodable images of a batch (with their positions in it), and the error of every other request."""

    size: int
    images: list[torch.Tensor] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    errors: dict[int, BadInput] = field(default_factory=dict)
