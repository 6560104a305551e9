"""The zero-shot default: ten animal probabilities from the 1000 scores of any ImageNet-1k classifier.

Each animal scores the *mean* probability of its ImageNet classes (animals.labels), and the ten scores are
renormalised. The mean, not the sum: ImageNet's classes are equally frequent, so a network that is unsure spreads
probability over many classes, and a sum would hand that spread to the animal with the most classes (dog has 118,
squirrel one). Dividing by the class count gives every animal the same prior.
"""

import torch
from torch import nn

from animals.labels import ANIMALS, imagenet_indices_by_animal
from animals.pretrained import imagenet_categories

IMAGENET_CLASSES = 1000


def membership() -> torch.Tensor:
    """A 1000 x 10 matrix: column a holds 1/n for each of animal a's n ImageNet classes, 0 elsewhere."""
    matrix = torch.zeros(IMAGENET_CLASSES, len(ANIMALS))
    for column, indices in enumerate(imagenet_indices_by_animal(imagenet_categories()).values()):
        matrix[indices, column] = 1.0 / len(indices)
    return matrix


def animal_log_scores(imagenet_logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """N x 10 log mean probabilities: logits whose softmax is animal_probabilities."""
    weights = membership() if weights is None else weights
    mean = imagenet_logits.softmax(dim=1) @ weights.to(imagenet_logits.dtype)
    return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()


def animal_probabilities(imagenet_logits: torch.Tensor) -> torch.Tensor:
    """N x 1000 ImageNet logits to N x 10 probabilities in the order of animals.labels.ANIMALS (rows sum to 1)."""
    return animal_log_scores(imagenet_logits).softmax(dim=1)


class ZeroShotHead(nn.Module):
    """animal_log_scores as the last layer of an ImageNet network, so the served model answers the ten animals."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weights", membership(), persistent=False)

    def forward(self, imagenet_logits: torch.Tensor) -> torch.Tensor:
        return animal_log_scores(imagenet_logits, self.weights)
