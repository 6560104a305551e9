"""Load, faults, hostile input and access control against a real TorchServe, bounded in count and time."""

import ipaddress
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
import requests

from animals import cli
from benchmarks.soak import soak
from scripts import manage
from serving.client import GrpcClient, RestClient, TorchServeError
from serving.config import ServerConfig
from serving.server import running_pid, stop
from tests import corpus
from tests.support import SAMPLE_DIR, Client, archive_of, make_run, own_server, serve, write_config

RECOVERY_BOUND_S = 60
FAIL_FAST_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run) -> Iterator[ServerConfig]:
    """A TorchServe of its own: these tests kill its worker and register broken versions."""
    with own_server(tmp_path_factory.mktemp("reliability") / "server", tiny_run) as config:
        yield config


def worker_pids(config: ServerConfig) -> list[int]:
    return [worker["pid"] for worker in RestClient(config).describe()[0]["workers"]]


def test_load_with_bad_inputs_answers_every_request_correctly(served, report_figure):
    result = soak(served.config, total=2000, concurrency=16, images=SAMPLE_DIR, deadline_s=300)
    report_figure(f"load: {result.report()}")
    assert len(result.outcomes) == 2000
    assert result.by_kind() == {"ok": 2000}


def test_hostile_inputs_get_their_status_and_the_worker_survives(server):
    client = Client(server)
    before = worker_pids(server)
    for name, body in corpus.valid_images().items():
        assert client.post(body).status_code == 200, name
    for name, body in corpus.invalid_inputs().items():
        response = client.post(body)
        assert response.status_code == 400 and response.json()["message"], name
    malformed = b'--xyz\r\nContent-Disposition: form-data; name="data"\r\n\r\nno closing boundary'
    headers = client.headers() | {"Content-Type": "multipart/form-data; boundary=xyz"}
    assert 400 <= client.post(malformed, headers=headers).status_code < 500
    assert client.post(b"\0" * (int(server.properties["max_request_size"]) + 1)).status_code == 413
    assert worker_pids(server) == before


def test_a_killed_worker_fails_its_requests_fast_and_is_replaced(server, samples):
    """SIGKILL the worker under load: requests in flight at that moment get a 5xx (at least one of them: the kill
    must land on a busy worker), none hangs, and TorchServe starts a new worker that answers again."""
    client = Client(server)
    photo = samples[0].read_bytes()
    workers = worker_pids(server)
    victim = workers[0]

    def send(_: int) -> tuple[float, float, int | str]:
        started = time.monotonic()
        try:
            status: int | str = client.post(photo).status_code
        except TorchServeError as error:
            status = error.kind  # "timeout": the request hung
        return started, time.monotonic(), status

    with ThreadPoolExecutor(max_workers=4) as pool:
        during = pool.map(send, range(200))
        time.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        results = list(during)
    in_flight = [status for started, ended, status in results if started < killed_at < ended]
    assert in_flight, "the kill landed when no request was in flight"
    assert all(status == 200 or (isinstance(status, int) and 500 <= status < 600) for _, _, status in results)
    assert any(status != 200 for status in in_flight), "no request was at the worker when it died"
    while victim in worker_pids(server) or len(worker_pids(server)) < len(workers):
        assert time.monotonic() - killed_at < RECOVERY_BOUND_S, "the worker did not come back"
        time.sleep(0.5)
    print(f"{len(in_flight)} requests in flight at the kill; worker recovered in {time.monotonic() - killed_at:.1f} s")
    assert all(client.post(photo).status_code == 200 for _ in range(5))


def test_a_version_whose_workers_cannot_start_answers_at_once(server, tmp_path, samples, capsys):
    """Its requests fail fast instead of waiting for workers that never come: 503 while TorchServe still holds the
    version, 404 once it has unregistered it (it does, after the failed registration's answer, on its own thread:
    either is seen on a busy machine)."""
    broken_run = make_run(tmp_path / "broken", seed=4)
    (broken_run / "model.pt").write_bytes(b"not a state dict")
    broken = archive_of(broken_run, tmp_path / "broken.mar", "9.0")
    with pytest.raises(SystemExit) as exited:
        cli.run(manage.main, ["--config", str(server.path), "register", str(broken)])
    assert exited.value.code == 1 and "Failed to start workers" in capsys.readouterr().err
    url = f"{server.inference_url}/predictions/animals/9.0"
    response = Client(server).send("POST", url, "inference", data=samples[0].read_bytes(), timeout=FAIL_FAST_TIMEOUT_S)
    assert response.status_code in (503, 404)
    assert Client(server).post(samples[0].read_bytes()).status_code == 200


