"""Benchmark a running TorchServe against the CPU's own limits and a baseline server, with real photos.

For each concurrency level, over REST and gRPC: a closed-loop load after a warm-up, reporting throughput, latency
percentiles, errors and server CPU use. In the same run: the in-process ceiling (same model, weights, preprocessing
and precision, a plain loop at the best batch size), fp32 eager served throughput, a FastAPI baseline peer, matmul
GFLOP/s, worker cold start and memory. Writes results.md, results.json and throughput.png.
"""

import argparse
import json
import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import torch

from animals import cli
from animals.acceleration import resolve_dtype
from animals.run import ARTIFACTS_DIR
from benchmarks import in_process, served
from benchmarks.baseline_server import baseline_level
from benchmarks.load import predict_sender, read_photos
from benchmarks.plot import write_plot
from benchmarks.report import markdown, ratios
from serving.client import GrpcClient, RestClient
from serving.config import DEFAULT_CONFIG, SAMPLE_IMAGES, read_config
from serving.store import archive_settings, extract_model


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    parser.add_argument("--images", type=Path, default=SAMPLE_IMAGES, help="class folders of photos")
    parser.add_argument("--levels", default="1,2,4,8,16", help="concurrency levels (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per level (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per level (default: %(default)s)")
    parser.add_argument("--ceiling-images", type=int, default=64, help="photos for the in-process ceiling")
    parser.add_argument("--baseline-concurrency", type=int, default=8, help="concurrency for the baseline peer")
    parser.add_argument("--output", type=Path, help="results folder (default: artifacts/bench/TIMESTAMP)")
    return parser


def served_levels(config, photos: list[bytes], levels: list[int], args) -> list[served.Level]:
    """Every concurrency level over REST, then over gRPC, through the project's client."""
    results = []
    for label, client in (("REST", RestClient(config)), ("gRPC", GrpcClient(config))):
        for concurrency in levels:
            send = predict_sender(client, photos)
            level = served.measure(
                label, send, concurrency, args.duration, args.warmup, served.server_processes(config)
            )
            print(f"  {label:<5} x{concurrency:<2} {level.images_per_s:6.2f} images/s, p50 {level.p50_ms:.0f} ms")
            results.append(level)
    return results


def write_results(report: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (output / "results.md").write_text(markdown(report))
    write_plot(report, output / "throughput.png")
    print(markdown(report))
    print(f"Wrote {output}/results.md, results.json, throughput.png")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    config = read_config(args.config)
    photos = read_photos(args.images)
    levels = [int(level) for level in args.levels.split(",")]
    client = RestClient(config)
    default = client.describe()[0]
    archive = config.model_store / default["modelUrl"]
    settings = archive_settings(archive)
    dtype = resolve_dtype(settings.precision, torch.device("cpu"))
    print(f"Benchmarking version {default['modelVersion']} ({archive.name}, {dtype}) with {len(photos)} photos")

    with tempfile.TemporaryDirectory() as work:
        run = extract_model(archive, Path(work))
        print("Measuring matmul GFLOP/s and the in-process ceiling")
        matmul = {"fp32": in_process.matmul_gflops(torch.float32), "bf16": in_process.matmul_gflops(torch.bfloat16)}
        ceiling = in_process.ceiling(run, photos[: args.ceiling_images], settings, [1, 4, 8])
        levels_measured = served_levels(config, photos, levels, args)
        best = max((level for level in levels_measured if level.label == "REST"), key=lambda level: level.images_per_s)
        print("Measuring fp32 eager served throughput and the baseline peer")
        fp32 = served.fp32_served(config, run, photos, best.concurrency, args) if dtype != torch.float32 else None
        baseline = baseline_level(run, photos, args.baseline_concurrency, args.duration, args.warmup)
        cold_start, rss = served.worker_cold_start(client, config)

    report = {
        "dtype": str(dtype),
        "settings": asdict(settings),
        "levels": [asdict(level) for level in levels_measured],
        "fp32_served": asdict(fp32) if fp32 else None,
        "baseline": asdict(baseline),
        "in_process": ceiling,
        "matmul_gflops": matmul,
        "cold_start_s": cold_start,
        "worker_rss_mib": rss,
    }
    report["ratios"] = ratios(report)
    write_results(report, args.output or ARTIFACTS_DIR / "bench" / f"{datetime.now():%Y%m%d-%H%M%S}")
    return 0


if __name__ == "__main__":
    cli.run(main)
