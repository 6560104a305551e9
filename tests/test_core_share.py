"""Workers share the machine's cores: a lone batch computes on every core, busy workers split them, and a worker that
dies gives its core back. Other processes hold the slots here, as other TorchServe workers do."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from animals.acceleration import InferenceModel
from animals.core_share import CoreShare, available_cores
from animals.inference_settings import InferenceSettings

# Another worker: holds a slot of FOLDER's share of CORES until its stdin closes or it is killed.
BUSY_WORKER = """
import sys
from pathlib import Path
from animals.core_share import CoreShare
with CoreShare(int(sys.argv[2]), Path(sys.argv[1])).claim():
    print("busy", flush=True)
    sys.stdin.read()
"""


def busy_worker(folder: Path, cores: int) -> subprocess.Popen:
    worker = subprocess.Popen(
        [sys.executable, "-c", BUSY_WORKER, str(folder), str(cores)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert worker.stdout.readline() == "busy\n"
    return worker


def threads_of(share: CoreShare) -> int:
    with share.claim() as threads:
        return threads


def test_a_lone_batch_computes_on_every_core_and_busy_workers_split_them(tmp_path):
    share = CoreShare(4, tmp_path)
    assert threads_of(share) == 4
    first = busy_worker(tmp_path, 4)
    try:
        assert threads_of(share) == 2
        second = busy_worker(tmp_path, 4)
        try:
            assert threads_of(share) == 1  # three busy of four cores: one each, never more threads than cores
        finally:
            second.communicate("")
        assert threads_of(share) == 2
    finally:
        first.communicate("")
    assert threads_of(share) == 4


def test_a_worker_that_dies_busy_gives_its_core_back(tmp_path):
    worker = busy_worker(tmp_path, 2)
    assert threads_of(CoreShare(2, tmp_path)) == 1
    worker.kill()
    worker.wait(timeout=30)
    assert threads_of(CoreShare(2, tmp_path)) == 2


def test_with_every_slot_taken_a_worker_still_computes_on_one_thread(tmp_path):
    workers = [busy_worker(tmp_path, 2) for _ in range(2)]
    try:
        assert threads_of(CoreShare(2, tmp_path)) == 1
    finally:
        for worker in workers:
            worker.communicate("")


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a folder to another user")
def test_a_share_folder_another_user_made_first_is_not_used(tmp_path):
    """A multi-user host's shared /tmp: a folder of the share's name made by someone else would let them hold or
    block this user's slots. The worker shares with no one instead, and still computes."""
    taken = tmp_path / "animals-cores-0"
    taken.mkdir()
    os.chown(taken, 12345, 12345)
    share = CoreShare(2, taken)
    assert share.folder != taken and share.folder.stat().st_uid == os.getuid()
    try:
        assert threads_of(share) == 2 and not list(taken.iterdir())
    finally:
        shutil.rmtree(share.folder)


def test_the_cores_are_the_affinity_within_the_container_quota_and_omp_num_threads(tmp_path, monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == affinity
    assert available_cores(tmp_path / "no cgroup v2") == affinity
    cpu_max.write_text("150000 100000\n")  # a Kubernetes limit of 1.5 CPUs: one thread, not a second one throttled
    assert available_cores(cpu_max) == 1
    cpu_max.write_text("max 100000\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores(cpu_max) == 1


def test_shared_threads_are_read_from_the_config_and_nonsense_is_refused():
    assert InferenceSettings.from_config({"threads": "shared"}).threads == "shared"
    assert InferenceSettings.from_config({"threads": 1}).threads == 1
    for value in ("two", -1, True, 1.5):
        with pytest.raises(ValueError, match="threads must be"):
            InferenceSettings.from_config({"threads": value})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to share")
def test_a_shared_model_predicts_on_the_cores_it_is_given_and_gives_the_caller_its_threads_back(
    tiny_run, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own share, not another test process's
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    model = InferenceModel(tiny_run, InferenceSettings(precision="fp32", threads="shared"))
    seen = []
    model.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model(torch.rand(1, 3, 224, 224))
        assert torch.get_num_threads() == 1
        worker = busy_worker(model.cores.folder, 2)
        try:
            model(torch.rand(1, 3, 224, 224))
        finally:
            worker.communicate("")
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 1]
