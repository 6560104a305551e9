"""Class names: the ten animals, the Animals-10 folder names, and the ImageNet classes behind each animal."""

import json
from pathlib import Path

ANIMALS = (
    "butterfly",
    "cat",
    "chicken",
    "cow",
    "dog",
    "elephant",
    "horse",
    "sheep",
    "spider",
    "squirrel",
)

ITALIAN_TO_ENGLISH = {
    "cane": "dog",
    "cavallo": "horse",
    "elefante": "elephant",
    "farfalla": "butterfly",
    "gallina": "chicken",
    "gatto": "cat",
    "mucca": "cow",
    "pecora": "sheep",
    "ragno": "spider",
    "scoiattolo": "squirrel",
}

# ImageNet indices 151 ("Chihuahua") to 268 ("Mexican hairless") are the 118 dog breeds.
IMAGENET_DOG_BREEDS = range(151, 269)

# The ImageNet-1k classes whose pictures show each animal: its kinds or breeds, and for horse and cow the cart it
# pulls (ImageNet's "horse cart" and "oxcart" photos show the animal in harness). Chosen by what each class is, from
# the class names alone; animals.zero_shot turns their scores into one score per animal.
IMAGENET_CLASSES_BY_ANIMAL = {
    "butterfly": (
        "admiral",
        "ringlet",
        "monarch",
        "cabbage butterfly",
        "sulphur butterfly",
        "lycaenid",
    ),
    "cat": ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"),
    "chicken": ("cock", "hen"),
    "cow": ("ox", "oxcart"),
    "elephant": ("Indian elephant", "African elephant", "tusker"),
    "horse": ("sorrel", "horse cart"),
    "sheep": ("ram", "bighorn"),
    "spider": (
        "black and gold garden spider",
        "barn spider",
        "garden spider",
        "black widow",
        "tarantula",
        "wolf spider",
    ),
    "squirrel": ("fox squirrel",),
}


def english_name(folder: str) -> str:
    """Animals-10's Italian folder names in English; any other class folder keeps its name."""
    return ITALIAN_TO_ENGLISH.get(folder.lower(), folder)


def imagenet_indices_by_animal(imagenet_categories: list[str]) -> dict[str, list[int]]:
    """Map each animal, in the order of ANIMALS, to the indices of its ImageNet classes."""
    index_of = {name: i for i, name in enumerate(imagenet_categories)}
    groups = {animal: [index_of[name] for name in names] for animal, names in IMAGENET_CLASSES_BY_ANIMAL.items()}
    groups["dog"] = list(IMAGENET_DOG_BREEDS)
    return {animal: groups[animal] for animal in ANIMALS}


def write_index_to_name(class_names: list[str] | tuple[str, ...], path: Path) -> None:
    """Write TorchServe's index_to_name.json: {"0": "butterfly", ...}."""
    mapping = {str(i): name for i, name in enumerate(class_names)}
    path.write_text(json.dumps(mapping, indent=2) + "\n")


def read_index_to_name(path: Path) -> list[str]:
    """Read index_to_name.json back into a list ordered by class index."""
    mapping = json.loads(Path(path).read_text())
    return [mapping[str(i)] for i in range(len(mapping))]