@pytest.mark.parametrize(
    "url", ["https://example.com/animals.mar", "http://127.0.0.1:9/animals.mar", "file:///etc/passwd", "file://{other}"]
)
def test_registration_from_a_url_is_refused(server, url, archive_elsewhere):
    answer = register_url(server, url.format(other=archive_elsewhere))
    assert answer.status_code == 404
    assert (
        answer.json()["message"] == f"Given URL {url.format(other=archive_elsewhere)} does not match any allowed URL(s)"
    )


def test_registration_of_an_archive_outside_the_store_is_refused(server, archive_elsewhere):
    """A real archive, named by its absolute path: TorchServe looks for its name in the model store only."""
    answer = register_url(server, str(archive_elsewhere))
    assert answer.status_code == 404
    assert answer.json()["message"] == f"Model not found at: {archive_elsewhere}"
    assert "5.0" not in RestClient(server).versions()


@pytest.fixture(scope="module")
def archive_elsewhere(tmp_path_factory, tiny_run) -> Path:
    return archive_of(tiny_run, tmp_path_factory.mktemp("elsewhere") / "other.mar", "5.0")


def register_url(server: ServerConfig, url: str) -> requests.Response:
    params = {"url": url, "model_name": "animals", "synchronous": "true"}
    return Client(server).send("POST", f"{server.management_url}/models", "management", params=params)


def test_a_tampered_archive_is_refused(server, tmp_path, tiny_run, capsys):
    archive = archive_of(tiny_run, tmp_path / "v7.mar", "7.0")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exited:
        cli.run(manage.main, ["--config", str(server.path), "register", str(archive)])
    error = capsys.readouterr().err
    assert exited.value.code == 1 and "does not match the SHA-256" in error
    assert "7.0" not in {d["modelVersion"] for d in RestClient(server).describe("all")}


def test_every_port_listens_on_loopback_only(server):
    """The test servers keep the shipped hosts (only their ports move): these are config.properties' addresses."""
    frontend = psutil.Process(running_pid(server))
    listening = [c.laddr for c in frontend.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) == 5
    for address in listening:
        ip = ipaddress.ip_address(address.ip)
        assert (getattr(ip, "ipv4_mapped", None) or ip).is_loopback, address


@pytest.mark.server  # starts a TorchServe of its own
def test_expired_and_renewed_tokens(tmp_path, tiny_run, samples):
    """Keys last token_expiration_min; an expired key is refused everywhere, and the API key renews it."""
    config = write_config(tmp_path / "server", token_expiration_min="0.5")
    photo = samples[0].read_bytes()
    try:
        serve(config, tiny_run)
        client = Client(config)
        old, old_management = client.headers(), client.headers("management")
        assert client.post(photo, headers=old).status_code == 200
        time.sleep(max(0.0, seconds_until_expiry(config, "inference")) + 1)
        expired = client.post(photo, headers=old)
        assert expired.status_code == 400 and expired.json()["type"] == "InvalidKeyException"
        described = client.send("GET", f"{config.management_url}/models", headers=old_management)
        assert described.status_code == 400 and described.json()["type"] == "InvalidKeyException"
        stale = old["Authorization"].removeprefix("Bearer ")
        with pytest.raises(TorchServeError, match="InvalidKeyException"):
            GrpcClient(config, stale).predict(photo)
        client.renew_key("inference")
        assert client.headers() != old and client.post(photo).status_code == 200
    finally:
        stop(config)


def seconds_until_expiry(config: ServerConfig, kind: str) -> float:
    """From the key file's own "expiration time" (an ISO-8601 instant written when the key was issued)."""
    expires = datetime.fromisoformat(json.loads(config.key_file.read_text())[kind]["expiration time"])
    return (expires - datetime.now(timezone.utc)).total_seconds()
