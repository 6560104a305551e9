"""Start, stop and inspect the TorchServe that serves the animals model (what `make serve` and `make stop` run)."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from animals.errors import UserError
from serving import snapshots
from serving.client import RestClient, TorchServeError
from serving.config import SAMPLE_IMAGES, ServerConfig, check_named_files, read_properties
from serving.history import push_history
from serving.snapshots import PROPERTY

READY_TIMEOUT_S = 300
POLL_INTERVAL_S = 1.0
STOP_TIMEOUT_S = 60
LEFTOVER_TIMEOUT_S = 5  # processes whose frontend is gone have nothing to finish
LOG_TAIL_LINES = 15
PID_FILE = ".model_server.pid"
FRONTEND_CLASS = "org.pytorch.serve.ModelServer"
CONSOLE_LOG = "torchserve.out"
LOGS = (CONSOLE_LOG, "ts_log.log", "model_log.log")  # what a failed start shows, the server's own output first
CONSOLE_LOG_LIMIT = 10 * 2**20  # log4j2.xml's rollover size
# ts_log lines that mean a version's worker died while starting (TorchServe then retries it, for ever, backing off);
# the worker's own error is the first exception line it wrote to model_log.
WORKER_FAILED = ("Retry worker", "Load model failed")
ERROR = re.compile(r"MODEL_LOG - ([\w.]*(?:Error|Exception)\b: .*)$")
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


# OpenMP threads that wait for work sleep instead of spinning: with `handler.threads: shared` a lone batch computes on
# every core and a second worker may start on one of them; spinning threads made that cost 7% of the throughput at
# concurrency 16 (measured: README, Performance).
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def server_env(config: ServerConfig) -> dict[str, str]:
    """Logs, metrics logs and TorchServe's pid file live in the config's logs/ folder, one server per config; its
    workers get WORKER_ENVIRONMENT unless the caller's environment says otherwise."""
    logs = str(config.log_dir)
    return {**WORKER_ENVIRONMENT, **os.environ, "LOG_LOCATION": logs, "METRICS_LOCATION": logs, "TMPDIR": logs}


def running_pid(config: ServerConfig) -> int | None:
    """The pid of this config's TorchServe, if it is running (a stale pid file or a zombie counts as stopped)."""
    try:
        pid = int((config.log_dir / PID_FILE).read_text().split()[0])
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE and FRONTEND_CLASS in process.cmdline()
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid if alive else None


def start(
    config: ServerConfig,
    default: str | None = None,
    timeout_s: float = READY_TIMEOUT_S,
    bind: str | None = None,
    workers: int | None = None,
) -> bool:
    """Start TorchServe in the background with the versions of its last snapshot and `default` made the default
    version (None: the snapshot's default stays), served by `workers` workers if given, and wait until the default
    version is READY. False if TorchServe was already running."""
    pid = running_pid(config)
    if pid is not None:
        print(f"TorchServe is already running (pid {pid}) at {config.inference_url}; `{config.make('stop')}` stops it")
        return False
    previous = snapshots.default_version(snapshots.last_snapshot(config), config.model_name)
    command, default = torchserve_command(config, default, bind, workers=workers)
    print(f"Starting TorchServe with {config.path} (logs in {config.log_dir})")
    console = console_log(config)
    offsets, earlier_snapshots = log_offsets(config), set(snapshots.snapshot_files(config))
    with open(console, "ab") as output:
        subprocess.run(command, cwd=config.home, env=server_env(config), stdout=output, stderr=output, check=True)
    try:
        wait_until_ready(config, default, timeout_s, offsets)
    except UserError:
        for path in set(snapshots.snapshot_files(config)) - earlier_snapshots:
            path.unlink()  # a start that failed leaves what is served next time as it was
        raise
    if previous not in (None, default):
        push_history(config, previous)
    push_history(config, default)
    return True


def console_log(config: ServerConfig) -> Path:
    """Where a background TorchServe's console goes: torchserve.out, moved to torchserve.out.1 (one kept) when a start
    finds it over CONSOLE_LOG_LIMIT, so that it stays bounded like the logs log4j2.xml rotates."""
    path = config.log_dir / CONSOLE_LOG
    if path.is_file() and path.stat().st_size > CONSOLE_LOG_LIMIT:
        path.replace(path.with_name(CONSOLE_LOG + ".1"))
    return path


