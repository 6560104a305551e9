"""An idle worker gives back what its batches freed, and a busy one keeps it: glibc's real allocator, with memory
freed in the middle of its heap (which glibc keeps until it is trimmed), as a batch's buffers are."""

import ctypes
import time

import psutil
import pytest

from animals.memory import IdleTrim

CHUNK, CHUNKS = 16 * 1024, 8192  # 128 MiB in chunks well under glibc's mmap threshold: they come from the heap
FREED_MIB = CHUNK * CHUNKS / 2 / 2**20


@pytest.fixture
def heap_with_holes():
    """Every other chunk freed: 64 MiB free in the heap between chunks still in use."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = [libc.malloc(CHUNK) for _ in range(CHUNKS)]
    for chunk in chunks:
        ctypes.memset(chunk, 1, CHUNK)
    for chunk in chunks[::2]:
        libc.free(chunk)
    yield
    for chunk in chunks[1::2]:
        libc.free(chunk)


def resident_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def wait_for_trims(trim: IdleTrim, count: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while trim.trims < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_idle_worker_gives_back_what_its_batch_freed(heap_with_holes):
    trim = IdleTrim(idle_s=0.2)
    with trim.batch():
        pass
    before = resident_mib()
    wait_for_trims(trim, 1)
    assert trim.trims == 1
    assert before - resident_mib() > FREED_MIB / 2, f"{before:.0f} MiB before the trim, {resident_mib():.0f} after"


def test_a_batch_that_starts_before_the_idle_time_keeps_the_memory_for_itself(heap_with_holes):
    trim = IdleTrim(idle_s=1.0)
    with trim.batch():
        pass
    with trim.batch():  # the next batch, at once: the first one's timer is cancelled, and this one lasts 1.5 s
        time.sleep(1.5)
        assert trim.trims == 0
    wait_for_trims(trim, 1)
    assert trim.trims == 1
