"""The handler as TorchServe's worker drives it: a real archive's files, a real Context, batches of requests."""

import base64
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from animals.labels import ANIMALS
from animals.memory import IdleTrim
from animals.preprocessing import decode_image
from handler.animals_handler import AnimalsHandler
from tests import corpus, hostile
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


def test_top_k_and_the_decoding_limits_come_from_the_archives_model_config(tmp_path, model_dir):
    """Values other than the code's defaults, written into the unpacked archive's model-config.yaml."""
    configured = tmp_path / "model"
    shutil.copytree(model_dir, configured)
    settings = yaml.safe_load((configured / "model-config.yaml").read_text())
    limits = {"max_image_pixels": 300 * 300, "max_full_decode_pixels": 200 * 200, "max_aspect_ratio": 3}
    limits |= {"max_slow_decode_pixels": 50 * 50, "max_images_per_request": 2}
    settings["handler"] |= {"top_k": 3, **limits}
    (configured / "model-config.yaml").write_text(yaml.safe_dump(settings))
    small = base64.b64encode(corpus.encode(corpus.gradient(150, 150), "PNG")).decode()
    bodies = {
        (200, None): corpus.encode(corpus.gradient(150, 150), "PNG"),
        (400, "too_many_pixels"): corpus.encode(corpus.gradient(250, 250), "PNG"),
        (200, "jpeg"): corpus.encode(corpus.gradient(250, 250), "JPEG"),
        (400, "too_many_pixels jpeg"): corpus.encode(corpus.gradient(350, 350), "JPEG"),
        (400, "extreme_aspect_ratio"): corpus.encode(corpus.gradient(160, 40), "PNG"),
        (400, "too_many_pixels rle"): hostile.rle8_bmp(60, 60),
        (413, "too_many_images"): json.dumps({"instances": [small] * 3}).encode(),
    }
    answers, statuses = run_handler(loaded_handler(configured), configured, list(bodies.values()))
    for (status, reason), answer, (answered, _) in zip(bodies, answers, statuses, strict=True):
        assert answered == status, reason
        if status == 200:
            assert len(answer) == 3
        else:
            assert json.loads(answer)["reason"] == reason.split()[0]


def test_a_failure_that_is_not_bad_input_answers_500_for_its_own_request_alone(model_dir, samples):
    """Any exception in one request's preprocessing or inference (a bug, a library's error on its input) answers 500
    for that request, and the rest of the batch is answered as if it were not there."""
    handler = loaded_handler(model_dir, batch_size=4)
    photos = [samples[0].read_bytes(), samples[80].read_bytes()]
    breaks_the_transform = corpus.encode(corpus.gradient(123, 77), "PNG")
    breaks_the_model = samples[40].read_bytes()
    alone = [run_handler(handler, model_dir, [photo])[0][0] for photo in photos]
    poisoned = handler.transform(decode_image(breaks_the_model))
    transform, model = handler.transform, handler.model

    def failing_transform(image):
        if image.size == (123, 77):
            raise RuntimeError("a bug in preprocessing")
        return transform(image)

    def failing_model(inputs):
        if any(torch.equal(row, poisoned) for row in inputs):
            raise RuntimeError("a bug in inference")
        return model(inputs)

    handler.transform, handler.model = failing_transform, failing_model
    try:
        bodies = [photos[0], breaks_the_transform, breaks_the_model, photos[1]]
        answers, statuses = run_handler(handler, model_dir, bodies)
    finally:
        handler.transform, handler.model = transform, model
    assert [status for status, _ in statuses] == [200, 500, 500, 200]
    assert_same_answer(answers[0], alone[0])
    assert_same_answer(answers[3], alone[1])
    for failed in (answers[1], answers[2]):
        error = json.loads(failed)
        assert error["type"] == "InternalServerError" and error["reason"] == "internal" and "a bug" not in failed


def test_a_hostile_input_in_a_batch_answers_its_own_4xx_and_the_photos_their_own(handler, model_dir, samples):
    photos = [path.read_bytes() for path in samples[:3]]
    alone = [run_handler(handler, model_dir, [photo])[0][0] for photo in photos]
    for name, case in hostile.corpus().items():
        if case.status in (0, 200):
            continue
        answers, statuses = run_handler(handler, model_dir, [photos[0], case.body, photos[1], photos[2]])
        assert statuses[1][0] == case.status and json.loads(answers[1])["reason"] == case.reason, name
        for index, expected in zip((0, 2, 3), alone, strict=True):
            assert statuses[index][0] == 200, name
            assert_same_answer(answers[index], expected)


def test_a_worker_gives_back_its_batches_memory_once_idle(handler, model_dir, samples):
    """The handler runs each batch in its IdleTrim: the trim comes after the batch, once idle (animals.memory)."""
    handler.idle_trim = IdleTrim(idle_s=0.2)
    run_handler(handler, model_dir, [samples[0].read_bytes()])
    deadline = time.monotonic() + 10
    while handler.idle_trim.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handler.idle_trim.trims == 1
