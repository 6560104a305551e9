"""The KServe path for real: `make kserve` starts TorchServe from deploy/kserve/config.properties (addresses on
loopback, the model store in a temp dir, nothing else changed) with TS_SERVICE_ENVELOPE set as KServe sets it, for
protocol v1 and for the Open Inference Protocol (v2); single and several images per request, 200 concurrent
requests from 16 clients with batching on, each answer checked against the in-process top-1 of its own images, and a
bad image refused for its request alone, wherever it is in the request."""

import base64
import json
import os
import queue
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serving import kserve
from serving.client import RestClient
from serving.config import read_config
from serving.server import processes_of
from tests.support import (
    HTTP_TIMEOUT_S,
    REPO_ROOT,
    archive_of,
    copy_of_repository,
    environment_of_a_new_shell,
    write_config,
)

CONCURRENT_REQUESTS, CLIENTS = 200, 16
READY_TIMEOUT_S = 240


def as_in_a_terminal() -> None:
    """Ctrl-C reaches the command as it does in a terminal: a suite started in the background (CI, `make test &`)
    hands every process it starts SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module", params=["v1", "v2"])
def protocol_server(request, tmp_path_factory, tiny_run):
    """`make kserve PROTOCOL=...` as a user runs it, serving the tiny run's archive from a model store; ready when it
    says so, with every worker READY then; stopped with Ctrl-C (SIGINT) as its message says, leaving nothing behind.
    It runs in a copy of the repository whose deploy/kserve config has free ports instead of KServe's."""
    work = tmp_path_factory.mktemp(f"kserve-{request.param}")
    repo = copy_of_repository(work / "repo")
    (work / "shared").symlink_to(REPO_ROOT.parent / "shared")  # the sample photos of the example request
    kserve_config = repo / "deploy" / "kserve" / "config.properties"
    write_config(kserve_config.parent, kserve_config, with_store=False)
    store = write_config(work / "store")
    archive_of(tiny_run, store.archive("1.0"))
    environment = environment_of_a_new_shell()
    command = ["make", "--no-print-directory", "kserve", f"PROTOCOL={request.param}", f"CONFIG={store.path}"]
    make = subprocess.Popen(
        command, cwd=repo, env=environment | {"ANIMALS_ARTIFACTS": str(work / "artifacts")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    lines = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, make.stdout), lines.put(None)], daemon=True).start()
    try:
        said = said_until(lines, "Ctrl-C stops it.", READY_TIMEOUT_S)
        config = read_config(work / "artifacts" / "kserve-local" / "config.properties")
        described = RestClient(config, token=kserve.NO_TOKEN).describe()[0]
        workers = [worker["status"] for worker in described["workers"]]
        assert workers and set(workers) == {"READY"}, "ready was said before every worker could answer"
        curl = next(line.strip() for line in said if line.strip().startswith("curl "))
        tried = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=HTTP_TIMEOUT_S)
        assert top5_per_image(request.param, json.loads(tried.stdout), "example")[0], tried.stdout
        yield request.param, RestClient(config)
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in its terminal: make and the script under it get SIGINT
        make.wait(timeout=60)
    said_until(lines, "Stopping", 5)
    assert not processes_of(config), "Ctrl-C left processes of make kserve behind"


def said_until(lines: queue.Queue, last: str, timeout_s: float) -> list[str]:
    """The lines a command printed up to and including `last`; fails with them if it does not come in time."""
    said, deadline = [], time.monotonic() + timeout_s
    while not said or said[-1].strip() != last:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:  # the command ended, or took too long
            pytest.fail(f"no {last!r} within {timeout_s} s: " + "".join(said))
        said.append(line)
    return said


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
        if index % 5 == 4:  # first, in the middle or last
            images.insert((index // 5) % (len(images) + 1), b"not an image")
        plans.append((f"request-{index}", images))

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        responses = list(pool.map(lambda plan: send(protocol_server, plan[1], plan[0]), plans))
    for (request_id, images), response in zip(plans, responses, strict=True):
        if b"not an image" in images:
            assert response.status_code == 400
            error = response.json()
            bad = images.index(b"not an image")
            assert error["reason"] == "not_image" and error["message"].startswith(f"image {bad}: "), error
        else:
            assert response.status_code == 200, response.text
            answers = top5_per_image(protocol_server[0], response.json(), request_id)
            assert [next(iter(answer)) for answer in answers] == [reference.top1(image) for image in images]


@pytest.mark.parametrize("protocol_server", ["v1"], indirect=True)
def test_v1_instances_may_be_data_b64_or_the_bare_string(protocol_server, samples, reference):
    photos = [path.read_bytes() for path in samples[: 3 * 37 : 37]]
    instances = [{"b64": encoded(photos[0])}, encoded(photos[1]), {"data": encoded(photos[2])}]
    response = post(protocol_server, {"instances": instances})
    assert response.status_code == 200, response.text
    answers = top5_per_image("v1", response.json())
    assert [list(answer) for answer in answers] == [list(reference.top_k(photo)) for photo in photos]


@pytest.mark.parametrize(
    "body, reason",
    [({"instances": [{"data": "%%%"}]}, "bad_base64"), ({"instances": []}, "bad_json"), ({"inputs": [{}]}, "bad_json")],
)
def test_malformed_bodies_answer_400_with_a_message(protocol_server, body, reason):
    response = post(protocol_server, body)
    assert response.status_code == 400 and response.json()["reason"] == reason and response.json()["message"]
