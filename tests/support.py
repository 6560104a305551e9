"""Test helpers: small real models, a TorchServe config on free loopback ports, and an HTTP client for it."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import torch
import yaml
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from animals.labels import ANIMALS, write_index_to_name
from animals.model import ModelSpec, build_model
from handler.animals_handler import AnimalsHandler
from serving.archive import build_archive, staged, trained_run_source
from serving.client import RestClient
from serving.config import DEFAULT_CONFIG, MODEL_NAME, SAMPLE_IMAGES, ServerConfig, write_moved_config
from serving.publish import compiled_and_checked, publish
from serving.server import start, stop

REPO_ROOT = Path(__file__).resolve().parent.parent
# Ports for the tests' servers: below Linux's ephemeral range (which clients' connections use), a block of its own
# for each pytest-xdist worker, so that two workers never pick the same port.
PORT_BLOCK, FIRST_PORT = 5000, 15000
SAMPLE_DIR = SAMPLE_IMAGES
TINY_SPEC = ModelSpec(arch="vgg16", width=1 / 16)
SMALL_VGG = ["--arch", "vgg11", "--width", "0.125", "--batch-size", "16", "--workers", "0"]  # training arguments
# The shapes model (--lr 0.0005, --augment whole, cosine over 12 epochs, channels-last): validation accuracy 100% from
# epoch 11, the epoch training keeps; 100% on its 50 test images. (10 epochs stopped at 94%.)
SHAPES_EPOCHS = 12
HTTP_TIMEOUT_S = 60


def free_port() -> int:
    """A free loopback port in this test process's block (gw0, gw1, ...: one block each)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = FIRST_PORT + PORT_BLOCK * int(worker or 0)
    for port in random.sample(range(first, first + PORT_BLOCK), PORT_BLOCK):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORT_BLOCK - 1}")


def sample_images() -> list[Path]:
    return sorted(path for path in SAMPLE_DIR.glob("*/*") if path.suffix.lower() in (".jpg", ".jpeg"))


def make_run(run: Path, spec: ModelSpec = TINY_SPEC, seed: int = 0) -> Path:
    """A run folder as training writes it, with random weights whose logits are spread apart (no near-ties)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    with torch.no_grad():
        model.classifier[6].weight.mul_(50)
    run.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run / "model.pt")
    spec.save(run / "model.json")
    write_index_to_name(ANIMALS, run / "index_to_name.json")
    return run


def copy_of_repository(destination: Path) -> Path:
    """The repository's files as a clone would have them (plus uncommitted edits, without ignored files), using this
    checkout's .venv. Place it beside the repository (a sibling folder) when ../shared must be there too."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    (destination / ".venv").symlink_to(REPO_ROOT / ".venv")
    for git in (["init", "-q"], ["add", "-A"]):  # a repository itself, so that a test in it can copy it again
        subprocess.run(["git", *git], cwd=destination, capture_output=True, check=True)
    return destination


def write_config(home: Path, source: Path = DEFAULT_CONFIG, with_store: bool = True, **overrides: str) -> ServerConfig:
    """A copy of a config (the project's, by default) with every port free in this test process's block, so tests
    never meet `make serve`'s server (serving.config.write_moved_config)."""
    return write_moved_config(home, source, free_port, with_store, **overrides)


