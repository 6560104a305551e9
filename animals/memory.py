"""Give back to the system the memory a worker's batches freed, once the worker is idle.

glibc's allocator keeps what a batch freed (its activations, decoded photos) for the next one: a VGG16 int8 worker
held 36 MiB more after its first batches of 8 than once trimmed (measured in one process). Trimming after every batch
would fault those pages in again at the next one (3-8% of the throughput, measured); trimming once IDLE_S have passed
since the end of the last batch with none started since costs a busy worker nothing (a batch that starts just as the
trim runs shares the moment with it), and an idle one holds only what it needs to wait for work.
"""

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

IDLE_S = 2.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except AttributeError:  # not glibc (musl, macOS): nothing to call
        return None


class IdleTrim:
    """Run each batch in `batch()`: `idle_s` after the end of the last one with none started since, the freed
    memory is given back (glibc's malloc_trim, on a timer thread)."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self.idle_s = idle_s
        self._trim = _malloc_trim()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.trims = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.busy()
        try:
            yield
        finally:
            self.idle()

    def busy(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def idle(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.idle_s, self._give_back)
            self._timer.daemon = True
            self._timer.start()

    def _give_back(self) -> None:
        self._trim(0)
        self.trims += 1
