"""The fuzzing harnesses run (two seconds each), so that `make fuzz` cannot rot: each starts, is seeded from the
corpora, executes inputs and finds nothing."""

import re
import subprocess
import sys

from fuzz.run import HARNESSES
from tests.support import REPO_ROOT


def test_every_harness_runs_clean_for_a_few_seconds(tmp_path):
    command = [sys.executable, "-m", "fuzz.run", "--seconds", "2", "--findings", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    executed = [int(count) for count in re.findall(r"stat::number_of_executed_units: (\d+)", output)]
    assert len(executed) == len(HARNESSES) and all(count > 0 for count in executed), output[-3000:]
    assert "Nothing new found" in output and not any(tmp_path.rglob("*-*")), "a harness found something"