# Set by `make test` or a user's shell, and read by the commands a test runs as a user would (make, the README's
# blocks): they start without them.
OUTSIDE_SETTINGS = ("TORCHSERVE_CONFIG", "VGG16_WEIGHTS", "ANIMALS_ARTIFACTS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def environment_of_a_new_shell() -> dict[str, str]:
    """This process's environment without OUTSIDE_SETTINGS."""
    return {key: value for key, value in os.environ.items() if key not in OUTSIDE_SETTINGS}


def archive_of(
    run: Path, archive: Path, version: str = "1.0", handler: dict | None = None, calibration: Path | None = None
) -> Path:
    """A run's archive built where a user keeps one before registering it (not in the model store), as `make archive`
    builds it (an int8 one compiled ahead of time and checked, whatever its agreement)."""
    with staged(trained_run_source(run), handler, calibration) as stage:
        build_archive(archive, stage, MODEL_NAME, version, compiled_and_checked(stage, minimum=0.0))
    return archive


@contextmanager
def own_server(home: Path, run: Path) -> Iterator[ServerConfig]:
    """A TorchServe on free loopback ports serving `run` as its default version, stopped afterwards."""
    config = write_config(home)
    try:
        serve(config, run)
        yield config
    finally:
        stop(config)


def serve(config: ServerConfig, run: Path, timeout_s: float = 180) -> str:
    """Put the run in the model store as a version of its own, start TorchServe with it as the default; its version."""
    version, _ = publish(config, trained_run_source(run))
    start(config, version, timeout_s=timeout_s)
    return version


class Client(RestClient):
    """The project's REST client, with raw requests for the answers the tests look at (status codes, odd bodies)."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config, timeout=HTTP_TIMEOUT_S)

    def headers(self, kind: str = "inference") -> dict[str, str]:
        return {"Authorization": self.tokens.bearer(kind)}

    def post(self, body: bytes | None = None, **kwargs) -> requests.Response:
        """POST /predictions/animals as given: the token unless `headers` are given, the answer as it came."""
        url = f"{self.inference_url}/predictions/{self.model}"
        return self.send("POST", url, "inference", data=body, **kwargs)

    def get(self, url: str, kind: str = "inference") -> requests.Response:
        return self.send("GET", url, kind)


def handler_context(model_dir: Path, batch_size: int) -> Context:
    """A TorchServe Context for an unpacked archive, as the worker builds it, with the project's metrics."""
    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    model_yaml = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    metrics = MetricsCacheYamlImpl(str(REPO_ROOT / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "animals"
    context = Context("animals", str(model_dir), manifest, batch_size, None, "0.12.0", True, metrics, model_yaml)
    context.request_processor = [RequestProcessor({}) for _ in range(batch_size)]
    context.request_ids = {index: f"request-{index}" for index in range(batch_size)}
    metrics.request_ids = context.request_ids
    return context


def loaded_handler(model_dir: Path, batch_size: int = 1) -> AnimalsHandler:
    """The handler initialised in this process. It sets torch's thread count for its worker (model-config.yaml's
    handler.threads); the test process gets its own back, so that later tests do not run on one thread."""
    threads = torch.get_num_threads()
    handler = AnimalsHandler()
    try:
        handler.initialize(handler_context(model_dir, batch_size))
    finally:
        torch.set_num_threads(threads)
    return handler


def run_handler(
    handler: AnimalsHandler, model_dir: Path, bodies: list[bytes], explain: bool = False
) -> tuple[list, list]:
    """Run one batch through the handler (as explanation requests if `explain`); return the answers and each request's
    (status, phrase)."""
    context = handler_context(model_dir, len(bodies))
    if explain:
        context.request_processor = [RequestProcessor({"explain": "True"}) for _ in bodies]
    answers = handler.handle([{"body": bytearray(body)} for body in bodies], context)
    return answers, [context.get_response_status(index) for index in range(len(bodies))]


@contextmanager
def own_page(config: ServerConfig, corrections_dir: Path, **environment: str) -> Iterator[str]:
    """The upload page served as `make web` serves it (waitress, the database migrated at start) against `config`'s
    TorchServe, keeping corrections in `corrections_dir` (and the database `environment` names); its URL."""
    port = free_port()
    env = os.environ | {
        "TORCHSERVE_CONFIG": str(config.path),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "CORRECTIONS_DIR": str(corrections_dir),
        **environment,
    }
    command = [sys.executable, "-m", "webapp.serve", "--listen", f"127.0.0.1:{port}"]
    log = (corrections_dir.parent / f"page-{port}.log").open("wb")
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while not page_answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the page's server did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def page_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def postgresql_bin() -> Path:
    """The newest PostgreSQL of Debian's packages (`make test` installs it: scripts/ensure_package.sh)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not found:
        raise AssertionError("PostgreSQL is not installed: apt-get install postgresql (make test does)")
    return found[-1].parent


@contextmanager
def own_postgresql() -> Iterator[str]:
    """A real PostgreSQL server in a temporary folder, on a free loopback port, with a database for the corrections;
    its URL. As root the server runs as the postgres user (initdb refuses root); the folder is removed afterwards."""
    binaries = postgresql_bin()
    home = Path(tempfile.mkdtemp(prefix="animals-postgresql-"))  # outside pytest's 0700 temp: the server must reach it
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_owner, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout[-1500:]}{done.stderr[-1500:]}"

    data = home / "data"
    run(str(binaries / "initdb"), "-D", str(data), "--auth=trust", "--username=animals", "--no-sync", "-E", "UTF8")
    options = f"-h 127.0.0.1 -p {port} -k {home} -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "server.log"), "-w", "start")
    try:
        run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "animals", "corrections")
        yield f"postgres://animals@127.0.0.1:{port}/corrections"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)
