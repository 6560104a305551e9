"""A bounded closed-loop load generator: N clients each send their next request as soon as the last one answered.

Used by the soak test, the reliability tests and the benchmark. Every request has a client timeout, the loop stops
after a request count or a deadline, and only loopback servers are ever targeted.
"""

import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from animals.folders import photos_in
from serving.client import TorchServeError


@dataclass
class Outcome:
    """One request's result: its index in the plan, how it ended, and how long it took."""

    index: int
    kind: str  # "ok", "wrong" (an answer that fails the caller's check), or a TorchServeError's kind
    seconds: float


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(outcome.kind == kind for outcome in self.outcomes)

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(outcome.kind for outcome in self.outcomes))

    def percentile_ms(self, q: float, kinds: tuple[str, ...] = ("ok",)) -> float:
        latencies = sorted(outcome.seconds for outcome in self.outcomes if outcome.kind in kinds)
        if not latencies:
            return float("nan")
        if len(latencies) == 1:
            return latencies[0] * 1000
        return statistics.quantiles(latencies, n=1000, method="inclusive")[round(q * 1000) - 1] * 1000

    def throughput(self, kinds: tuple[str, ...] = ("ok",)) -> float:
        return sum(outcome.kind in kinds for outcome in self.outcomes) / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind().items()))
        return (
            f"{len(self.outcomes)} requests in {self.seconds:.1f} s ({len(self.outcomes) / self.seconds:.1f}/s): "
            f"{kinds}; latency of ok answers p50 {self.percentile_ms(0.5):.0f} ms, p95 {self.percentile_ms(0.95):.0f} "
            f"ms, p99 {self.percentile_ms(0.99):.0f} ms"
        )


def run_load(
    send: Callable[[int], Outcome], requests: int, concurrency: int, deadline_s: float | None = None
) -> LoadResult:
    """Send requests 0..requests-1 from `concurrency` clients; stop early at the deadline. `send` must not raise."""
    next_index = iter(range(requests))
    lock = threading.Lock()
    result = LoadResult()
    started = time.perf_counter()
    stop_at = started + deadline_s if deadline_s else float("inf")

    def client() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            outcome = send(index)
            with lock:
                result.outcomes.append(outcome)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    result.seconds = time.perf_counter() - started
    result.outcomes.sort(key=lambda outcome: outcome.index)
    return result


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_photos(folder: Path) -> list[bytes]:
    """The bytes of every photo under a folder of class folders."""
    return [path.read_bytes() for path in photos_in(folder)]


def predict_sender(client, photos: list[bytes], version: str | None = None) -> Callable[[int], Outcome]:
    """Send photo `index` (cycling) through the project's client, REST or gRPC; name what happened."""

    def send(index: int) -> Outcome:
        started = time.perf_counter()
        try:
            client.predict(photos[index % len(photos)], version)
            kind = "ok"
        except TorchServeError as error:
            kind = error.kind
        return Outcome(index, kind, time.perf_counter() - started)

    return send
