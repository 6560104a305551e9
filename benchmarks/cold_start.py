"""The benchmark's cold starts, end to end, each to a first answer: an int8 program in a process of its own, loaded as
compiled when the archive was built, or compiled there (inductor's cache empty, or filled first from torch's
portable compile-cache artifacts: the two ways TorchServe's examples start a compiled model quickly); `make serve`
of the default version, as a second server beside the running one; and a container of the image.

`python -m benchmarks.cold_start FOLDER MODE ARTIFACTS SETTINGS STARTED` is the process the first part starts (one per
mode; STARTED: the parent's time.time() just before it started the process)
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from animals import quantization
from animals.errors import UserError
from animals.inference_settings import InferenceSettings
from serving.client import RestClient, TorchServeError
from serving.config import REPO_ROOT, ServerConfig, read_config, write_moved_config
from serving.image import CONFIG_IN_IMAGE, SHIPPED_CONFIG
from serving.server import WORKER_ENVIRONMENT
from serving.snapshots import PROPERTY, entry_for, models_to_start

AHEAD_OF_TIME = "loads the program compiled when the archive was built"
COMPILES = "compiles the program, inductor's cache empty"
CACHE_ARTIFACTS = "compiles the program, the cache filled from torch's cache artifacts"
MODES = (AHEAD_OF_TIME, COMPILES, CACHE_ARTIFACTS)  # in this order: COMPILES saves what CACHE_ARTIFACTS loads
START_TIMEOUT_S = 600
POLL_INTERVAL_S = 0.25


def program_starts(model: Path, settings: InferenceSettings) -> dict[str, dict]:
    """For each of MODES, a new process's seconds from its start (interpreter and `import torch` included) to the
    answers of its first batch of 1 and of 8, and its resident MiB then. `model` is an int8 model folder with its
    ahead-of-time compiled program; each process has an empty inductor cache of its own."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="cold-start-") as work:
        jit = Path(work) / "jit"  # the same folder without the compiled program: it compiles, as a worker would
        jit.mkdir()
        for entry in model.iterdir():
            if entry.name not in (quantization.COMPILED, quantization.COMPILED_FOR):
                (jit / entry.name).symlink_to(entry.resolve())
        artifacts = Path(work) / "cache-artifacts.bin"
        for mode in MODES:
            cache = tempfile.mkdtemp(prefix="inductor-", dir=work)
            environment = {**os.environ, **WORKER_ENVIRONMENT, "TORCHINDUCTOR_CACHE_DIR": cache, "TMPDIR": cache}
            command = [
                sys.executable, "-m", "benchmarks.cold_start",
                str(model if mode == AHEAD_OF_TIME else jit), mode, str(artifacts), json.dumps(asdict(settings)),
            ]  # fmt: skip
            done = subprocess.run(
                [*command, str(time.time())], cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                timeout=START_TIMEOUT_S,
            )  # fmt: skip
            if done.returncode != 0:
                raise UserError(f"the int8 program's start ({mode}) failed: {_tail(done.stderr)}")
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  int8 program, {mode}: {results[mode]['seconds']:.1f} s")
    return results


def _first_answers(folder: Path, mode: str, artifacts: Path, settings: InferenceSettings, started: float) -> dict:
    """In this process: the int8 program loaded or compiled as a worker does it, then a batch of 1 and one of 8."""
    import torch

    from animals.acceleration import InferenceModel

    if mode == CACHE_ARTIFACTS and artifacts.is_file():
        torch.compiler.load_cache_artifacts(artifacts.read_bytes())
    model = InferenceModel(folder, settings, max_batch=8)
    images = torch.zeros(8, 3, 224, 224)
    model(images[:1])
    model(images)
    result = {"seconds": time.time() - started, "rss_mib": psutil.Process().memory_info().rss / 2**20}
    if mode != AHEAD_OF_TIME:  # inductor's graph cache: what the artifacts can hold (a bypassed graph is not saved)
        counters = torch._dynamo.utils.counters["inductor"]
        result["fx_graph_cache"] = {kind: counters[f"fxgraph_cache_{kind}"] for kind in ("hit", "miss", "bypass")}
    if mode == COMPILES:
        saved = torch.compiler.save_cache_artifacts()
        result["artifacts_mib"] = len(saved[0]) / 2**20 if saved else 0.0
        if saved:
            artifacts.write_bytes(saved[0])
    return result


def serve_to_first_answer(config: ServerConfig, version: str, photo: bytes) -> float:
    """Seconds from `make serve` (TorchServe served `version` last) to its first answer: a second server with the
    config's ports moved and the same model store, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="serve-") as home:
        second = write_moved_config(Path(home), config.path, _free_port, model_store=str(config.model_store))
        models, _ = models_to_start(
            None, config.model_name, config.model_store, version, entry_for(config.archive(version))
        )
        second.snapshot_dir.mkdir(parents=True)
        (second.snapshot_dir / "00000000000000000-snapshot.cfg").write_text(PROPERTY + json.dumps(models) + "\n")
        make = ["make", "-C", str(REPO_ROOT), f"CONFIG={second.path}"]
        started = time.perf_counter()
        try:
            served = subprocess.run([*make, "serve"], capture_output=True, text=True, timeout=START_TIMEOUT_S)
            if served.returncode != 0:
                raise UserError(f"`make serve` of the second server failed: {_tail(served.stdout + served.stderr)}")
            RestClient(second).predict(photo)
            return time.perf_counter() - started
        finally:
            subprocess.run([*make, "stop"], capture_output=True, timeout=START_TIMEOUT_S)


def container_to_first_answer(image: str, photo: bytes) -> float:
    """Seconds from `docker run` of `image` (as the README runs it, its inference port published on loopback) to its
    first answer; the container is removed afterwards."""
    config = read_config(SHIPPED_CONFIG)
    port, name = _free_port(), f"animals-bench-{os.getpid()}"
    started = time.perf_counter()
    try:  # a `docker run` that fails may still have created the container: removed below all the same
        run = subprocess.run(
            ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{urlsplit(config.inference_url).port}",
             image],
            capture_output=True, text=True, timeout=START_TIMEOUT_S,
        )  # fmt: skip
        if run.returncode != 0:
            raise UserError(f"docker run {image} failed: {_tail(run.stderr)}")
        while time.perf_counter() - started < START_TIMEOUT_S:
            token = subprocess.run(
                ["docker", "exec", name, "python", "-m", "scripts.server", "--config", CONFIG_IN_IMAGE, "token"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if token.returncode == 0:
                client = RestClient(config, token.stdout.strip(), inference_url=f"http://127.0.0.1:{port}")
                try:
                    client.predict(photo)
                    return time.perf_counter() - started
                except TorchServeError:  # not listening yet, or no worker READY yet
                    pass
            time.sleep(POLL_INTERVAL_S)
        raise UserError(f"a container of {image} did not answer within {START_TIMEOUT_S} s")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _tail(output: str, lines: int = 5) -> str:
    return " | ".join(output.strip().splitlines()[-lines:]) or "no output"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an int8 model folder")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("artifacts", type=Path, help="torch's compile-cache artifacts: written, or read")
    parser.add_argument("settings", type=json.loads, help="the archive's inference settings, as JSON")
    parser.add_argument("started", type=float, help="time.time() when the parent started this process")
    args = parser.parse_args(argv)
    settings = InferenceSettings(**args.settings)
    print(json.dumps(_first_answers(args.folder, args.mode, args.artifacts, settings, args.started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
