"""The in-process references: the CPU's matmul GFLOP/s, and the ceiling a server could reach with the same model,
weights, preprocessing and precision in a plain loop."""

import time
from pathlib import Path
from statistics import median

import torch

from animals.acceleration import InferenceModel
from animals.inference_settings import InferenceSettings
from animals.preprocessing import decode_image, eval_transform


def matmul_gflops(dtype: torch.dtype, size: int = 4096, repeats: int = 3) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def ceiling(run: Path, photos: list[bytes], settings: InferenceSettings, batch_sizes: list[int]) -> dict:
    """Throughput of decode + transform + forward in a plain loop at each batch size, and batch-1 latency."""
    model = InferenceModel(run, settings, max_batch=max(batch_sizes))
    transform = eval_transform()

    def run_batch(batch: list[bytes]) -> None:
        model(torch.stack([transform(decode_image(photo)) for photo in batch]))

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
