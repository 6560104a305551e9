"""Shared fixtures: the sample photos, a small VGG-shaped run, and one real TorchServe for the whole session."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.models import vgg16

from serving.archive import build_archive, trained_run_source
from serving.server import start, stop
from tests.support import SAMPLE_DIR, Client, make_run, sample_images, write_config
from training.predict import Predictor


@pytest.fixture(scope="session")
def samples() -> list[Path]:
    images = sample_images()
    if len(images) != 160:
        pytest.fail(f"expected the 160 sample photos in {SAMPLE_DIR}, found {len(images)}")
    return images


@pytest.fixture(scope="session")
def vgg16_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size VGG16 state dict in torchvision's layout, random weights: stands for ImageNet's file offline."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.save(vgg16(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="session")
def reference(tiny_run: Path) -> Predictor:
    """The tiny run's model called in-process: what every served answer is compared with."""
    return Predictor(tiny_run)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Iterator[Client]:
    """One TorchServe on free loopback ports serving the tiny run's archive, shared by the session's tests."""
    config = write_config(tmp_path_factory.mktemp("torchserve"))
    build_archive(config.archive, trained_run_source(tiny_run), config.model_name)
    try:
        start(config, timeout_s=180)
        yield Client(config)
    finally:
        stop(config)