def run_in_foreground(config: ServerConfig, default: str | None, bind: str | None, workers: int | None = None) -> int:
    """Run TorchServe in the foreground (the container's command), logs on stdout, until it exits or SIGTERM/SIGINT
    asks it to stop: then stop the frontend and every worker and return 0, as `docker stop` expects."""
    command, _ = torchserve_command(config, default, bind, foreground=True, workers=workers)
    print(f"Starting TorchServe in the foreground with {config.path}" + (f", listening on {bind}" if bind else ""))
    launcher = subprocess.Popen(command, cwd=config.home, env=server_env(config))
    stopping = threading.Event()

    def ask_to_stop(signum: int, _frame: object) -> None:
        print(f"{signal.Signals(signum).name}: stopping TorchServe", flush=True)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, ask_to_stop)
    while launcher.poll() is None and not stopping.wait(POLL_INTERVAL_S):
        pass
    if stopping.is_set():
        stop(config)
        launcher.wait()
        return 0
    return launcher.returncode


def torchserve_command(
    config: ServerConfig,
    default: str | None,
    bind: str | None = None,
    foreground: bool = False,
    workers: int | None = None,
) -> tuple[list[str], str]:
    """The torchserve command line, and the version it will make the default."""
    check_java()
    check_named_files(config)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    effective, default = write_effective_config(config, default, bind, workers)
    check_addresses_free(read_properties(effective))
    command = [
        str(Path(sys.executable).with_name("torchserve")),
        "--start",
        *(["--foreground"] if foreground else []),
        "--ts-config", str(effective),
        "--model-store", str(config.model_store),
    ]  # fmt: skip
    return command, default


def write_effective_config(
    config: ServerConfig, default: str | None, bind: str | None = None, workers: int | None = None
) -> tuple[Path, str]:
    """Write the config TorchServe starts with; return it and the default version it names.

    It is the config, listening on `bind` instead of its hosts if given, plus `model_snapshot`: the versions of
    TorchServe's last snapshot (registered versions, default, workers; TorchServe restores a snapshot itself only
    when started without a config file) and `default` made the default, with `workers` workers if given.
    """
    snapshot = snapshots.last_snapshot(config)
    snapshots.prune(config)
    entry = snapshots.entry_for(config.archive(default)) if default else None
    models, gone = snapshots.models_to_start(snapshot, config.model_name, config.model_store, default, entry)
    for version in gone:
        print(f"Version {version} is not restored: its archive is no longer in {config.model_store}")
    default = snapshots.default_version(models, config.model_name)
    if default is None:
        raise UserError(
            f"nothing to serve: no default version in {config.model_store}; "
            f"`{config.make('serve')} RUN=artifacts/RUN` or `IMAGENET=1` chooses one"
        )
    if workers is not None:
        models["models"][config.model_name][default] |= {"minWorkers": workers, "maxWorkers": workers}
    lines = config.path.read_text().splitlines()
    if bind:
        lines = [rebind(line, bind) for line in lines]
    lines += ["# The models to serve: the last snapshot's, with the default asked for", PROPERTY + json.dumps(models)]
    config.effective_path.write_text("\n".join(lines) + "\n")
    return config.effective_path, default


