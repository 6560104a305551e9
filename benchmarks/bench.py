"""Benchmark a running TorchServe against the CPU's own limits and a baseline server, with real photos.

For each concurrency level, over REST and gRPC: a closed-loop load after a warm-up, reporting throughput, latency
percentiles, errors and server CPU use. In the same run: the in-process ceiling (same model, weights, preprocessing
and precision, a plain loop at the best batch size), fp32 eager served throughput, a FastAPI baseline peer, matmul
GFLOP/s, worker cold start and memory. Writes results.md, results.json and throughput.png.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from statistics import median

import psutil
import requests
import torch

from animals import cli
from animals.acceleration import InferenceSettings, as_input, prepare, resolve_dtype
from animals.errors import UserError
from animals.preprocessing import decode_image, eval_transform
from benchmarks.load import LoadResult, Outcome, free_port, run_load
from benchmarks.plot import write_plot
from scripts.archive import build_archive, trained_run_source
from scripts.grpc_client import GrpcClient
from scripts.rest_client import RestClient, Tokens, TorchServeError
from scripts.server import running_pid
from scripts.settings import DEFAULT_CONFIG, SAMPLE_IMAGES, ServerConfig, read_config
from scripts.versions import archive_settings, extract_model, record_path
from training.run import load_run_model

VGG16_GFLOPS_PER_IMAGE = 15.5
REQUEST_TIMEOUT_S = 120
FP32_VERSION = "bench-fp32"


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


def read_photos(images: Path) -> list[bytes]:
    photos = [path.read_bytes() for path in sorted(images.glob("*/*")) if path.suffix.lower() in (".jpg", ".jpeg")]
    if not photos:
        raise UserError(f"no JPEG photos in class folders under {images}")
    return photos


def matmul_gflops(dtype: torch.dtype, size: int = 4096, repeats: int = 3) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def in_process(run: Path, photos: list[bytes], settings: InferenceSettings, batch_sizes: list[int]) -> dict:
    """Throughput of decode + transform + forward in a plain loop at each batch size, and batch-1 latency."""
    model, _ = load_run_model(run)
    model, dtype = prepare(model, settings, torch.device("cpu"))
    transform = eval_transform()

    def run_batch(batch: list[bytes]) -> None:
        images = torch.stack([transform(decode_image(photo)) for photo in batch])
        with torch.inference_mode():
            model(as_input(images, dtype, settings, torch.device("cpu"))).softmax(dim=1)

    run_batch(photos[: max(batch_sizes)])
    throughput = {}
    for size in batch_sizes:
        count = len(photos) - len(photos) % size
        started = time.perf_counter()
        for start in range(0, count, size):
            run_batch(photos[start : start + size])
        throughput[size] = count / (time.perf_counter() - started)
    latencies = []
    for photo in photos[:20]:
        started = time.perf_counter()
        run_batch([photo])
        latencies.append((time.perf_counter() - started) * 1000)
    best = max(throughput, key=throughput.get)
    return {"images_per_s": throughput, "best_batch": best, "best": throughput[best], "p50_ms": median(latencies)}


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


def http_sender(url: str, photos: list[bytes], headers: dict[str, str]):
    local = threading.local()

    def send(index: int) -> Outcome:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        started = time.perf_counter()
        try:
            response = local.session.post(
                url, data=photos[index % len(photos)], headers=headers, timeout=REQUEST_TIMEOUT_S
            )
            kind = "ok" if response.status_code == 200 else f"{response.status_code // 100}xx"
        except requests.RequestException:
            kind = "timeout"
        return Outcome(index, kind, time.perf_counter() - started)

    return send


def grpc_sender(client: GrpcClient, photos: list[bytes], version: str | None = None):
    def send(index: int) -> Outcome:
        started = time.perf_counter()
        try:
            client.predict(photos[index % len(photos)], version)
            kind = "ok"
        except TorchServeError:
            kind = "5xx"
        return Outcome(index, kind, time.perf_counter() - started)

    return send


def baseline_level(run: Path, photos: list[bytes], concurrency: int, duration: float, warmup: float) -> Level:
    """The FastAPI baseline peer on a free loopback port, measured like the server."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.baseline_server", str(run), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/predict"
        wait_for(lambda: requests.post(url, data=photos[0], timeout=REQUEST_TIMEOUT_S).status_code == 200)
        processes = [psutil.Process(server.pid)]
        return measure("baseline (FastAPI)", http_sender(url, photos, {}), concurrency, duration, warmup, processes)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(ready, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise UserError(f"the baseline server did not answer within {timeout_s:.0f} s")


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
    """The same weights registered as an fp32, contiguous-memory version, measured at one concurrency."""
    client = RestClient(config, Tokens(config))
    archive = config.model_store / f"{config.model_name}-{FP32_VERSION}.mar"
    build_archive(archive, trained_run_source(run), config.model_name, FP32_VERSION, precision="fp32")
    client.register(archive.name, 1, None, None)
    try:
        url = f"{config.inference_url}/predictions/{config.model_name}/{FP32_VERSION}"
        send = http_sender(url, photos, Tokens(config).header("inference"))
        return measure("REST, fp32 eager", send, concurrency, args.duration, args.warmup, server_processes(config))
    finally:
        client.unregister(FP32_VERSION)
        archive.unlink()
        record_path(archive).unlink()


def ratios(report: dict) -> dict[str, float]:
    """The figures the README's targets are stated in."""
    rest = [level for level in report["levels"] if level["label"] == "REST"]
    grpc = [level for level in report["levels"] if level["label"] == "gRPC"]
    best_rest = max(rest, key=lambda level: level["images_per_s"])
    at = {level["concurrency"]: level for level in rest}
    baseline = report["baseline"]
    flops = report["matmul_gflops"]["bf16" if report["dtype"] == "torch.bfloat16" else "fp32"]
    result = {
        "served_best_over_in_process_ceiling": best_rest["images_per_s"] / report["in_process"]["best"],
        "achieved_gflops_over_matmul_gflops": best_rest["images_per_s"] * VGG16_GFLOPS_PER_IMAGE / flops,
        "p50_at_concurrency_1_over_in_process_latency": at[min(at)]["p50_ms"] / report["in_process"]["p50_ms"],
    }
    if baseline and baseline["concurrency"] in at:
        result["served_over_baseline_at_same_concurrency"] = (
            at[baseline["concurrency"]]["images_per_s"] / baseline["images_per_s"]
        )
    if report["fp32_served"]:
        result["served_best_over_fp32_eager_served"] = best_rest["images_per_s"] / report["fp32_served"]["images_per_s"]
    if grpc:
        result["grpc_best_over_rest_best"] = max(level["images_per_s"] for level in grpc) / best_rest["images_per_s"]
    return {name: round(value, 3) for name, value in result.items()}


def markdown(report: dict) -> str:
    lines = [
        "| protocol | concurrency | images/s | p50 ms | p95 ms | p99 ms | errors | server CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = report["levels"] + [row for row in (report["fp32_served"], report["baseline"]) if row]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['concurrency']} | {row['images_per_s']:.2f} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | {row['server_cpu_percent']:.0f} |"
        )
    ceiling = report["in_process"]
    lines += [
        "",
        f"In-process ceiling ({report['dtype']}, batch {ceiling['best_batch']}): {ceiling['best']:.2f} images/s; "
        f"batch-1 latency p50 {ceiling['p50_ms']:.0f} ms. Matmul 4096x4096: "
        f"{report['matmul_gflops']['fp32']:.0f} GFLOP/s fp32, {report['matmul_gflops']['bf16']:.0f} GFLOP/s bf16. "
        f"Worker cold start {report['cold_start_s']:.1f} s; worker RSS "
        f"{', '.join(f'{mib:.0f}' for mib in report['worker_rss_mib'])} MiB.",
        "",
        *(f"- {name.replace('_', ' ')}: **{value}**" for name, value in report["ratios"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    parser.add_argument("--images", type=Path, default=SAMPLE_IMAGES, help="class folders of JPEG photos")
    parser.add_argument("--levels", default="1,2,4,8,16", help="concurrency levels (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per level (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per level (default: %(default)s)")
    parser.add_argument("--ceiling-images", type=int, default=64, help="photos for the in-process ceiling")
    parser.add_argument("--baseline-concurrency", type=int, default=8, help="concurrency for the baseline peer")
    parser.add_argument("--output", type=Path, help="results folder (default: artifacts/bench/TIMESTAMP)")
    args = parser.parse_args(argv)
    config = read_config(args.config)
    photos = read_photos(args.images)
    levels = [int(level) for level in args.levels.split(",")]
    output = args.output or Path("artifacts") / "bench" / f"{datetime.now():%Y%m%d-%H%M%S}"
    output.mkdir(parents=True, exist_ok=True)
    client = RestClient(config, Tokens(config))
    default = client.describe()[0]
    archive = config.model_store / default["modelUrl"]
    settings = archive_settings(archive)
    dtype = resolve_dtype(settings.precision, torch.device("cpu"))
    print(f"Benchmarking version {default['modelVersion']} ({archive.name}, {dtype}) with {len(photos)} photos")

    with tempfile.TemporaryDirectory() as work:
        run = extract_model(archive, Path(work))
        print("Measuring matmul GFLOP/s and the in-process ceiling")
        matmul = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
        ceiling = in_process(run, photos[: args.ceiling_images], settings, [1, 4, 8])
        served = []
        tokens = Tokens(config)
        senders = {
            "REST": http_sender(
                f"{config.inference_url}/predictions/{config.model_name}", photos, tokens.header("inference")
            ),
            "gRPC": grpc_sender(GrpcClient(config, tokens), photos),
        }
        for label, send in senders.items():
            for concurrency in levels:
                level = measure(label, send, concurrency, args.duration, args.warmup, server_processes(config))
                print(f"  {label:<5} x{concurrency:<2} {level.images_per_s:6.2f} images/s, p50 {level.p50_ms:.0f} ms")
                served.append(level)
        best = max((level for level in served if level.label == "REST"), key=lambda level: level.images_per_s)
        print("Measuring fp32 eager served throughput and the baseline peer")
        fp32 = fp32_served(config, run, photos, best.concurrency, args) if dtype != torch.float32 else None
        baseline = baseline_level(run, photos, args.baseline_concurrency, args.duration, args.warmup)
        cold_start, rss = worker_cold_start(client, config)

    report = {
        "dtype": str(dtype),
        "settings": asdict(settings),
        "levels": [asdict(level) for level in served],
        "fp32_served": asdict(fp32) if fp32 else None,
        "baseline": asdict(baseline),
        "in_process": ceiling,
        "matmul_gflops": matmul,
        "cold_start_s": cold_start,
        "worker_rss_mib": rss,
    }
    report["ratios"] = ratios(report)
    (output / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (output / "results.md").write_text(markdown(report))
    write_plot(report, output / "throughput.png")
    print(markdown(report))
    print(f"Wrote {output}/results.md, results.json, throughput.png")
    return 0


if __name__ == "__main__":
    cli.run(main)
