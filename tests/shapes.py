"""A generated, learnable image data set: ten classes, each a colour with a shape on noise, as class folders."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 0, 128),
]  # fmt: skip
SIZE = 96


def shape_image(label: int, rng: np.random.Generator) -> Image.Image:
    """The class's colour, with noise, and a grey shape of random kind, place and size on it."""
    noise = rng.integers(-20, 20, size=(SIZE, SIZE, 3))
    image = Image.fromarray((np.array(COLOURS[label]) + noise).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(SIZE // 8, SIZE // 4))
    x, y = (int(v) for v in rng.integers(radius, SIZE - radius, size=2))
    box = (x - radius, y - radius, x + radius, y + radius)
    grey = int(rng.integers(0, 255))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=(grey, grey, grey))
    return image


def write_shapes(root: Path, per_class: int = 40, seed: int = 0, classes: int = 10) -> Path:
    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            shape_image(label, rng).save(folder / f"{index:03d}.png")
    return root
