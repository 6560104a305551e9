"""The class names and the zero-shot ImageNet grouping, checked against torchvision's own metadata."""

from animals.labels import (
    ANIMALS,
    IMAGENET_CLASSES_BY_ANIMAL,
    ITALIAN_TO_ENGLISH,
    imagenet_indices_by_animal,
    read_index_to_name,
    write_index_to_name,
)
from animals.pretrained import imagenet_categories
from tests.support import SAMPLE_DIR


def test_every_grouped_imagenet_name_exists_in_torchvision_metadata():
    categories = imagenet_categories("vgg16")
    for animal, names in IMAGENET_CLASSES_BY_ANIMAL.items():
        assert set(names) <= set(categories), animal


def test_dog_group_is_exactly_the_118_breeds():
    categories = imagenet_categories("vgg16")
    dogs = imagenet_indices_by_animal(categories)["dog"]
    assert len(dogs) == 118
    assert categories[dogs[0]] == "Chihuahua"
    assert categories[dogs[-1]] == "Mexican hairless"
    assert categories[dogs[-1] + 1] == "timber wolf"


def test_groups_cover_every_animal_in_order_without_overlap():
    groups = imagenet_indices_by_animal(imagenet_categories("vgg16"))
    assert tuple(groups) == ANIMALS
    indices = [index for members in groups.values() for index in members]
    assert len(indices) == len(set(indices))
    assert all(groups.values())


def test_italian_folder_names_translate_to_the_ten_animals():
    assert sorted(ITALIAN_TO_ENGLISH.values()) == sorted(ANIMALS)
    assert {folder.name for folder in SAMPLE_DIR.iterdir() if folder.is_dir()} == set(ITALIAN_TO_ENGLISH)


def test_index_to_name_round_trips_in_torchserve_layout(tmp_path):
    path = tmp_path / "index_to_name.json"
    write_index_to_name(ANIMALS, path)
    assert path.read_text().startswith('{\n  "0": "butterfly"')
    assert read_index_to_name(path) == list(ANIMALS)
