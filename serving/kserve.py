"""The KServe configuration (deploy/kserve/config.properties) run on this machine as KServe's PyTorch runtime runs it:
torchserve in the foreground with that config, the archive in its model store as animals.mar, and
TS_SERVICE_ENVELOPE set for the protocol. Only the addresses (to loopback, on other ports if asked) and the model
store (a local folder) change, so that the KServe protocols can be tried, and tested, without a cluster.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from animals.errors import UserError
from serving.client import RestClient
from serving.config import REPO_ROOT, ServerConfig, read_config
from serving.server import ADDRESS_KEYS, check_java, rebind, server_env, worker_states

KSERVE_CONFIG = REPO_ROOT / "deploy" / "kserve" / "config.properties"
ENVELOPES = {"v1": "kserve", "v2": "kservev2"}  # TS_SERVICE_ENVELOPE as KServe sets it for each protocolVersion
ARCHIVE_NAME = "animals.mar"  # the archive the config's model_snapshot loads
PORT_KEYS = ("grpc_inference_port", "grpc_management_port")
HOST = "127.0.0.1"
NO_TOKEN = "tokens-are-off"  # this config turns TorchServe's token check off, as KServe's does


def local_config(home: Path, archive: Path, ports: dict[str, int] | None = None) -> ServerConfig:
    """home/config.properties: the KServe config with every address on loopback (on `ports`, keyed by property,
    where given) and model_store=home/model-store, which holds `archive` as animals.mar."""
    ports = ports or {}
    store = home / "model-store"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy2(archive, store / ARCHIVE_NAME)
    lines = []
    for line in KSERVE_CONFIG.read_text().splitlines():
        key = line.partition("=")[0].strip()
        if key in ADDRESS_KEYS:
            line = rebind(line, HOST)
            if key in ports:
                line = f"{key}={line.partition('=')[2].rsplit(':', 1)[0]}:{ports[key]}"
        elif key in PORT_KEYS and key in ports:
            line = f"{key}={ports[key]}"
        elif key == "model_store":
            line = f"model_store={store}"
        lines.append(line)
    path = home / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    return read_config(path)


def start(config: ServerConfig, protocol: str, output=None) -> subprocess.Popen:
    """torchserve --start --foreground with the config, as KServe's runtime starts it, for `protocol` (v1 or v2)."""
    check_java()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("torchserve")), "--start", "--foreground",
        "--ts-config", str(config.path), "--model-store", str(config.model_store),
    ]  # fmt: skip
    environment = server_env(config) | {"TS_SERVICE_ENVELOPE": ENVELOPES[protocol]}
    return subprocess.Popen(
        command, cwd=config.home, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_until_ready(config: ServerConfig, process: subprocess.Popen, timeout_s: float = 180) -> None:
    """Until every worker of the model is READY, so that a request is answered at once (int8 workers compile and warm
    up before they are READY; KServe's GET /v1/models/animals answers as soon as the model is registered, which is
    not enough), or say why not."""
    deadline = time.monotonic() + timeout_s
    client = RestClient(config, token=NO_TOKEN, timeout=5)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"TorchServe exited with {process.returncode}; see {config.log_dir}")
        states = worker_states(config, client=client)
        if states and all(state == "READY" for state in states):
            return
        time.sleep(0.5)
    raise UserError(f"the model's workers were not READY within {timeout_s:.0f} s; see {config.log_dir}")


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """Stop TorchServe, its frontend and its workers: the whole session `start` made (the torchserve command itself
    only waits for the frontend, and does not pass signals on). Returns once every one of them is gone, so that the
    ports are free again."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signal_number)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process.poll()  # reaps the torchserve command once it has exited
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
