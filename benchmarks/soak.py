"""Soak a running TorchServe with real photos mixed with bad inputs, and check every single answer.

Every valid photo must answer 200 with the top-1 label the same model gives in-process for that exact photo (so a
batch that mixed up its answers is caught), every bad input a 4xx with a JSON message, nothing a 5xx, nothing hang.
"""

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import requests

from animals import cli
from benchmarks.bench import read_photos
from benchmarks.load import LoadResult, Outcome, run_load
from scripts.rest_client import RestClient, Tokens
from scripts.settings import DEFAULT_CONFIG, SAMPLE_IMAGES, ServerConfig, read_config
from scripts.versions import archive_settings, extract_model
from training.predict import Predictor

REQUEST_TIMEOUT_S = 60


def bad_inputs(photo: bytes) -> dict[str, bytes]:
    """Inputs the server must refuse with a 4xx."""
    return {
        "empty": b"",
        "text": b"just some text\n",
        "html": b"<html><body>not a photo</body></html>",
        "truncated_jpeg": photo[: len(photo) // 3],
        "random_bytes": bytes(range(256)) * 16,
    }


def archive_reference(archive: Path, work: Path) -> Predictor:
    """The archive's own weights, labels and inference settings, run in-process: what the server must answer."""
    return Predictor(extract_model(archive, work), settings=archive_settings(archive))


def soak(
    config: ServerConfig,
    total: int,
    concurrency: int,
    images: Path,
    bad_every: int = 5,
    deadline_s: float | None = None,
) -> LoadResult:
    """Send `total` requests (every `bad_every`-th a bad input) and check each answer."""
    photos = read_photos(images)
    default = RestClient(config, Tokens(config)).describe()[0]
    with tempfile.TemporaryDirectory() as work:
        print(f"Reference: version {default['modelVersion']} ({default['modelUrl']}) run in-process")
        reference = archive_reference(config.model_store / default["modelUrl"], Path(work))
        expected = [reference.top1(photo) for photo in photos]
    bad = list(bad_inputs(photos[0]).items())
    url = f"{config.inference_url}/predictions/{config.model_name}"
    headers = Tokens(config).header("inference")
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def send(index: int) -> Outcome:
        is_bad = index % bad_every == bad_every - 1
        name, body = bad[index % len(bad)] if is_bad else ("photo", photos[index % len(photos)])
        started = time.perf_counter()
        try:
            response = session().post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            return Outcome(index, "timeout", time.perf_counter() - started, name)
        except requests.ConnectionError as error:
            return Outcome(index, "connection", time.perf_counter() - started, str(error))
        seconds = time.perf_counter() - started
        return Outcome(index, judge(response, is_bad, expected[index % len(photos)]), seconds, name)

    print(f"Sending {total} requests from {concurrency} clients to {url} (every {bad_every}th one bad)")
    return run_load(send, total, concurrency, deadline_s)


def judge(response: requests.Response, is_bad: bool, expected_top1: str) -> str:
    """The outcome kind: "ok" when the answer is what it must be, else what went wrong."""
    if response.status_code >= 500:
        return "5xx"
    try:
        body = response.json()
    except ValueError:
        return "wrong"
    if is_bad:
        return "ok" if 400 <= response.status_code < 500 and body.get("message") else "wrong"
    if response.status_code != 200:
        return "4xx"
    return "ok" if next(iter(body)) == expected_top1 else "wrong"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=20_000, help="how many requests (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in parallel (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=1800, help="stop after this many seconds (default: 1800)")
    parser.add_argument("--images", type=Path, default=SAMPLE_IMAGES, help="class folders of photos")
    args = parser.parse_args(argv)
    result = soak(read_config(args.config), args.requests, args.concurrency, args.images, deadline_s=args.duration)
    print(result.report())
    failures = {kind: count for kind, count in result.by_kind().items() if kind != "ok"}
    print(json.dumps({"failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    cli.run(main)
