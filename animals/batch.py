"""A TorchServe batch split into the images that decoded and the requests that failed, by position."""

from dataclasses import dataclass, field

import torch

from animals.errors import BadInput


@dataclass(frozen=True)
class ExplanationRequest:
    """What an explanation request asks: the class index to explain (None: the top-1), and the part of the photo the
    model sees, as (left, top, right, bottom) fractions."""

    label: int | None
    region: tuple[float, float, float, float]


@dataclass
class Batch:
    """The decodable images of a batch (with their positions in it), the error of every other request, and which
    requests ask for an explanation."""

    size: int
    images: list[torch.Tensor] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    errors: dict[int, BadInput] = field(default_factory=dict)
    explain: dict[int, ExplanationRequest] = field(default_factory=dict)
