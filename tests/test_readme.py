"""The README's version blocks (management, rollout, rollback) run as written, top to bottom, in a shell, against a
real TorchServe: only the run they name (artifacts/my-run) and the config (TORCHSERVE_CONFIG) are the test's own."""

import os
import re
import shutil
import subprocess

from serving.client import RestClient
from serving.server import stop
from tests.support import REPO_ROOT, make_run, serve, write_config

SECTION = "Model versions and management"
SHELL_TIMEOUT_S = 600


def readme_blocks(section: str) -> list[str]:
    """The ```bash blocks of a README section, in order."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)


def test_the_version_blocks_run_top_to_bottom(tmp_path, tiny_run):
    blocks = readme_blocks(SECTION)
    assert len(blocks) == 3 and "rollout" in blocks[1] and "rollback" in blocks[2]
    artifacts = tmp_path / "artifacts"
    shutil.copytree(make_run(tmp_path / "trained", seed=5), artifacts / "my-run")
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("artifacts/", f"{artifacts}/")
    config = write_config(tmp_path / "server")
    try:
        assert serve(config, tiny_run) == "1.0"
        shell = subprocess.run(
            ["bash", "-c", script], cwd=REPO_ROOT, env=os.environ | {"TORCHSERVE_CONFIG": str(config.path)},
            capture_output=True, text=True, timeout=SHELL_TIMEOUT_S,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
        client = RestClient(config)
        assert client.default_version() == "2.0" and client.versions() == {"1.0", "2.0"}
        assert "Making 2.0 the default" in shell.stdout and "Rolling back from 2.0 to 1.0" in shell.stdout
    finally:
        stop(config)


def test_readme_commands_that_load_vgg16_say_where_its_weights_come_from():
    """Offline, VGG16's ImageNet weights come only from VGG16_WEIGHTS: every README command that loads them (the
    zero-shot report of the served network, `make serve` of the ImageNet model) names it, or says it downloads."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    reports = [line for line in lines if "-m training.zero_shot_report" in line and "--network" not in line]
    assert reports and all("VGG16_WEIGHTS=" in line for line in reports), reports
