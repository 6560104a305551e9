"""The machine's cores shared by the workers that run on it (model-config.yaml's `handler.threads: shared`).

Each batch runs on the cores divided by the workers busy at its start: a lone request gets every core, and a server
whose workers are all busy runs one thread per core, as TorchServe's one-thread-per-worker layout does. A busy worker
holds an advisory lock (flock) on one slot file of a folder in the workers' TMPDIR, which `make serve` and the image
set to the server's logs folder: the workers of one server share it. The kernel releases a dead worker's lock, so a
crash never keeps a core.
"""

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may compute on: its CPU affinity, within its container's CPU quota (cgroup v2; a
    Kubernetes CPU limit) and OMP_NUM_THREADS where it is set."""
    cores = [len(os.sched_getaffinity(0))]
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores.append(int(quota) // int(period))
    except (OSError, ValueError):
        pass
    if (threads := os.environ.get("OMP_NUM_THREADS", "")).isdigit():
        cores.append(int(threads))
    return max(1, min(cores))


def shared_folder() -> Path:
    """The slot files' folder, one per user: another user's workers, in the same TMPDIR, neither see nor block these."""
    return Path(tempfile.gettempdir()) / f"animals-cores-{os.getuid()}"


class CoreShare:
    """`cores` slots, one per core: a worker claims a free one while it computes a batch."""

    def __init__(self, cores: int, folder: Path | None = None) -> None:
        self.cores = cores
        self.folder = folder or shared_folder()
        self.folder.mkdir(mode=0o700, exist_ok=True)
        if self.folder.stat().st_uid != os.getuid():  # made by another user first: share with no one, not fail
            self.folder = Path(tempfile.mkdtemp(prefix="animals-cores-"))
        self.slots = [self.folder / f"slot-{index}" for index in range(cores)]

    @contextmanager
    def claim(self) -> Iterator[int]:
        """Hold a slot for the duration of the block and give it the threads to compute on: the cores divided by the
        workers busy now, this one included (one thread at least: when every slot is taken, this worker computes
        unclaimed on one)."""
        with ExitStack() as held:
            for slot in self.slots:
                if _locked(slot, held):
                    break
            busy = sum(_is_busy(slot) for slot in self.slots)
            yield max(1, self.cores // max(busy, 1))


def _locked(slot: Path, held: ExitStack) -> bool:
    """Try to lock `slot` for as long as `held` is open."""
    descriptor = os.open(slot, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    held.callback(os.close, descriptor)
    return True


def _is_busy(slot: Path) -> bool:
    """Whether some worker holds `slot` (this one too: a second descriptor of the same file does not get its lock)."""
    with ExitStack() as probe:
        return not _locked(slot, probe)
