"""A TorchServe batch split into the images that decoded and the requests that failed, by position."""

from dataclasses import dataclass, field

import torch

from animals.errors import RequestError
from animals.kserve import KServeRequest


@dataclass(frozen=True)
class ExplanationRequest:
    """What an explanation request asks: the class index to explain (None: the top-1), and the part of the photo the
    model sees, as (left, top, right, bottom) fractions."""

    label: int | None
    region: tuple[float, float, float, float]


@dataclass
class Batch:
    """The decodable images of a batch (with the position of each one's request: a KServe request may hold several),
    the error of every other request, which requests ask for an explanation, and which are KServe requests."""

    size: int
    images: list[torch.Tensor] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    errors: dict[int, RequestError] = field(default_factory=dict)
    explain: dict[int, ExplanationRequest] = field(default_factory=dict)
    kserve: dict[int, KServeRequest] = field(default_factory=dict)

    def stacked(self, rows: list[int]) -> torch.Tensor:
        """The images of `rows` as one model input."""
        return torch.stack([self.images[row] for row in rows])
