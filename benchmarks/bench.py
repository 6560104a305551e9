"""Benchmark a running TorchServe: the default version's weights served in int8, bf16 and fp32 side by side, against
the runtimes a user might pick instead, the CPU's own limits and a baseline server, with real photos.

For each precision, over REST (and over gRPC for the default's): a closed-loop load at each concurrency after a
warm-up, with throughput, latency percentiles, errors and server CPU use; each precision's worker cold start and
memory; the default's explanation (Grad-CAM) time against its prediction time. In the same run: the in-process
ceiling of the default (same model and preprocessing in a plain loop), the in-process peers (benchmarks.peers), a
FastAPI baseline peer, and matmul GFLOP/s. Writes results.md, results.json and throughput.png.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import torch

from animals import cli, quantization
from animals.acceleration import effective_precision
from animals.inference_settings import cpu_has_native_bf16
from animals.memory import IDLE_S
from animals.preprocessing import decode_image, eval_transform
from animals.run import ARTIFACTS_DIR
from benchmarks import cold_start, in_process, peers, served
from benchmarks.baseline_server import baseline_level
from benchmarks.load import predict_sender, read_photos
from benchmarks.plot import write_plot
from benchmarks.report import capacity_plan, markdown, ratios, targets
from serving.client import GrpcClient, RestClient
from serving.config import DEFAULT_CONFIG, SAMPLE_IMAGES, ServerConfig, read_config
from serving.image import IMAGE_NAME, image_exists
from serving.record import Record
from serving.store import archive_settings, extract_model

PEER_IMAGES = 32


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    parser.add_argument("--images", type=Path, default=SAMPLE_IMAGES, help="class folders of photos")
    parser.add_argument(
        "--precisions", default=default_precisions(), help="served side by side (default: %(default)s, on this CPU)"
    )
    parser.add_argument("--levels", default="1,4,8,16", help="concurrency levels (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=15, help="seconds measured per level (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per level (default: %(default)s)")
    parser.add_argument("--peer-seconds", type=float, default=10, help="seconds per in-process peer")
    parser.add_argument("--ceiling-images", type=int, default=64, help="photos for the in-process ceiling")
    parser.add_argument("--baseline-concurrency", type=int, default=8, help="concurrency for the baseline peer")
    parser.add_argument(
        "--image", help=f"the image whose container start is timed (default: {IMAGE_NAME}:VERSION of the default)"
    )
    parser.add_argument("--no-container", action="store_true", help="leave the container start out")
    parser.add_argument("--output", type=Path, help="results folder (default: artifacts/bench/TIMESTAMP)")
    return parser


def default_precisions() -> str:
    """int8, bf16 and fp32; bf16 only where the CPU computes it natively: emulated, a VGG16 batch takes minutes."""
    return "int8,bf16,fp32" if cpu_has_native_bf16() else "int8,fp32"


def levels_of(config: ServerConfig, versions: dict[str, str], default: str, photos: list[bytes], args) -> list:
    """Every concurrency level for each precision's version over REST, and for the default's over gRPC."""
    results = []
    clients = [(f"REST {precision}", RestClient(config), version) for precision, version in versions.items()]
    clients.append((f"gRPC {default}", GrpcClient(config), versions[default]))
    for label, client, version in clients:
        for concurrency in (int(level) for level in args.levels.split(",")):
            send = predict_sender(client, photos, version)
            processes = served.server_processes(config)
            level = served.measure(label, send, concurrency, args.duration, args.warmup, processes)
            print(f"  {label:<10} x{concurrency:<2} {level.images_per_s:6.2f} images/s, p50 {level.p50_ms:.0f} ms")
            results.append(level)
    return results


def cold_starts(
    config: ServerConfig, records: dict[str, Record], int8_model: Path | None, settings, photo: bytes, args
) -> dict:
    """The cold-start section: each precision's archive build time (from its record), an int8 program's start in a
    process of its own each way it can start, `make serve` to the first answer, and a container's start."""
    default = RestClient(config).default_version()
    section = {"archive_build_s": {name: record.build_seconds for name, record in records.items()}}
    if int8_model:
        print("Measuring how an int8 program starts: compiled ahead of time, compiled, compiled from cache artifacts")
        section["int8_program"] = cold_start.program_starts(int8_model, replace(settings, precision="int8"))
    print(f"Measuring `make serve` of version {default} to its first answer, as a second server")
    section["make_serve_s"] = cold_start.serve_to_first_answer(config, default, photo)
    image = args.image or f"{IMAGE_NAME}:{default}"
    if args.no_container:
        print("No container start measured: --no-container")
    elif shutil.which("docker") is None:
        print("No container start measured: docker is not installed")
    elif not image_exists(image):
        print(f"No container start measured: Docker has no image {image}, or does not answer (`make image` builds it)")
    else:
        print(f"Measuring a container of {image} to its first answer")
        section |= {"image": image, "container_s": cold_start.container_to_first_answer(image, photo)}
    return section


