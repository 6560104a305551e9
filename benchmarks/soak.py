"""Soak a running TorchServe with real photos mixed with bad inputs, and check every single answer.

Every valid photo must answer 200 with the top-1 label the same model gives in-process for that exact photo (so a
batch that mixed up its answers is caught), every bad input a 4xx with a JSON message, nothing a 5xx, nothing hang.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from animals import cli
from benchmarks.load import LoadResult, Outcome, read_photos, run_load
from serving.client import RestClient, TorchServeError
from serving.config import DEFAULT_CONFIG, SAMPLE_IMAGES, ServerConfig, read_config
from serving.store import archive_settings, extract_model
from training.predict import Predictor


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
    client = RestClient(config)
    default = client.describe()[0]
    with tempfile.TemporaryDirectory() as work:
        print(f"Reference: version {default['modelVersion']} ({default['modelUrl']}) run in-process")
        reference = archive_reference(config.model_store / default["modelUrl"], Path(work))
        expected = [reference.top1(photo) for photo in photos]
    bad = list(bad_inputs(photos[0]).values())

    def send(index: int) -> Outcome:
        is_bad = index % bad_every == bad_every - 1
        body = bad[index % len(bad)] if is_bad else photos[index % len(photos)]
        started = time.perf_counter()
        kind = judge(client, body, None if is_bad else expected[index % len(photos)])
        return Outcome(index, kind, time.perf_counter() - started)

    print(f"Sending {total} requests from {concurrency} clients to {client.inference_url} (every {bad_every}th bad)")
    return run_load(send, total, concurrency, deadline_s)


def judge(client: RestClient, body: bytes, expected_top1: str | None) -> str:
    """ "ok" when the answer is what it must be (a 400 with a message for a bad input, else the expected top-1
    label), "wrong" when it is another answer, else the kind of error that came back."""
    try:
        answer = client.predict(body)
    except TorchServeError as error:
        refused_as_it_must = error.kind == "bad_input" and expected_top1 is None and str(error)
        return "ok" if refused_as_it_must else error.kind
    return "ok" if expected_top1 is not None and next(iter(answer)) == expected_top1 else "wrong"


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