def listening_addresses(properties: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Where a TorchServe started with these properties listens: {property: (host, port)}."""
    addresses = {}
    for key in ("inference_address", "management_address", "metrics_address"):
        if key in properties:
            url = urlsplit(properties[key])
            addresses[key] = (url.hostname or "127.0.0.1", url.port or 80)
    for kind, port in (("inference", "7070"), ("management", "7071")):
        address = properties.get(f"grpc_{kind}_address", "127.0.0.1")
        addresses[f"grpc_{kind}_port"] = (address, int(properties.get(f"grpc_{kind}_port", port)))
    return addresses


def check_addresses_free(properties: dict[str, str]) -> None:
    """One line naming each address another process already listens on, and what holds it, before TorchServe is
    started (it would fail to bind, after its workers had started loading the model)."""
    busy = [
        f"{host}:{port} ({key}) is in use{holder_of(port)}"
        for key, (host, port) in listening_addresses(properties).items()
        if not can_bind(host, port)
    ]
    if busy:
        raise UserError(
            f"cannot start TorchServe: {'; '.join(busy)}. Stop what holds it (another `make serve` or `make kserve`: "
            "`make stop CONFIG=...`), or give this server other ports in its config"
        )


def can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: a closing socket is no obstacle
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def holder_of(port: int) -> str:
    """ " by NAME (pid N)" for the process listening on `port`, when this user may see it; else ""."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return ""
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(connection.pid)
                return f" by {process.name()} (pid {connection.pid}: {' '.join(process.cmdline())[:80]})"
    return ""


def rebind(line: str, host: str) -> str:
    """An address line of the config with its host replaced; other lines unchanged."""
    key, _, value = line.partition("=")
    if key.strip() in ADDRESS_KEYS:
        return f"{key}={re.sub(r'^(https?://)?[^:/]+', lambda match: (match.group(1) or '') + host, value.strip())}"
    return line


def health(config: ServerConfig) -> str:
    """ "Healthy" when /ping says so and the default version has a READY worker (the container's HEALTHCHECK and the
    Kubernetes probes: /ping alone says Healthy while workers that cannot load are being retried), else one clear
    error."""
    try:
        status = RestClient(config).ping()
    except TorchServeError as error:
        raise UserError(f"TorchServe at {config.inference_url} is not healthy: {error}") from error
    if status != "Healthy":
        raise UserError(f"TorchServe at {config.inference_url} answers {status!r}")
    states = worker_states(config)
    if "READY" not in states:
        raise UserError(f"no worker of the default version is READY yet (workers: {', '.join(states) or 'none'})")
    return status


def wait_until_ready(config: ServerConfig, version: str, timeout_s: float, offsets: dict[str, int]) -> None:
    """Poll the management API until a worker of `version` is READY. Stop TorchServe and say why as soon as it exits
    or a worker cannot start (with the worker's own error line), or when the time is up."""
    print(f"Waiting for version {version} of {config.model_name!r} to be READY", end="", flush=True)
    deadline = time.monotonic() + timeout_s
    problem = f"did not become READY in {timeout_s:.0f} s"
    while time.monotonic() < deadline:
        if "READY" in worker_states(config, version):
            print(" READY")
            return
        if running_pid(config) is None:
            problem = "could not be served: TorchServe exited"
            break
        failure = worker_failure(config, version, offsets)
        if failure:
            problem = f"could not start a worker: {failure}"
            break
        print(".", end="", flush=True)
        time.sleep(POLL_INTERVAL_S)
    print()
    print(log_tail(config, offsets))
    stop(config)
    raise UserError(
        f"version {version} of {config.model_name!r} {problem} (TorchServe was stopped; logs above). "
        f"Another model: `{config.make('serve')} RUN=artifacts/RUN` or `IMAGENET=1`"
    )


def log_offsets(config: ServerConfig) -> dict[str, int]:
    """How long TorchServe's logs are now, so that only what a start adds is read."""
    return {name: (config.log_dir / name).stat().st_size if (config.log_dir / name).is_file() else 0 for name in LOGS}


def new_log_lines(config: ServerConfig, name: str, offsets: dict[str, int]) -> list[str]:
    path = config.log_dir / name
    if not path.is_file():
        return []
    with open(path, "rb") as log:
        log.seek(offsets.get(name, 0))
        return log.read().decode(errors="replace").splitlines()


def worker_failure(config: ServerConfig, version: str, offsets: dict[str, int]) -> str | None:
    """The worker's own error line, when TorchServe logged since `offsets` that a worker of `version` died."""
    worker = f"-{config.model_name}_{version}"
    failed = [
        line
        for line in new_log_lines(config, "ts_log.log", offsets)
        if worker in line and any(signal in line for signal in WORKER_FAILED)
    ]
    if not failed:
        return None
    errors = (ERROR.search(line) for line in new_log_lines(config, "model_log.log", offsets) if worker in line)
    return next((match.group(1) for match in errors if match), failed[0].split(" - ", 1)[-1])


def worker_states(config: ServerConfig, version: str | None = None, client: RestClient | None = None) -> list[str]:
    """The status of each worker of a version (default: the default version), or [] while TorchServe cannot answer.
    `client`: one with a token of its own (default: the config's key file)."""
    try:
        described = (client or RestClient(config)).describe(version)
    except UserError:  # no key file yet, not listening yet, or the model not registered yet
        return []
    return [worker["status"] for description in described for worker in description.get("workers", [])]


def log_tail(config: ServerConfig, offsets: dict[str, int], lines: int = LOG_TAIL_LINES) -> str:
    """The last lines a start added to TorchServe's console output, main log and model log, to show why it failed."""
    parts = [
        f"--- last lines of {config.log_dir / name} ---\n" + "\n".join(added[-lines:])
        for name in LOGS
        if (added := new_log_lines(config, name, offsets))
    ]
    return "\n".join(parts) or f"(nothing new in the logs in {config.log_dir})"


def stop(config: ServerConfig) -> bool:
    """Stop this config's TorchServe and return once the frontend and every worker are gone; False when it was not
    running."""
    pid = running_pid(config)
    if pid is None:
        left = processes_of(config)
        if not left:
            print("TorchServe is not running; nothing to stop")
            return False
        print(f"TorchServe is not running, but {len(left)} of its processes are (left by a start that failed)")
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(left, timeout=LEFTOVER_TIMEOUT_S)
    else:
        print(f"Stopping TorchServe (pid {pid})")
        processes = processes_of(config)
        torchserve = str(Path(sys.executable).with_name("torchserve"))
        stopping = subprocess.run([torchserve, "--stop"], cwd=config.home, env=server_env(config), capture_output=True)
        if stopping.returncode != 0:
            print(f"torchserve --stop failed ({stopping.returncode}); stopping its processes directly")
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT_S)
    if alive:
        print(f"TorchServe did not stop in {STOP_TIMEOUT_S} s; killing {len(alive)} of its processes")
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)
    print("TorchServe stopped")
    return True


