"""The hostile corpus (tests/hostile.py) against a real TorchServe with the committed batching: every input answers
its own status and reason, the photos sent with it at the same time answer 200 and right, and neither a worker's
memory nor its CPU is spent beyond the bounds (README: Reliability and security)."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from serving.config import ServerConfig
from serving.server import running_pid
from tests import hostile
from tests.support import Client, own_server

CORPUS = hostile.corpus()
NEIGHBOURS = 7  # photos sent with each hostile input: a full batch of 8 with it
MAX_RSS_GROWTH_MB = 300
MAX_CPU_S = 1.0
TRIES = 3  # sends of an input over MAX_CPU_S before its cost counts
SPENT: dict[str, float] = {}  # CPU seconds per input, printed by the last test (pytest -s) for the README


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run) -> Iterator[ServerConfig]:
    """A TorchServe of its own, so that its workers' memory and CPU are this corpus's alone."""
    with own_server(tmp_path_factory.mktemp("hostile") / "server", tiny_run) as config:
        yield config


def workers(config: ServerConfig) -> list[psutil.Process]:
    frontend = psutil.Process(running_pid(config))
    return [child for child in frontend.children(recursive=True) if "model_service_worker" in " ".join(child.cmdline())]


def memory_mb(process: psutil.Process, field: str) -> int:
    """VmRSS (resident now) or VmHWM (the peak since the last reset) of a process, in MB."""
    lines = Path(f"/proc/{process.pid}/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith(field)).split()[1]) // 1024


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


@pytest.fixture(scope="module")
def idle(server, samples) -> dict[int, int]:
    """Each worker's resident memory once warm (every worker has answered photos), with its peak reset to it."""
    client = Client(server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(
            answer.status_code == 200 for answer in pool.map(client.post, [p.read_bytes() for p in samples[:32]])
        )
    resident = {}
    for worker in workers(server):
        resident[worker.pid] = memory_mb(worker, "VmRSS")
        Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    return resident


def check_answer(name: str, case: hostile.Hostile, answer) -> None:
    if case.status == 0:  # a fuzzer's find: whatever it is, its own 2xx or 4xx, never a 5xx
        assert answer.status_code < 500, (name, answer.status_code, answer.text[:300])
        return
    assert answer.status_code == case.status, (name, answer.text[:300])
    assert answer.headers.get("Content-Type", "").startswith("application/json"), name
    if case.reason is not None:
        assert json.loads(answer.text)["reason"] == case.reason, (name, answer.text[:300])


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_hostile_input_costs_at_most_a_second_of_cpu_and_answers_its_own_status(server, idle, name):
    """An input's cost is the least of up to TRIES sends (as timeit takes the best of its repeats): a busy machine
    can only add to a process's CPU time (page reclaim, cache misses), never take from it."""
    case = CORPUS[name]
    processes = workers(server)
    for _ in range(TRIES):
        before = cpu_seconds(processes)
        answer = Client(server).post(case.body, headers=headers(server, case))
        spent = cpu_seconds(processes) - before
        SPENT[name] = min(spent, SPENT.get(name, spent))
        check_answer(name, case, answer)
        if spent <= MAX_CPU_S:
            break
    assert SPENT[name] <= MAX_CPU_S, f"{name} cost at least {SPENT[name]:.2f} s of the workers' CPU in {TRIES} tries"


@pytest.mark.parametrize("name", list(CORPUS))
def test_photos_sent_with_a_hostile_input_are_answered_right(server, idle, name, samples, reference):
    case = CORPUS[name]
    client = Client(server)
    photos = [path.read_bytes() for path in samples[:: len(samples) // NEIGHBOURS][:NEIGHBOURS]]
    start = threading.Barrier(NEIGHBOURS + 1)

    def send(body: bytes, sent_headers: dict | None = None):
        start.wait(timeout=30)
        return client.post(body, headers=sent_headers)

    with ThreadPoolExecutor(max_workers=NEIGHBOURS + 1) as pool:
        hostile_answer = pool.submit(send, case.body, headers(server, case))
        answers = list(pool.map(send, photos))
    check_answer(name, case, hostile_answer.result())
    for photo, answer in zip(photos, answers, strict=True):
        assert answer.status_code == 200, (name, answer.text[:300])
        assert answer.headers.get("Content-Type", "").startswith("application/json")
        assert next(iter(answer.json())) == reference.top1(photo), name


def test_no_worker_grew_or_died_over_the_corpus(server, idle):
    """Run last in this module: the peak memory of each worker over every test above, against its idle memory."""
    now = {worker.pid: worker for worker in workers(server)}
    assert set(now) == set(idle), "a worker was restarted"
    growth = {pid: memory_mb(worker, "VmHWM") - idle[pid] for pid, worker in now.items()}
    costliest = max(SPENT, key=SPENT.get, default=None)
    print(f"\nworker peak above idle: {growth} MB; costliest input: {costliest} ({SPENT.get(costliest, 0):.2f} s CPU)")
    for pid, grown in growth.items():
        assert grown <= MAX_RSS_GROWTH_MB, f"worker {pid} peaked {grown} MB above its idle {idle[pid]} MB"


def headers(config: ServerConfig, case: hostile.Hostile) -> dict[str, str]:
    return {"Authorization": Client(config).tokens.bearer("inference"), "Content-Type": case.content_type}
