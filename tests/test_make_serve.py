"""`make serve` end to end with a full-size VGG16 (random ImageNet-shaped weights named by VGG16_WEIGHTS)."""

import os
import subprocess
from pathlib import Path

import pytest
import requests

from animals.labels import ANIMALS
from tests.support import HTTP_TIMEOUT_S, REPO_ROOT, write_config

MAKE_TIMEOUT_S = 600


def make(target: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A make target on a temporary config; IMAGENET=1 so runs trained in this checkout's artifacts/ don't interfere."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), target, f"CONFIG={config}", "IMAGENET=1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_S,
    )


@pytest.mark.slow
def test_make_serve_serves_full_vgg16_from_vgg16_weights(tmp_path, vgg16_weights, samples):
    config = write_config(tmp_path / "server")
    env = os.environ | {"VGG16_WEIGHTS": str(vgg16_weights)}
    try:
        started = make("serve", config.path, env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"ImageNet vgg16 with a zero-shot animal head (VGG16_WEIGHTS={vgg16_weights})" in started.stdout
        assert "READY" in started.stdout and "Authorization: Bearer" in started.stdout

        again = make("serve", config.path, env)
        assert again.returncode == 0 and "already running" in again.stdout

        token = make("token", config.path, env).stdout.strip()
        url = f"{config.inference_url}/predictions/animals"
        headers = {"Authorization": f"Bearer {token}"}
        answer = requests.post(url, data=samples[0].read_bytes(), headers=headers, timeout=HTTP_TIMEOUT_S)
        assert answer.status_code == 200
        assert len(answer.json()) == 5 and set(answer.json()) <= set(ANIMALS)
        text = requests.post(url, data=b"a text file\n", headers=headers, timeout=HTTP_TIMEOUT_S)
        assert text.status_code == 400 and "not an image" in text.json()["message"]
    finally:
        stopped = make("stop", config.path, env)
    assert stopped.returncode == 0 and "TorchServe stopped" in stopped.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{config.inference_url}/ping", timeout=HTTP_TIMEOUT_S)
    nothing = make("stop", config.path, env)
    assert nothing.returncode == 0 and "not running" in nothing.stdout


def test_make_serve_without_any_weights_names_both_options(tmp_path):
    """No VGG16_WEIGHTS, an empty torch cache, and downloads refused at once by a closed local proxy port."""
    config = write_config(tmp_path / "server")
    env = {key: value for key, value in os.environ.items() if key != "VGG16_WEIGHTS"}
    offline = {"TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    result = make("serve", config.path, env | offline | {"HTTPS_PROXY": offline["https_proxy"]})
    assert result.returncode != 0
    message = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "machine with internet" in message and "VGG16_WEIGHTS=/path/to/vgg16.pth" in message
    assert "Traceback" not in result.stderr
    assert not config.archive.exists()


def test_make_serve_with_a_missing_weights_file_says_so(tmp_path):
    config = write_config(tmp_path / "server")
    result = make("serve", config.path, os.environ | {"VGG16_WEIGHTS": str(tmp_path / "missing.pth")})
    assert result.returncode != 0
    assert "missing.pth is not a file" in result.stderr and "Traceback" not in result.stderr
