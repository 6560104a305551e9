"""Measurements of the running TorchServe: closed-loop levels and the server's CPU use, worker cold start and memory,
and the same weights served in each precision (int8, bf16, fp32) as versions of their own, side by side."""

import json
import shutil
import statistics
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from animals import quantization
from animals.acceleration import effective_precision
from benchmarks.load import LoadResult, run_load
from serving.archive import ModelSource
from serving.client import RestClient
from serving.config import ServerConfig
from serving.publish import publish
from serving.record import MANIFEST
from serving.server import running_pid
from serving.store import archive_settings, remove_archive

# The benchmark's temporary versions are labelled bench-int8, bench-bf16, bench-fp32: never a label a user builds
# (`make archive` numbers its labels), and removed with their archives afterwards.
BENCH_LABEL_PREFIX = "bench-"
JIT_LABEL = f"{BENCH_LABEL_PREFIX}int8-jit"


@dataclass
class Level:
    label: str
    concurrency: int
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    server_cpu_percent: float


def server_processes(config: ServerConfig) -> list[psutil.Process]:
    frontend = psutil.Process(running_pid(config))
    return [frontend, *frontend.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(label: str, send, concurrency: int, duration: float, warmup: float, processes) -> Level:
    """A warm-up, then `duration` seconds of closed-loop load from `concurrency` clients."""
    run_load(send, 10**9, concurrency, warmup)
    cpu_before = cpu_seconds(processes)
    result: LoadResult = run_load(send, 10**9, concurrency, duration)
    cpu = (cpu_seconds(processes) - cpu_before) / result.seconds * 100
    errors = len(result.outcomes) - result.count("ok")
    return Level(
        label, concurrency, result.throughput(), result.percentile_ms(0.5), result.percentile_ms(0.95),
        result.percentile_ms(0.99), errors, cpu,
    )  # fmt: skip


def worker_cold_start(client: RestClient, config: ServerConfig, version: str) -> tuple[float, float]:
    """Seconds to bring a version's worker from nothing to READY (scale 0 -> 1, synchronous: loading, and compiling
    where the archive compiles), and that worker's RSS in MiB. Its worker counts are put back afterwards."""
    described = client.describe(version)[0]
    client.scale(version, 0, 0)
    try:
        started = time.perf_counter()
        client.scale(version, 1, 1)
        seconds = time.perf_counter() - started
    finally:
        client.scale(version, described["minWorkers"], described["maxWorkers"])
    pid = client.describe(version)[0]["workers"][0]["pid"]
    return seconds, psutil.Process(pid).memory_info().rss / 2**20


def jit_cold_start(client: RestClient, config: ServerConfig, archive: Path) -> dict[str, float]:
    """Seconds to bring a worker of `archive` without its ahead-of-time compiled program from nothing to READY: it
    compiles the int8 program itself, as every int8 worker did before archives carried the compiled one (and as a
    worker on a CPU the compiled one cannot run on still does): first with inductor's cache in the server's TMPDIR
    emptied, then again with the cache that start filled. The copy is registered as its own version and removed
    afterwards."""
    copy = config.archive(JIT_LABEL)
    try:
        with zipfile.ZipFile(archive) as packed, zipfile.ZipFile(copy, "w") as stripped:
            for entry in packed.infolist():
                if entry.filename in (quantization.COMPILED, quantization.COMPILED_FOR):
                    continue
                data = packed.read(entry.filename)
                if entry.filename == MANIFEST:
                    manifest = json.loads(data)
                    manifest["model"]["modelVersion"] = JIT_LABEL
                    data = json.dumps(manifest).encode()
                stripped.writestr(entry, data)
        client.register(copy.name, 1, None, None)
        try:
            seconds = {}
            for cache in ("cache_empty", "cache_present"):
                client.scale(JIT_LABEL, 0, 0)
                if cache == "cache_empty":
                    for folder in config.log_dir.glob("torchinductor_*"):
                        shutil.rmtree(folder)
                started = time.perf_counter()
                client.scale(JIT_LABEL, 1, 1)
                seconds[cache] = time.perf_counter() - started
            return seconds
        finally:
            client.unregister(JIT_LABEL)
    finally:
        copy.unlink(missing_ok=True)


def server_rss_mib(client: RestClient, config: ServerConfig, version: str) -> dict[str, float]:
    """Resident memory in MiB of the frontend and of each of `version`'s workers: what a server of that version alone
    holds (after its load levels, with their buffers and caches warm)."""
    frontend = psutil.Process(running_pid(config)).memory_info().rss / 2**20
    pids = [worker["pid"] for worker in client.describe(version)[0]["workers"]]
    workers = [psutil.Process(pid).memory_info().rss / 2**20 for pid in pids]
    return {"frontend": frontend, "workers": workers, "total": frontend + sum(workers)}


def explanation_cost(client: RestClient, photos: list[bytes], version: str, count: int = 16) -> dict[str, float]:
    """Median milliseconds of a prediction and of an explanation of the same photos, one request at a time, after
    one of each (the first explanation loads what Grad-CAM needs)."""
    timings = {}
    for kind, call in (("prediction", client.predict), ("explanation", client.explain)):
        call(photos[0], version)
        times = []
        for photo in photos[:count]:
            started = time.perf_counter()
            call(photo, version)
            times.append((time.perf_counter() - started) * 1000)
        timings[f"{kind}_ms"] = statistics.median(times)
    return timings


@contextmanager
def precision_versions(
    config: ServerConfig, model: Path, precisions: tuple[str, ...], calibration: Path
) -> Iterator[dict[str, str]]:
    """A served version per precision of the default version's weights (extracted to `model`): the default for its
    own precision, a temporary version of its own for each other one, unregistered and removed afterwards. int8
    versions are calibrated on `calibration` and built whatever their agreement (the record keeps it)."""
    client = RestClient(config)
    default = client.default_version()
    default_precision = effective_precision(
        archive_settings(config.model_store / client.describe()[0]["modelUrl"]).precision
    )
    versions, added = {default_precision: default}, []
    source = ModelSource(f"the model of version {default}", run=model)
    try:
        for precision in precisions:
            if precision in versions:
                continue
            handler = {"precision": precision}
            version, archive = publish(
                config, source, f"{BENCH_LABEL_PREFIX}{precision}", handler, registered=client.versions(),
                calibration=calibration, min_agreement=0, new_label=True,
            )  # fmt: skip
            client.register(archive.name, 1, None, None)
            added.append((version, archive))
            versions[precision] = version
        yield versions
    finally:
        for version, archive in added:
            client.unregister(version)
            remove_archive(config, archive.name)
