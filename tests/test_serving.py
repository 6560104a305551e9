"""A real TorchServe on free loopback ports, serving the archive the project's script builds, used over REST."""

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from animals.labels import ANIMALS
from tests import corpus


def test_ping_answers_healthy(served):
    response = served.get(f"{served.config.inference_url}/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "Healthy"}


def test_served_top1_equals_in_process_top1_for_every_sample(served, samples, reference):
    def top1(photo: bytes) -> str:
        response = served.post(photo)
        assert response.status_code == 200, response.text
        return next(iter(response.json()))

    photos = [path.read_bytes() for path in samples]
    with ThreadPoolExecutor(max_workers=8) as pool:
        served_labels = list(pool.map(top1, photos))
    assert served_labels == [reference.top1(photo) for photo in photos]


def test_answer_is_five_animal_labels_with_softmax_probabilities_highest_first(served, samples):
    answer = served.post(samples[0].read_bytes()).json()
    assert len(answer) == 5 and set(answer) <= set(ANIMALS)
    probabilities = list(answer.values())
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p <= 1 for p in probabilities) and sum(probabilities) <= 1.0001


def test_raw_multipart_and_base64_json_give_the_same_answer(served, samples):
    photo = samples[3].read_bytes()
    raw = served.post(photo).json()
    multipart = served.post(files={"data": ("photo.jpg", photo, "image/jpeg")}).json()
    as_json = served.post(json={"data": base64.b64encode(photo).decode()}).json()
    assert raw == multipart == as_json


@pytest.mark.parametrize("name", sorted(corpus.invalid_inputs()))
def test_bad_inputs_answer_400_with_a_json_message(served, name):
    response = served.post(corpus.invalid_inputs()[name])
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "BadInput" and error["message"]


@pytest.mark.parametrize(
    ("request_options", "reason"),
    [
        ({}, "empty"),
        ({"json": {"image": "abc"}}, "bad_json"),
        ({"json": {"data": "%%% not base64 %%%"}}, "bad_base64"),
        ({"json": {"data": base64.b64encode(b"GIF89a but not really").decode()}}, "not_image"),
        ({"body": b"hello", "headers_extra": {"Content-Type": "text/plain"}}, "not_image"),
    ],
    ids=["empty-body", "json-without-data", "bad-base64", "base64-not-an-image", "text-plain"],
)
def test_request_shapes_without_an_image_answer_400(served, request_options, reason):
    options = dict(request_options)
    headers = served.headers() | options.pop("headers_extra", {})
    response = served.post(headers=headers, **options)
    assert response.status_code == 400
    assert response.json()["reason"] == reason


def test_body_over_max_request_size_answers_413(served):
    limit = int(served.config.properties["max_request_size"])
    assert served.post(b"\0" * (limit + 1)).status_code == 413


def test_bad_inputs_in_a_busy_batch_do_not_disturb_the_good_ones(served, samples, reference):
    bodies = [samples[i].read_bytes() if i % 2 else b"not an image" for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(served.post, bodies))
    for body, response in zip(bodies, responses, strict=True):
        if body == b"not an image":
            assert response.status_code == 400
        else:
            assert response.status_code == 200
            assert next(iter(response.json())) == reference.top1(body)


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_requests_without_the_right_token_are_refused(served, samples, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = served.post(samples[0].read_bytes(), headers=headers)
    assert response.status_code == 400
    assert json.loads(response.text)["type"] == "InvalidKeyException"


def test_key_file_is_private(served):
    assert served.config.key_file.stat().st_mode & 0o777 == 0o600


def test_workers_share_the_cores_and_wait_for_work_asleep(served, samples):
    """model-config.yaml's `threads: shared`: the workers claim their cores in the server's TMPDIR (its logs folder),
    and their OpenMP threads sleep between batches rather than spin on the cores another worker computes on."""
    served.predict(samples[0].read_bytes())
    assert list((served.config.log_dir / f"animals-cores-{os.getuid()}").glob("slot-*"))
    for worker in served.describe()[0]["workers"]:
        assert psutil.Process(worker["pid"]).environ()["OMP_WAIT_POLICY"] == "PASSIVE"


def test_server_listens_on_loopback_only(served):
    for key in ("inference_address", "management_address", "metrics_address"):
        assert served.config.properties[key].startswith("http://127.0.0.1:")
