"""Train/serve parity: one preprocessing, and one model giving the same top-1 offline, in evaluation and served."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from ts.context import Context, RequestProcessor

from animals.kserve import DEFAULT_MAX_IMAGES
from animals.preprocessing import DecodeLimits, eval_transform
from animals.run import Split
from handler.animals_handler import AnimalsHandler
from serving.server import start, stop
from tests.support import REPO_ROOT, SAMPLE_DIR, Client, write_config
from training import train
from training.data import ImageDataset
from training.evaluate import evaluate_run
from training.predict import Predictor


def test_training_eval_transform_and_handler_preprocess_give_the_same_tensor(samples):
    items = [(str(path.relative_to(SAMPLE_DIR)), 0) for path in samples]
    training_view = ImageDataset(SAMPLE_DIR, items, eval_transform())
    handler = AnimalsHandler()
    handler.transform, handler.limits, handler.max_images = eval_transform(), DecodeLimits(), DEFAULT_MAX_IMAGES
    handler.context = Context("animals", "", {}, len(samples), None, "0.12.0")  # as TorchServe's handle sets it
    handler.context.request_processor = [RequestProcessor({}) for _ in samples]
    served_view = handler.preprocess([{"body": bytearray(path.read_bytes())} for path in samples])
    assert served_view.positions == list(range(len(samples)))
    for index, served_tensor in enumerate(served_view.images):
        assert torch.equal(training_view[index][0], served_tensor), samples[index]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """A small VGG trained briefly on the real Animals-10 photos, through the Animals-10 path."""
    run = tmp_path_factory.mktemp("runs") / "animals"
    arguments = ["--data-dir", str(SAMPLE_DIR), "--arch", "vgg11", "--width", "0.125", "--weights", "none"]
    assert train.main([*arguments, "--epochs", "2", "--workers", "0", "--output", str(run)]) == 0
    return run


@pytest.mark.server  # starts a TorchServe of its own
def test_predict_evaluate_and_served_agree_on_every_sample(tmp_path, sample_run, samples):
    config = write_config(tmp_path / "server")
    archived = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "archive", f"RUN={sample_run}", "VERSION=2.0",
         "PRECISION=fp32", f"CONFIG={config.path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert archived.returncode == 0, archived.stderr
    photos = [path.read_bytes() for path in samples]
    predictor = Predictor(sample_run)
    offline = {path: predictor.top1(photo) for path, photo in zip(samples, photos, strict=True)}

    _, evaluated = evaluate_run(sample_run)
    test_part = Split.load(sample_run / "split.json").parts["test"]
    assert len(test_part) == len(evaluated.predictions) == 20
    for (relative, _), prediction in zip(test_part, evaluated.predictions.tolist(), strict=True):
        assert predictor.class_names[prediction] == offline[SAMPLE_DIR / relative], relative

    try:
        start(config, "2.0", timeout_s=180)
        client = Client(config)
        with ThreadPoolExecutor(max_workers=8) as pool:
            served = [next(iter(r.json())) for r in pool.map(client.post, photos)]
    finally:
        stop(config)
    assert served == list(offline.values())