def with_float_weights(model: Path) -> Path:
    """The default's model folder with float weights: an int8 archive packs none, so its float versions and the
    peers run its int8 weights dequantized (the weights the int8 program computes with)."""
    if not (model / "model.pt").is_file():
        torch.save(quantization.dequantized_state_dict(model / quantization.PROGRAM), model / "model.pt")
    return model


def preprocessed(photos: list[bytes]) -> torch.Tensor:
    transform = eval_transform()
    return torch.stack([transform(decode_image(photo)) for photo in photos])


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
    client = RestClient(config)
    default_archive = config.model_store / client.describe()[0]["modelUrl"]
    settings = archive_settings(default_archive)
    precision = effective_precision(settings.precision)
    precisions = tuple(args.precisions.split(","))
    print(f"Benchmarking {default_archive.name} ({precision}) beside {precisions}, {len(photos)} photos")

    with tempfile.TemporaryDirectory() as work:
        model = with_float_weights(extract_model(default_archive, Path(work) / "default"))
        print("Measuring matmul GFLOP/s and the in-process ceiling")
        matmul = {"fp32": in_process.matmul_gflops(torch.float32)}
        if cpu_has_native_bf16():  # emulated, bf16 multiplies 100 times slower than fp32: minutes here (measured)
            matmul["bf16"] = in_process.matmul_gflops(torch.bfloat16)
        # In process, one model uses every core (threads=0), as a server of one's own would: the served layout of
        # single-thread workers would leave the ceiling and the peers after it with one thread.
        ceiling = in_process.ceiling(model, photos[: args.ceiling_images], replace(settings, threads=0), [1, 4, 8])
        with served.precision_versions(config, model, precisions, args.images) as versions:
            records = {name: Record.read(config.archive(version)) for name, version in versions.items()}
            archive_mib = {name: config.archive(version).stat().st_size / 2**20 for name, version in versions.items()}
            levels = levels_of(config, versions, precision, photos, args)
            server_rss = served.server_rss_mib(client, config, versions[precision])
            time.sleep(IDLE_S + 1)  # the workers give back what their batches freed
            server_rss_idle = served.server_rss_mib(client, config, versions[precision])
            print("Measuring the cost of an explanation")
            explanation = served.explanation_cost(client, photos, versions[precision])
            workers = {}
            for served_precision, version in versions.items():
                seconds, rss = served.worker_cold_start(client, config, version)
                workers[served_precision] = {"cold_start_s": seconds, "rss_mib": rss}
            int8_archive = config.archive(versions["int8"]) if "int8" in versions else None
            int8_model = extract_model(int8_archive, Path(work) / "int8") if int8_archive else None
            if int8_archive:
                print("Measuring the cold start of an int8 worker that compiles its program itself")
                jit = served.jit_cold_start(client, config, int8_archive)
                workers["int8"] |= {
                    "jit_cold_start_s": jit["cache_empty"],
                    "jit_cached_cold_start_s": jit["cache_present"],
                }
            cold_start = cold_starts(config, records, int8_model, settings, photos[0], args)
        print("Measuring the in-process peers and the baseline")
        peer_results = peers.measure_peers(model, preprocessed(photos[:PEER_IMAGES]), args.peer_seconds, int8_model)
        baseline = baseline_level(model, photos, args.baseline_concurrency, args.duration, args.warmup)

    report = {
        "default_precision": precision,
        "versions": versions,
        "agreement": {name: record.agreement for name, record in records.items() if record.agreement},
        "levels": [asdict(level) for level in levels],
        "workers": workers,
        "cold_start": cold_start,
        "archive_mib": archive_mib,
        "server_rss_mib": server_rss,
        "server_rss_idle_mib": server_rss_idle,
        "explanation": explanation,
        "peers": peer_results,
        "baseline": asdict(baseline),
        "in_process": ceiling,
        "matmul_gflops": matmul,
        "cores": os.cpu_count(),
    }
    report["ratios"] = ratios(report)
    report["targets"] = targets(report)
    report["capacity"] = capacity_plan(report)
    write_results(report, args.output or ARTIFACTS_DIR / "bench" / f"{datetime.now():%Y%m%d-%H%M%S}")
    return 0


if __name__ == "__main__":
    cli.run(main)
