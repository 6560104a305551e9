"""A generated, learnable image data set: ten classes, each a shape of one colour on dark noise, as class folders.

The class is in the shape alone, at a random place and size, so a model can be asked where it looked: boxes.json
records each shape's bounding box (every shape covers less than a quarter of its image; off-centre sets, for checking
explanations, never cover the centre, so that a map that always points at the centre is wrong).
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (255, 255, 255), (140, 140, 140),
]  # fmt: skip
SIZE = 96
BACKGROUND = 32  # dark grey: every colour is brighter than it in some channel
MARGIN = SIZE // 16  # what eval_transform's centre crop cuts from each side (16 of 256): shapes stay in view
BOXES = "boxes.json"


def shape_image(
    label: int, rng: np.random.Generator, off_centre: bool = False
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Dark grey noise, and on it a shape of random kind, place and size in the class's colour, inside the part of the
    image the model sees; and the shape's box. off_centre: a smaller shape that never covers the image's centre."""
    noise = rng.integers(-10, 10, size=(SIZE, SIZE, 1))
    image = Image.fromarray(np.repeat(BACKGROUND + noise, 3, axis=2).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(SIZE // 6, SIZE // 5 if off_centre else SIZE // 4))
    while True:
        x, y = (int(v) for v in rng.integers(MARGIN + radius, SIZE - MARGIN - radius, size=2))
        if not off_centre or max(abs(x - SIZE // 2), abs(y - SIZE // 2)) > radius:
            break
    box = (x - radius, y - radius, x + radius, y + radius)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=COLOURS[label])
    return image, box


def write_shapes(root: Path, per_class: int = 40, seed: int = 0, classes: int = 10, off_centre: bool = False) -> Path:
    """Class folders class_0 ... of PNGs under root, and root/boxes.json: {"class_0/000.png": [x0, y0, x1, y1]}."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image, box = shape_image(label, rng, off_centre)
            image.save(folder / f"{index:03d}.png")
            boxes[f"{folder.name}/{index:03d}.png"] = box
    (root / BOXES).write_text(json.dumps(boxes))
    return root
