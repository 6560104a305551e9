"""The baseline peer: a minimal per-request server of the kind the seed project builds, kept only to compare with.

FastAPI + uvicorn, the model loaded once, PIL preprocessing, batch size 1, eager fp32, one request at a time.
Run as `python -m benchmarks.baseline_server RUN_DIR PORT`, then POST raw image bytes to /predict.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests
import torch
import uvicorn
from fastapi import FastAPI, Request

from animals.errors import UserError
from animals.preprocessing import decode_image, eval_transform
from animals.run import load_run_model
from benchmarks.load import Outcome, free_port
from benchmarks.served import Level, measure

REQUEST_TIMEOUT_S = 120
START_TIMEOUT_S = 300


def create_app(run: Path) -> FastAPI:
    app = FastAPI()
    model, class_names = load_run_model(run, "cpu")
    transform = eval_transform()

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, float]:
        image = transform(decode_image(await request.body())).unsqueeze(0)
        with torch.inference_mode():
            probabilities = model(image).softmax(dim=1)[0]
        top = probabilities.topk(5)
        return {class_names[i]: p for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)}

    return app


def baseline_level(run: Path, photos: list[bytes], concurrency: int, duration: float, warmup: float) -> Level:
    """The baseline on a free loopback port, measured like the served model."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.baseline_server", str(run), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/predict"
        wait_until_answering(url, photos[0])
        send = sender(url, photos)
        return measure("baseline (FastAPI)", send, concurrency, duration, warmup, [psutil.Process(server.pid)])
    finally:
        server.terminate()
        server.wait(timeout=30)


def sender(url: str, photos: list[bytes]):
    local = threading.local()

    def send(index: int) -> Outcome:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        started = time.perf_counter()
        try:
            response = local.session.post(url, data=photos[index % len(photos)], timeout=REQUEST_TIMEOUT_S)
            kind = "ok" if response.status_code == 200 else f"http_{response.status_code}"
        except requests.Timeout:
            kind = "timeout"
        except requests.RequestException:
            kind = "unreachable"
        return Outcome(index, kind, time.perf_counter() - started)

    return send


def wait_until_answering(url: str, photo: bytes) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if requests.post(url, data=photo, timeout=REQUEST_TIMEOUT_S).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise UserError(f"the baseline server did not answer within {START_TIMEOUT_S} s")


if __name__ == "__main__":
    uvicorn.run(create_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
