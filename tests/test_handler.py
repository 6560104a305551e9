"""The handler as TorchServe's worker drives it: a real archive's files, a real Context, batches of requests."""

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from animals.labels import ANIMALS
from handler.animals_handler import AnimalsHandler
from tests import corpus
from tests.support import archive_of, loaded_handler, run_handler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_run) -> Path:
    """The tiny run's archive, unpacked as TorchServe unpacks it for a worker."""
    work = tmp_path_factory.mktemp("handler")
    archive = archive_of(tiny_run, work / "animals.mar")
    with zipfile.ZipFile(archive) as packed:
        packed.extractall(work / "model")
    return work / "model"


@pytest.fixture(scope="module")
def handler(model_dir) -> AnimalsHandler:
    return loaded_handler(model_dir, batch_size=4)


def assert_same_answer(batched: dict, single: dict) -> None:
    """Batched and single inference agree up to float rounding: same labels in the same order."""
    assert list(batched) == list(single)
    assert list(batched.values()) == pytest.approx(list(single.values()), abs=1e-4)


def test_real_photos_get_top5_softmax_labels_matching_the_in_process_model(handler, model_dir, samples, reference):
    photos = [path.read_bytes() for path in samples[::20]]
    answers, statuses = run_handler(handler, model_dir, photos)
    for photo, answer, status in zip(photos, answers, statuses, strict=True):
        assert status[0] == 200
        probabilities = list(answer.values())
        assert len(answer) == 5 and set(answer) <= set(ANIMALS)
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0001
        assert next(iter(answer)) == reference.top1(photo)


def test_mixed_batch_answers_each_request_in_order(handler, model_dir, samples):
    good = [samples[0].read_bytes(), samples[100].read_bytes()]
    bodies = [good[0], b"plain text", good[1], corpus.truncated_jpeg(), b""]
    answers, statuses = run_handler(handler, model_dir, bodies)
    alone = [run_handler(handler, model_dir, [body])[0][0] for body in good]
    assert_same_answer(answers[0], alone[0])
    assert_same_answer(answers[2], alone[1])
    assert statuses[0][0] == statuses[2][0] == 200
    for index, reason in ((1, "not_image"), (3, "corrupt_image"), (4, "empty")):
        assert statuses[index] == (400, "Bad Request")
        error = json.loads(answers[index])
        assert error["code"] == 400 and error["reason"] == reason and error["message"]


def test_batch_of_only_bad_inputs_runs_no_inference(handler, model_dir):
    answers, statuses = run_handler(handler, model_dir, [b"", b"x"])
    assert [status for status, _ in statuses] == [400, 400]
    assert all(json.loads(answer)["type"] == "BadInput" for answer in answers)


@pytest.mark.parametrize("name", sorted(corpus.valid_images()))
def test_every_supported_format_is_classified(handler, model_dir, name):
    answers, statuses = run_handler(handler, model_dir, [corpus.valid_images()[name]])
    assert statuses[0][0] == 200
    assert len(answers[0]) == 5


def test_top_k_and_the_pixel_limit_come_from_the_archives_model_config(tmp_path, model_dir):
    """Values other than the code's defaults, written into the unpacked archive's model-config.yaml."""
    configured = tmp_path / "model"
    shutil.copytree(model_dir, configured)
    settings = yaml.safe_load((configured / "model-config.yaml").read_text())
    settings["handler"] |= {"top_k": 3, "max_image_pixels": 200 * 200}
    (configured / "model-config.yaml").write_text(yaml.safe_dump(settings))
    small, large = (corpus.encode(corpus.gradient(side, side), "PNG") for side in (150, 250))
    answers, statuses = run_handler(loaded_handler(configured), configured, [small, large])
    assert statuses[0][0] == 200 and len(answers[0]) == 3
    assert statuses[1][0] == 400 and json.loads(answers[1])["reason"] == "too_many_pixels"
