"""Start, stop and inspect the TorchServe that serves the animals model (what `make serve` and `make stop` run)."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from animals.errors import UserError
from serving.client import RestClient, TorchServeError
from serving.config import SAMPLE_IMAGES, ServerConfig, read_keys

READY_TIMEOUT_S = 300
POLL_INTERVAL_S = 1.0
STOP_TIMEOUT_S = 60
LOG_TAIL_LINES = 30
PID_FILE = ".model_server.pid"
FRONTEND_CLASS = "org.pytorch.serve.ModelServer"
SNAPSHOT_PROPERTY = "model_snapshot="
ADDRESS_KEYS = (
    "inference_address", "management_address", "metrics_address", "grpc_inference_address", "grpc_management_address",
)  # fmt: skip
JAVA_INSTALL_HINT = "install it with: sudo apt-get install openjdk-17-jre-headless"


def check_java() -> None:
    """TorchServe's frontend needs Java 11 or newer."""
    java = shutil.which("java")
    if java is None:
        raise UserError(f"TorchServe needs Java 11+ and `java` is not on PATH; {JAVA_INSTALL_HINT}")
    banner = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    major = int(match.group(1)) if match else 0
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < 11:
        raise UserError(
            f"TorchServe needs Java 11+, found {banner.splitlines()[0] if banner else 'unknown'}; {JAVA_INSTALL_HINT}"
        )


def server_env(config: ServerConfig) -> dict[str, str]:
    """Logs, metrics logs and TorchServe's pid file live in the config's logs/ folder, one server per config."""
    logs = str(config.log_dir)
    return {**os.environ, "LOG_LOCATION": logs, "METRICS_LOCATION": logs, "TMPDIR": logs}


def running_pid(config: ServerConfig) -> int | None:
    """The pid of this config's TorchServe, if it is running (a stale pid file or a zombie counts as stopped)."""
    try:
        pid = int((config.log_dir / PID_FILE).read_text().split()[0])
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE and FRONTEND_CLASS in process.cmdline()
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid if alive else None


def start(config: ServerConfig, timeout_s: float = READY_TIMEOUT_S, bind: str | None = None) -> bool:
    """Start TorchServe in the background and wait until the model is READY; False if it was already running."""
    pid = running_pid(config)
    if pid is not None:
        print(f"TorchServe is already running (pid {pid}) at {config.inference_url}; `make stop` stops it")
        return False
    print(f"Starting TorchServe with {config.path} (logs in {config.log_dir})")
    command = torchserve_command(config, bind)
    log_offset = log_size(config)
    with open(config.log_dir / "torchserve.out", "ab") as output:
        subprocess.run(command, cwd=config.home, env=server_env(config), stdout=output, stderr=output, check=True)
    wait_until_ready(config, timeout_s, log_offset)
    return True


def run_in_foreground(config: ServerConfig, bind: str | None) -> None:
    """Become TorchServe in the foreground (the container's command): logs on stdout, signals straight to it."""
    print(f"Starting TorchServe in the foreground with {config.path}" + (f", listening on {bind}" if bind else ""))
    command = torchserve_command(config, bind, foreground=True)
    os.chdir(config.home)
    os.execve(command[0], command, server_env(config))


def torchserve_command(config: ServerConfig, bind: str | None = None, foreground: bool = False) -> list[str]:
    check_java()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(Path(sys.executable).with_name("torchserve")),
        "--start",
        *(["--foreground"] if foreground else []),
        "--ts-config", str(effective_config(config, bind)),
        "--model-store", str(config.model_store),
    ]  # fmt: skip


def effective_config(config: ServerConfig, bind: str | None = None) -> Path:
    """The config TorchServe starts with: config.properties, listening on `bind` instead of its hosts if given, plus
    the models of TorchServe's last snapshot.

    TorchServe restores its last snapshot (registered versions, defaults, workers) only when started without a config
    file; we always pass one, so the snapshot's `model_snapshot` line is carried into a copy of the current config.
    """
    lines = config.path.read_text().splitlines()
    if bind:
        lines = [rebind(line, bind) for line in lines]
    snapshots = sorted((config.log_dir / "config").glob("*.cfg"))
    if snapshots:
        print(f"Restoring the registered models of {snapshots[-1].name}")
        models = [line for line in snapshots[-1].read_text().splitlines() if line.startswith(SNAPSHOT_PROPERTY)]
        lines += [f"# Registered models restored from {snapshots[-1].name}", *models]
    if not bind and not snapshots:
        return config.path
    effective = config.log_dir / "effective.properties"
    effective.write_text("\n".join(lines) + "\n")
    return effective