def processes_of(config: ServerConfig) -> list[psutil.Process]:
    """Every process of this config's TorchServe (frontend, workers, their children), running or left behind: they
    carry the config's log folder in their environment (server_env)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("LOG_LOCATION") == str(config.log_dir) and process.pid != os.getpid():
                found.append(process)
    return found


def summary(config: ServerConfig) -> str:
    """What answers now, and ready-to-paste requests for it (with the CONFIG in use)."""
    client = RestClient(config)
    default = client.default_version()
    url = f"{config.inference_url}/predictions/{config.model_name}"
    photo = next(iter(sorted(SAMPLE_IMAGES.glob("*/*.jp*g"))), Path("photo.jpg"))
    others = sorted(client.versions() - {default})
    return "\n".join(
        [
            f"Serving version {default} of {config.model_name!r} at {url}"
            + (f" (also registered: {', '.join(others)}, each at {url}/VERSION)" if others else ""),
            "Try it:",
            f"  TOKEN=$({config.make('-s token')})",
            f'  curl -H "Authorization: Bearer $TOKEN" -T {photo} {url}',
            f'  curl -H "Authorization: Bearer $TOKEN" -F "data=@{photo}" {url}',
            f"Stop it with: {config.make('stop')}",
        ]
    )


def status(config: ServerConfig) -> str:
    """One line: whether TorchServe runs, its default version, and what that version's workers are doing."""
    pid = running_pid(config)
    if pid is None:
        return "TorchServe is not running"
    try:
        default = f"default version {RestClient(config).default_version()}"
    except UserError as error:
        default = f"no answer from the management API ({error})"
    return f"TorchServe pid {pid}, {default}, workers: {', '.join(worker_states(config)) or 'none'}"


def registered_versions(config: ServerConfig) -> set[str]:
    """The versions registered now, or none when TorchServe is not running."""
    return RestClient(config).versions() if running_pid(config) is not None else set()
