"""Test helpers: small real models, a TorchServe config on free loopback ports, and an HTTP client for it."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import requests
import torch

from animals.labels import ANIMALS, write_index_to_name
from animals.model import ModelSpec, build_model
from benchmarks.load import free_port
from scripts.settings import DEFAULT_CONFIG, SAMPLE_IMAGES, ServerConfig, read_config, read_keys

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = SAMPLE_IMAGES
TINY_SPEC = ModelSpec(arch="vgg16", width=1 / 16)
HTTP_TIMEOUT_S = 60
PORT_KEYS = {
    "inference_address": "http://127.0.0.1:{}",
    "management_address": "http://127.0.0.1:{}",
    "metrics_address": "http://127.0.0.1:{}",
    "grpc_inference_port": "{}",
    "grpc_management_port": "{}",
    "initial_worker_port": "{}",
}


def sample_images() -> list[Path]:
    return sorted(path for path in SAMPLE_DIR.glob("*/*") if path.suffix.lower() in (".jpg", ".jpeg"))


def make_run(run: Path, spec: ModelSpec = TINY_SPEC, seed: int = 0) -> Path:
    """A run folder as training writes it, with random weights whose logits are spread apart (no near-ties)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    with torch.no_grad():
        model.classifier[6].weight.mul_(50)
    run.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run / "model.pt")
    spec.save(run / "model.json")
    write_index_to_name(ANIMALS, run / "index_to_name.json")
    return run


def write_config(home: Path, source: Path = DEFAULT_CONFIG, **overrides: str) -> ServerConfig:
    """A copy of the project's config with every port free, so tests never meet `make serve`'s server."""
    home.mkdir(parents=True, exist_ok=True)
    values = {key: template.format(free_port()) for key, template in PORT_KEYS.items()} | overrides
    lines = []
    for line in source.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key}={values.pop(key)}" if key in values else line)
    lines += [f"{key}={value}" for key, value in values.items()]
    (home / "config.properties").write_text("\n".join(lines) + "\n")
    shutil.copy2(source.parent / "metrics.yaml", home / "metrics.yaml")
    return read_config(home / "config.properties")


@dataclass
class Client:
    """Talks to a running TorchServe over REST with the current tokens; every call has a timeout."""

    config: ServerConfig

    def headers(self, kind: str = "inference") -> dict[str, str]:
        return {"Authorization": f"Bearer {read_keys(self.config)[kind]}"}

    def predict(self, body: bytes | None = None, **kwargs) -> requests.Response:
        url = f"{self.config.inference_url}/predictions/{self.config.model_name}"
        headers = kwargs.pop("headers", self.headers())
        return requests.post(url, data=body, headers=headers, timeout=HTTP_TIMEOUT_S, **kwargs)

    def get(self, url: str, kind: str = "inference") -> requests.Response:
        return requests.get(url, headers=self.headers(kind), timeout=HTTP_TIMEOUT_S)