def rebind(line: str, host: str) -> str:
    """An address line of the config with its host replaced; other lines unchanged."""
    key, _, value = line.partition("=")
    if key.strip() in ADDRESS_KEYS:
        return f"{key}={re.sub(r'^(https?://)?[^:/]+', lambda match: (match.group(1) or '') + host, value.strip())}"
    return line


def health(config: ServerConfig) -> str:
    """ "Healthy" when /ping says so (the container's HEALTHCHECK and the Kubernetes probes), else one clear error."""
    try:
        status = RestClient(config).ping()
    except TorchServeError as error:
        raise UserError(f"TorchServe at {config.inference_url} is not healthy: {error}") from error
    if status != "Healthy":
        raise UserError(f"TorchServe at {config.inference_url} answers {status!r}")
    return status


def wait_until_ready(config: ServerConfig, timeout_s: float = READY_TIMEOUT_S, log_offset: int = 0) -> None:
    """Poll the management API until a worker of the model is READY; on failure show the end of the logs.

    Fails early when TorchServe exits or logs that the model failed to load (after `log_offset` in ts_log.log).
    """
    print(f"Waiting for model {config.model_name!r} to be READY", end="", flush=True)
    deadline = time.monotonic() + timeout_s
    problem = f"did not become READY in {timeout_s:.0f} s"
    while time.monotonic() < deadline:
        if "READY" in model_worker_states(config):
            print(" READY")
            return
        if running_pid(config) is None:
            problem = "could not be served: TorchServe exited"
            break
        if load_failed(config, log_offset):
            problem = "failed to load (its handler raised, see the model log below)"
            break
        print(".", end="", flush=True)
        time.sleep(POLL_INTERVAL_S)
    print()
    tail = log_tail(config)
    stop(config)
    raise UserError(f"model {config.model_name!r} {problem}; TorchServe was stopped.\n{tail}")


def log_size(config: ServerConfig) -> int:
    path = config.log_dir / "ts_log.log"
    return path.stat().st_size if path.is_file() else 0


def load_failed(config: ServerConfig, log_offset: int) -> bool:
    """Whether TorchServe logged a failed model load since `log_offset`."""
    path = config.log_dir / "ts_log.log"
    if not path.is_file():
        return False
    with open(path, "rb") as log:
        log.seek(log_offset)
        return b"Load model failed" in log.read()


def model_worker_states(config: ServerConfig) -> list[str]:
    """The status of each worker of the model's versions, or [] while TorchServe cannot answer yet."""
    try:
        described = RestClient(config).describe()
    except UserError:  # no key file yet, not listening yet, or the model not registered yet
        return []
    return [worker["status"] for version in described for worker in version.get("workers", [])]


def log_tail(config: ServerConfig, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of TorchServe's main and model logs, to show why a start failed."""
    parts = []
    for name in ("ts_log.log", "model_log.log"):
        path = config.log_dir / name
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs in {config.log_dir})"


def stop(config: ServerConfig) -> bool:
    """Stop this config's TorchServe; False when it was not running."""
    pid = running_pid(config)
    if pid is None:
        print("TorchServe is not running; nothing to stop")
        return False
    print(f"Stopping TorchServe (pid {pid})")
    torchserve = str(Path(sys.executable).with_name("torchserve"))
    subprocess.run([torchserve, "--stop"], cwd=config.home, env=server_env(config), capture_output=True, check=False)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running_pid(config) is not None and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S / 4)
    if running_pid(config) is not None:
        print(f"TorchServe did not stop in {STOP_TIMEOUT_S} s; killing it and its workers")
        with contextlib.suppress(psutil.NoSuchProcess):
            frontend = psutil.Process(pid)
            for process in [*frontend.children(recursive=True), frontend]:
                process.kill()
    print("TorchServe stopped")
    return True


def examples(config: ServerConfig) -> str:
    """Ready-to-paste requests for a running server."""
    keys = read_keys(config)
    url = f"{config.inference_url}/predictions/{config.model_name}"
    photo = next(iter(sorted(SAMPLE_IMAGES.glob("*/*.jp*g"))), Path("photo.jpg"))
    return "\n".join(
        [
            "Try it:",
            f"  TOKEN={keys['inference']}",
            f'  curl -H "Authorization: Bearer $TOKEN" -T {photo} {url}',
            f'  curl -H "Authorization: Bearer $TOKEN" -F "data=@{photo}" {url}',
            f"  (tokens are in {config.key_file}; `make token` prints the current inference token)",
            "Stop it with: make stop",
        ]
    )


def status(config: ServerConfig) -> str:
    """One line: whether TorchServe runs, and what the default version's workers are doing."""
    pid = running_pid(config)
    if pid is None:
        return "TorchServe is not running"
    return f"TorchServe pid {pid}, workers: {', '.join(model_worker_states(config)) or 'none'}"
