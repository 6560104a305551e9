"""`make serve`, `make stop` and `make status` as a user runs them, each on a config of its own: which model answers
(a run as a version of its own, the same model after a restart, the newest run only when nothing was served yet), a
worker that cannot start, missing files, a stop that waits for the workers, and bounded logs."""

import os
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from animals import cli
from scripts import server as server_script
from serving import snapshots
from serving.client import GrpcClient, RestClient
from serving.config import ServerConfig
from serving.server import CONSOLE_LOG_LIMIT, processes_of, running_pid
from tests import hostile
from tests.support import REPO_ROOT, make_run, write_config
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

    refused = make("serve", server, f"RUN={second}")  # while it runs: a run cannot be served by this command
    assert refused.returncode != 0 and RestClient(server).default_version() == "1.0"
    assert "already running" in refused.stderr and "rollout" in refused.stderr and "make stop" in refused.stderr
    assert "already running" in succeeds(make("serve", server))  # a plain `make serve` again: says so, exit 0

    client = RestClient(server)
    workers = [psutil.Process(w["pid"]) for w in client.describe()[0]["workers"]]
    assert succeeds(make("stop", server)).endswith("TorchServe stopped\n")
    assert not any(worker.is_running() for worker in workers), "make stop returned before its workers were gone"

    out = succeeds(make("serve", server, f"RUN={second}", "WORKERS=1"))  # the archive asks for two workers
    assert f"serving trained run {second} as version 1.1" in out and "Serving version 1.1 of 'animals'" in out
    assert "also registered: 1.0" in out
    assert answers_like(server, second, photo) and client.versions() == {"1.0", "1.1"}
    assert "TorchServe pid " in (status := succeeds(make("status", server)))
    assert status.endswith("default version 1.1, workers: READY\n"), status

    succeeds(make("stop", server))
    console = server.log_dir / "torchserve.out"
    console.write_bytes(b"x" * (CONSOLE_LOG_LIMIT + 1))  # as if it had grown over many starts
    out = succeeds(make("serve", server))  # no RUN: what answered before answers again, with the workers it had
    assert "Serving what TorchServe served last" in out and "Serving version 1.1" in out
    assert answers_like(server, second, photo) and len(client.describe()[0]["workers"]) == 1
    assert console.with_name("torchserve.out.1").stat().st_size == CONSOLE_LOG_LIMIT + 1
    assert console.stat().st_size < CONSOLE_LOG_LIMIT

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


def test_requests_of_every_kind_leave_no_byte_in_any_log(served, samples):
    """Every log is size-rotated (log4j2.xml, torchserve.out at each start), and 100 requests of each kind write no
    byte to any file under the log folder, TorchServe's console output included."""
    logs = served.config.log_dir
    sizes = {path: path.stat().st_size for path in logs.rglob("*") if path.is_file()}
    assert {"ts_log.log", "model_log.log", "access_log.log", "torchserve.out"} <= {path.name for path in sizes}
    photos = [path.read_bytes() for path in samples[:100]]
    grpc = GrpcClient(served.config)
    kinds = {
        "prediction": lambda photo: served.post(photo).status_code == 200,
        "explanation": lambda photo: "heatmap" in served.explain(photo),
        "kserve": lambda photo: served.post(hostile.kserve_v1([photo])).status_code == 200,
        "grpc": lambda photo: len(grpc.predict(photo)) == 5,
        "bad input": lambda photo: served.post(photo[: len(photo) // 3]).status_code == 400,
    }
    for kind, send in kinds.items():
        assert all(send(photo) for photo in photos), kind
    files = (path for path in logs.rglob("*") if path.is_file())
    grown = {str(path.relative_to(logs)): path.stat().st_size - sizes.get(path, 0) for path in files}
    assert not {name: size for name, size in grown.items() if size}, "requests wrote to these logs"
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


def test_a_busy_port_is_named_with_what_holds_it_and_nothing_is_left_running(server, tmp_path):
    """A port of the config already taken (by this test's own process): the start stops at once, naming the address
    and its holder before any model log, and leaves no process of its own behind."""
    port = int(server.properties["metrics_address"].rsplit(":", 1)[1])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = make("serve", server, f"RUN={make_run(tmp_path / 'run')}")
    assert result.returncode != 0
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert f"127.0.0.1:{port} (metrics_address) is in use by python" in error and f"pid {os.getpid()}" in error
    assert "could not be served" not in error and "Another model" not in error
    assert not processes_of(server), "the failed start left processes running"


def test_make_stop_stops_what_a_crashed_frontend_left_behind(server, tmp_path):
    succeeds(make("serve", server, f"RUN={make_run(tmp_path / 'run')}"))
    frontend = psutil.Process(running_pid(server))
    left = [process for process in processes_of(server) if process.pid != frontend.pid]
    assert left, "expected workers"
    left[0].suspend()  # a worker that cannot notice its frontend going (as one busy loading a model does not)
    frontend.kill()
    frontend.wait(timeout=30)
    out = succeeds(make("stop", server))
    assert "TorchServe is not running, but" in out and "left by a start that failed" in out
    assert not processes_of(server) and not any(process.is_running() for process in left)
