"""Measurements of the running TorchServe: closed-loop levels, its CPU use, worker cold start and memory, and the
same weights served as an fp32 version."""

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.load import LoadResult, predict_sender, run_load
from serving.archive import trained_run_source
from serving.client import RestClient
from serving.config import ServerConfig
from serving.server import running_pid
from serving.store import publish, remove_archive


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


def worker_cold_start(client: RestClient, config: ServerConfig) -> tuple[float, list[float]]:
    """Seconds to bring a worker from nothing to READY (scale 0 -> 1, synchronous), and each worker's RSS in MiB.

    The default version's worker counts are put back as they were afterwards."""
    described = client.describe()[0]
    client.scale(None, 0, 0)
    try:
        started = time.perf_counter()
        client.scale(None, 1, 1)
        seconds = time.perf_counter() - started
    finally:
        client.scale(None, described["minWorkers"], described["maxWorkers"])
    workers = server_processes(config)[1:]
    return seconds, [
        process.memory_info().rss / 2**20
        for process in workers
        if "model_service_worker" in " ".join(process.cmdline())
    ]


def fp32_served(config: ServerConfig, run: Path, photos: list[bytes], concurrency: int, args) -> Level:
    """The same weights registered as an fp32, contiguous-memory version of their own, measured at one concurrency;
    unregistered and removed from the store afterwards."""
    client = RestClient(config)
    fp32 = {"precision": "fp32", "channels_last": False}
    version, archive = publish(config, trained_run_source(run), handler=fp32, registered=client.versions())
    client.register(archive.name, 1, None, None)
    try:
        send = predict_sender(client, photos, version)
        return measure("REST, fp32 eager", send, concurrency, args.duration, args.warmup, server_processes(config))
    finally:
        client.unregister(version)
        remove_archive(config, archive.name)
