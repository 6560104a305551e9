"""Grad-CAM: where in the image the model found the evidence for a label.

The map is the last convolutional block's activations (14 x 14 for VGG at 224), each channel weighted by the mean
gradient of the label's score with respect to it, rectified and scaled to [0, 1]. The score is what the softmax turns
into the answer: the trained layer's logit, or the zero-shot head's log animal score. It is a coarse map of what
raised the score, not a segmentation of the animal.

The model runs eagerly (a compiled or int8 program has no gradients), forward once, and backward only from the score
to the last block: about the cost of one prediction, whose probabilities it also gives. Nothing here touches the
prediction path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

if TYPE_CHECKING:
    from torchvision.models.vgg import VGG

METHOD = "grad-cam"
PALETTE = np.array([(0, 0, 128), (0, 128, 255), (0, 220, 120), (255, 220, 0), (255, 64, 0)], dtype=np.float32)
OVERLAY_OPACITY = 0.5


class GradCam:
    """Grad-CAM for a torchvision VGG (which every animals model is), run in `dtype`."""

    def __init__(self, model: VGG, dtype: torch.dtype = torch.float32) -> None:
        self.model = model.eval()
        self.dtype = dtype
        self.model.requires_grad_(False)  # gradients are needed for the activations only, never for the weights

    def __call__(self, images: torch.Tensor, labels: list[int | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """N preprocessed images and the label to explain for each (None: its top-1 label): N maps over the last
        block's grid, in [0, 1], and the N x classes probabilities of the same forward pass."""
        parameter = next(self.model.parameters())
        images = images.to(device=parameter.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            activations = self.model.features[:-1](images)  # the last block, before its max pooling
        activations.requires_grad_(True)
        with torch.enable_grad():
            scores = self._head(activations).float()
            chosen = [int(scores[row].argmax()) if label is None else label for row, label in enumerate(labels)]
            picked = scores[torch.arange(len(chosen)), torch.tensor(chosen)]
            (gradients,) = torch.autograd.grad(picked.sum(), activations)
        channel_weights = gradients.float().mean(dim=(2, 3), keepdim=True)
        maps = (channel_weights * activations.detach().float()).sum(dim=1).relu()
        peaks = maps.amax(dim=(1, 2), keepdim=True)
        maps = maps / peaks.where(peaks > 0, torch.ones_like(peaks))
        return maps.cpu(), scores.detach().softmax(dim=1).cpu()

    def _head(self, activations: torch.Tensor) -> torch.Tensor:
        """The rest of VGG.forward after the last block: its max pooling, the average pooling and the classifier."""
        pooled = self.model.avgpool(self.model.features[-1](activations))
        return self.model.classifier(torch.flatten(pooled, 1))


Region = tuple[float, float, float, float]  # (left, top, right, bottom) as fractions of the photo


def overlay(image: Image.Image, heatmap: torch.Tensor, region: Region, opacity: float = OVERLAY_OPACITY) -> Image.Image:
    """The photo with the heatmap over the region the model saw (fractions of the photo, see seen_region), upscaled
    smoothly and coloured from dark blue (nothing) to red (most)."""
    image = image.convert("RGB")
    left, top, right, bottom = (round(f * side) for f, side in zip(region, image.size * 2, strict=True))
    smooth = nn.functional.interpolate(heatmap[None, None].float(), size=(bottom - top, right - left), mode="bicubic")
    values = smooth[0, 0].clamp(0, 1).numpy() * (len(PALETTE) - 1)
    lower = np.floor(values).astype(int).clip(0, len(PALETTE) - 2)
    fraction = (values - lower)[..., None]
    colours = PALETTE[lower] * (1 - fraction) + PALETTE[lower + 1] * fraction
    pixels = np.asarray(image, dtype=np.float32).copy()
    pixels[top:bottom, left:right] = pixels[top:bottom, left:right] * (1 - opacity) + colours * opacity
    return Image.fromarray(pixels.round().astype(np.uint8))
