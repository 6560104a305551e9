"""The KServe path for real: TorchServe started from deploy/kserve/config.properties (addresses on loopback, the model
store in a temp dir, nothing else changed) with TS_SERVICE_ENVELOPE set as KServe sets it, for protocol v1 and for
the Open Inference Protocol (v2); single and several images per request, 200 concurrent requests from 16 clients
with batching on, each answer checked against the in-process top-1 of its own images, and a bad image refused for its
request alone."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from benchmarks.load import free_port
from serving import kserve
from serving.client import RestClient
from tests.support import archive_of

CONCURRENT_REQUESTS, CLIENTS = 200, 16


@pytest.fixture(scope="module", params=["v1", "v2"])
def protocol_server(request, tmp_path_factory, tiny_run):
    """A TorchServe run as KServe's runtime runs it, for one protocol; its inference URL."""
    home = tmp_path_factory.mktemp(f"kserve-{request.param}")
    port = free_port()
    ports = {"inference_address": port, "management_address": port, "metrics_address": free_port()}
    ports |= {"grpc_inference_port": free_port(), "grpc_management_port": free_port()}
    config = kserve.local_config(home, archive_of(tiny_run, home / "built" / "animals.mar"), ports)
    with (home / "torchserve.out").open("w") as output:
        process = kserve.start(config, request.param, output)
        try:
            kserve.wait_until_ready(config, process)
            described = RestClient(config, token=kserve.NO_TOKEN).describe()[0]
            workers = [worker["status"] for worker in described["workers"]]
            assert workers and set(workers) == {"READY"}, "ready was said before every worker could answer"
            yield request.param, RestClient(config)
        finally:
            kserve.stop(process)


def encoded(photo: bytes) -> str:
    return base64.b64encode(photo).decode()


def body_for(protocol: str, photos: list[bytes], request_id: str = "request-1") -> dict:
    """The request body KServe's clients send for these photos."""
    if protocol == "v1":
        return {"instances": [{"data": encoded(photo)} for photo in photos]}
    inputs = [{"name": "data", "shape": [len(photos)], "datatype": "BYTES", "data": [encoded(p) for p in photos]}]
    return {"id": request_id, "inputs": inputs}


def post(server, body: dict) -> requests.Response:
    """POST a body to the protocol's path; no key: the KServe config turns tokens off, as KServe's does."""
    protocol, client = server
    path = "/v1/models/animals:predict" if protocol == "v1" else "/v2/models/animals/infer"
    return client.send("POST", client.inference_url + path, json=body)


def send(server, photos: list[bytes], request_id: str = "request-1") -> requests.Response:
    return post(server, body_for(server[0], photos, request_id))


def top5_per_image(protocol: str, answer: dict, request_id: str = "request-1") -> list[dict]:
    """The top-5 object of each image, from either protocol's answer, checking the answer's shape on the way."""
    if protocol == "v1":
        assert set(answer) == {"predictions"}
        return answer["predictions"]
    assert answer["model_name"] == "animals" and answer["id"] == request_id
    (output,) = answer["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [len(output["data"])]
    return [json.loads(element) for element in output["data"]]


@pytest.mark.parametrize("count", [1, 3])
def test_one_and_several_images_get_their_top5_in_order(protocol_server, samples, reference, count):
    photos = [path.read_bytes() for path in samples[: count * 37 : 37]]
    response = send(protocol_server, photos)
    assert response.status_code == 200
    answers = top5_per_image(protocol_server[0], response.json())
    assert len(answers) == count
    for photo, answer in zip(photos, answers, strict=True):
        assert list(answer) == list(reference.top_k(photo)) and len(answer) == 5


def test_concurrent_requests_are_each_answered_for_their_own_images(protocol_server, samples, reference):
    """200 requests from 16 clients, one or two images each, every fifth with a bad image: batching on as configured."""
    photos = [path.read_bytes() for path in samples]
    plans = []
    for index in range(CONCURRENT_REQUESTS):
        images = [photos[index % len(photos)]] + ([photos[(index * 7) % len(photos)]] if index % 3 == 0 else [])
        if index % 5 == 4:
            images.append(b"not an image")
        plans.append((f"request-{index}", images))

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        responses = list(pool.map(lambda plan: send(protocol_server, plan[1], plan[0]), plans))
    for (request_id, images), response in zip(plans, responses, strict=True):
        if b"not an image" in images:
            assert response.status_code == 400
            error = response.json()
            assert error["reason"] == "not_image" and error["message"].startswith(f"image {len(images) - 1}: ")
        else:
            assert response.status_code == 200, response.text
            answers = top5_per_image(protocol_server[0], response.json(), request_id)
            assert [next(iter(answer)) for answer in answers] == [reference.top1(image) for image in images]


@pytest.mark.parametrize(
    "body, reason",
    [({"instances": [{"data": "%%%"}]}, "bad_base64"), ({"instances": []}, "bad_json"), ({"inputs": [{}]}, "bad_json")],
)
def test_malformed_bodies_answer_400_with_a_message(protocol_server, body, reason):
    response = post(protocol_server, body)
    assert response.status_code == 400 and response.json()["reason"] == reason and response.json()["message"]
