"""`make serve`, `make stop` and `make status` as a user runs them, each on a config of its own: which model answers
(a run as a version of its own, the same model after a restart, the newest run only when nothing was served yet), a
worker that cannot start, missing files, a stop that waits for the workers, bounded logs, and the full-size VGG16."""

import os
import subprocess
from pathlib import Path

import psutil
import pytest

from animals import cli
from animals.labels import ANIMALS
from scripts import server as server_script
from serving import snapshots
from serving.client import RestClient
from serving.config import ServerConfig
from tests.support import REPO_ROOT, Client, make_run, write_config
from training.predict import Predictor

MAKE_TIMEOUT_S = 600


def make(target: str, config: ServerConfig, *variables: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A make target as typed in a shell, on the test's config."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), target, f"CONFIG={config.path}", *variables],
        env=env or os.environ,
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_S,
    )


def succeeds(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def answers_like(config: ServerConfig, run: Path, photo: bytes) -> bool:
    """Whether /predictions/animals answers what `run`'s model answers in-process."""
    return list(RestClient(config).predict(photo)) == list(Predictor(run).top_k(photo))


@pytest.fixture
def server(tmp_path) -> ServerConfig:
    config = write_config(tmp_path / "server")
    yield config
    make("stop", config)


def test_a_run_is_served_as_a_version_of_its_own_and_a_restart_changes_nothing(server, tmp_path, samples):
    photo = samples[0].read_bytes()
    first, second = make_run(tmp_path / "first", seed=1), make_run(tmp_path / "second", seed=2)
    out = succeeds(make("serve", server, f"RUN={first}"))
    assert f"serving trained run {first} as version 1.0" in out and "Serving version 1.0 of 'animals'" in out
    assert f"make -s token CONFIG={server.path}" in out and f"Stop it with: make stop CONFIG={server.path}" in out

    out = succeeds(make("serve", server, f"RUN={second}"))  # while it runs: says so, changes nothing
    assert "already running" in out and RestClient(server).default_version() == "1.0"

    client = RestClient(server)
    workers = [psutil.Process(w["pid"]) for w in client.describe()[0]["workers"]]
    assert succeeds(make("stop", server)).endswith("TorchServe stopped\n")
    assert not any(worker.is_running() for worker in workers), "make stop returned before its workers were gone"

    out = succeeds(make("serve", server, f"RUN={second}"))
    assert f"serving trained run {second} as version 1.1" in out and "Serving version 1.1 of 'animals'" in out
    assert "also registered: 1.0" in out
    assert answers_like(server, second, photo) and client.versions() == {"1.0", "1.1"}
    assert "TorchServe pid " in (status := succeeds(make("status", server)))
    assert "default version 1.1, workers: READY" in status

    succeeds(make("stop", server))
    out = succeeds(make("serve", server))  # no RUN: what answered before answers again
    assert "Serving what TorchServe served last" in out and "Serving version 1.1" in out
    assert answers_like(server, second, photo)

    make_run(first, seed=3)  # the first run's weights change: the same folder is now another model
    succeeds(make("stop", server))
    out = succeeds(make("serve", server, f"RUN={first}"))
    assert "(version 1.2)" in out and answers_like(server, first, photo)
    assert client.versions() == {"1.0", "1.1", "1.2"}
    assert len(snapshots.snapshot_files(server)) <= snapshots.KEPT + 1


def test_nothing_served_yet_serves_the_newest_run_and_says_so(server, tmp_path):
    artifacts = tmp_path / "artifacts"
    older, newer = make_run(artifacts / "older", seed=1), make_run(artifacts / "newer", seed=2)
    os.utime(older / "model.pt", (1, 1))
    out = succeeds(make("serve", server, env=os.environ | {"ANIMALS_ARTIFACTS": str(artifacts)}))
    assert f"Nothing served yet, so the newest trained run, else ImageNet: serving trained run {newer}" in out


def test_a_worker_that_cannot_start_stops_make_serve_with_its_own_error(server, tmp_path):
    broken = make_run(tmp_path / "broken")
    (broken / "model.pt").write_bytes(b"not a state dict")
    result = make("serve", server, f"RUN={broken}")
    assert result.returncode != 0
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "could not start a worker: RuntimeError: " in error and "did not become READY" not in error
    assert "TorchServe is not running" in succeeds(make("status", server))
    assert snapshots.last_snapshot(server) is None, "a start that failed changed what is served next time"


def test_make_serve_checks_the_files_the_config_names(tmp_path):
    config = write_config(tmp_path / "server")
    (config.home / "metrics.yaml").unlink()
    result = make("serve", config, f"RUN={make_run(tmp_path / 'run')}")
    assert result.returncode != 0
    error = f"error: {config.path} names what does not exist: metrics_config={config.home}/metrics.yaml"
    assert result.stderr.splitlines()[0] == error
    assert not config.log_dir.exists(), "TorchServe was started"


def test_requests_leave_no_line_in_the_logs(served, samples):
    """Every log is size-rotated (log4j2.xml) and a request writes no line of its own in any of them."""
    sizes = {path.name: path.stat().st_size for path in served.config.log_dir.glob("*.log")}
    assert {"ts_log.log", "model_log.log", "access_log.log"} <= set(sizes)
    for photo in samples[:20]:
        served.post(photo.read_bytes())
    served.post(b"not an image")
    grown = {path.name: path.stat().st_size - sizes.get(path.name, 0) for path in served.config.log_dir.glob("*.log")}
    assert grown["ts_log.log"] == grown["model_log.log"] == grown["access_log.log"] == 0, grown
    log_config = (REPO_ROOT / "log4j2.xml").read_text()
    assert log_config.count("<RollingFile") == log_config.count("<SizeBasedTriggeringPolicy") == 5


def test_make_token_the_token_kinds_and_ping_without_a_token(served, capsys):
    assert succeeds(make("token", served.config)).strip() == served.tokens.bearer("inference").removeprefix("Bearer ")
    for kind in ("management", "API"):
        with pytest.raises(SystemExit):
            cli.run(server_script.main, ["--config", str(served.config.path), "token", "--kind", kind])
        assert capsys.readouterr().out.strip() == served.tokens.bearer(kind).removeprefix("Bearer ")
    refused = served.send("GET", f"{served.inference_url}/ping")
    assert refused.status_code == 400 and refused.json()["type"] == "InvalidKeyException"


@pytest.mark.slow
def test_make_serve_serves_full_vgg16_from_vgg16_weights(server, vgg16_weights, samples):
    env = os.environ | {"VGG16_WEIGHTS": str(vgg16_weights)}
    out = succeeds(make("serve", server, "IMAGENET=1", env=env))
    assert f"ImageNet vgg16 with the zero-shot animal head (VGG16_WEIGHTS={vgg16_weights})" in out
    assert "READY" in out and "Serving version 1.0 of 'animals'" in out
    client = Client(server)
    answer = client.post(samples[0].read_bytes())
    assert answer.status_code == 200 and len(answer.json()) == 5 and set(answer.json()) <= set(ANIMALS)
    text = client.post(b"a text file\n")
    assert text.status_code == 400 and "not an image" in text.json()["message"]
    assert succeeds(make("stop", server)).endswith("TorchServe stopped\n")
    assert "not running" in succeeds(make("stop", server))


def test_make_serve_without_any_weights_names_both_options(server, tmp_path):
    """No VGG16_WEIGHTS, an empty torch cache, and downloads refused at once by a closed local proxy port."""
    env = {key: value for key, value in os.environ.items() if key != "VGG16_WEIGHTS"}
    offline = {"TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    result = make("serve", server, "IMAGENET=1", env=env | offline | {"HTTPS_PROXY": offline["https_proxy"]})
    assert result.returncode != 0
    message = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "machine with internet" in message and "VGG16_WEIGHTS=/path/to/vgg16.pth" in message
    assert "Traceback" not in result.stderr and not list(server.model_store.glob("*.mar"))


def test_make_serve_with_a_missing_weights_file_says_so(server, tmp_path):
    result = make("serve", server, "IMAGENET=1", env=os.environ | {"VGG16_WEIGHTS": str(tmp_path / "missing.pth")})
    assert result.returncode != 0
    assert "missing.pth is not a file" in result.stderr and "Traceback" not in result.stderr
