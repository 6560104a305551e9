"""A generated, learnable image data set: ten classes, each a colour with a grey shape on noise, as class folders.

The shape's place is random, so a model that learnt the colour can be asked where it looked (boxes.json records
each shape's bounding box).
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 0, 128),
]  # fmt: skip
SIZE = 96
BOXES = "boxes.json"


def shape_image(label: int, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The class's colour, with noise, and a grey shape of random kind, place and size; and the shape's box."""
    noise = rng.integers(-20, 20, size=(SIZE, SIZE, 3))
    image = Image.fromarray((np.array(COLOURS[label]) + noise).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(SIZE // 8, SIZE // 4))
    x, y = (int(v) for v in rng.integers(radius, SIZE - radius, size=2))
    box = (x - radius, y - radius, x + radius, y + radius)
    grey = int(rng.integers(0, 255))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=(grey, grey, grey))
    return image, box


def write_shapes(root: Path, per_class: int = 40, seed: int = 0, classes: int = 10) -> Path:
    """Class folders class_0 ... of PNGs under root, and root/boxes.json: {"class_0/000.png": [x0, y0, x1, y1]}."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image, box = shape_image(label, rng)
            image.save(folder / f"{index:03d}.png")
            boxes[f"{folder.name}/{index:03d}.png"] = box
    (root / BOXES).write_text(json.dumps(boxes))
    return root
