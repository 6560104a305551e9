"""Shared fixtures: the sample photos, small VGG-shaped runs (random, and trained on generated shapes), and one real
TorchServe for the whole session."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torchvision.models import vgg16

from tests.shapes import write_shapes
from tests.support import (
    REPO_ROOT,
    SAMPLE_DIR,
    SHAPES_EPOCHS,
    SMALL_VGG,
    Client,
    make_run,
    own_page,
    own_server,
    sample_images,
)
from training.predict import Predictor

# Fixtures that start a server or a training process: a test that uses one (directly or through another fixture) is
# marked `server`, and `make test-fast` runs every test that is not.
SERVER_FIXTURES = {"served", "server", "page_url", "image", "container", "protocol_server", "shapes_run", "web"}
SERVER_MODULES = {"test_make_serve", "test_readme", "test_fuzz", "test_container", "test_kserve", "test_bench"}


# make test runs two pytest-xdist workers (--dist loadscope): each takes whole modules, so that a module's fixtures
# start once, and the longest modules start first, as measured (the short ones then even out the ends).
# test_explanations comes second: it trains the shapes model while the other worker runs the README, so that no
# module waits for it.
LONGEST_FIRST = [
    "test_readme", "test_explanations", "test_container", "test_make_serve", "test_bench", "test_versions",
    "test_int8", "test_reliability", "test_corrections_loop", "test_kserve", "test_training", "test_zero_shot",
    "test_fuzz", "test_parity", "test_precision", "test_hostile",
]  # fmt: skip


def pytest_configure() -> None:
    """Under pytest-xdist, each worker computes on its share of the cores, and so does every process it starts (a
    training run, the README's commands): two workers with a thread per core each would make every model wait on the
    other's threads, a third of the CPU spent spinning."""
    if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
        share = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if SERVER_FIXTURES & set(item.fixturenames) or module in SERVER_MODULES:
            item.add_marker(pytest.mark.server)
    order = {module: rank for rank, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.module.__name__.rsplit(".", 1)[-1], len(order)))


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
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated shapes training set: 10 classes of 50 images."""
    return write_shapes(tmp_path_factory.mktemp("shapes"), per_class=50)


@pytest.fixture(scope="session")
def few_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes of 10 shapes: enough for the tests of what a run records, which need no model that learns."""
    return write_shapes(tmp_path_factory.mktemp("few-shapes"), per_class=10, seed=3)


@pytest.fixture(scope="session")
def shapes_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out shapes for the trained model's checks: 10 classes of 30 images, another seed."""
    return write_shapes(tmp_path_factory.mktemp("shapes-test"), per_class=30, seed=1)


@pytest.fixture(scope="session")
def shapes_off_centre(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out shapes that never cover the image's centre, for checking where the model looked: 10 classes of 30."""
    return write_shapes(tmp_path_factory.mktemp("shapes-off-centre"), per_class=30, seed=2, off_centre=True)


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory: pytest.TempPathFactory, shapes: Path, testrun_uid: str) -> Path:
    """A small VGG (vgg11, 1/8 of the channels) trained from scratch on the shapes: a model with real margins.

    Trained by the CLI in a process of its own, as a user would, so that the same model comes out whatever the tests
    before it did to this process (torch's thread count, for one, changes the arithmetic). Trained once per test run:
    the first pytest-xdist worker that needs it trains it in the folder the workers share, the others wait for it.
    """
    # Under pytest-xdist, each worker's temporary folder lies in the run's, which pytest rotates (keeps the last 3).
    basetemp = tmp_path_factory.getbasetemp()
    shared = (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / f"shapes-{testrun_uid}"
    shared.mkdir(exist_ok=True)
    run = shared / "run"
    with FileLock(shared / "lock"):
        if not (run / "model.pt").is_file():
            arguments = ["--data-dir", str(shapes), "--weights", "none", "--unfreeze", "--augment", "whole"]
            arguments += ["--lr", "0.0005", "--epochs", str(SHAPES_EPOCHS), "--output", str(run)]
            command = [sys.executable, "-m", "training.train", *SMALL_VGG, *arguments]
            trained = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
            assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    return run


@pytest.fixture(scope="session")
def reference(tiny_run: Path) -> Predictor:
    """The tiny run's model called in-process: what every served answer is compared with."""
    return Predictor(tiny_run)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Iterator[Client]:
    """One TorchServe on free loopback ports serving the tiny run's archive, shared by the session's tests."""
    with own_server(tmp_path_factory.mktemp("torchserve"), tiny_run) as config:
        yield Client(config)


@pytest.fixture(scope="session")
def page_corrections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's upload page keeps corrected photos and its SQLite database."""
    return tmp_path_factory.mktemp("page") / "corrections"


@pytest.fixture(scope="session")
def page_url(served, page_corrections: Path) -> Iterator[str]:
    """The upload page served as `make web` serves it (waitress), against the session's TorchServe."""
    with own_page(served.config, page_corrections) as url:
        yield url


@pytest.fixture
def report_figure(record_property) -> Callable[[str], None]:
    """Keep a measured figure (an agreement, an accuracy table) for the summary at the end of the run: the tests run
    in pytest-xdist workers, whose own output pytest does not show."""
    return lambda text: record_property("figure", text)


def pytest_terminal_summary(terminalreporter) -> None:
    reports = [report for kind in ("passed", "failed") for report in terminalreporter.stats.get(kind, [])]
    figures = [value for report in reports for name, value in report.user_properties if name == "figure"]
    if figures:
        terminalreporter.section("measured figures")
        for text in figures:
            terminalreporter.write_line(text)
