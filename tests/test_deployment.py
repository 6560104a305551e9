"""Static checks of the container and deployment files, plus the container's start command run for real on loopback
outside an image (quick: the image itself is built and run by test_container)."""

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from animals.errors import UserError
from benchmarks.report import HPA_CPU_UTILISATION
from serving.archive import trained_run_source
from serving.client import TorchServeError
from serving.config import ServerConfig, read_config, read_properties
from serving.image import IMAGE_NAME
from serving.publish import publish
from tests.support import REPO_ROOT, Client, write_config

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
CONFIG = read_config(REPO_ROOT / "config.properties")
VENV_BIN = Path(sys.executable).parent
REBOUND_HOST = "127.0.0.2"


def instructions(name: str) -> list[str]:
    """The arguments of every Dockerfile instruction called `name`, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def config_ports() -> set[int]:
    urls = [CONFIG.inference_url, CONFIG.management_url, CONFIG.metrics_url]
    return {int(url.rsplit(":", 1)[1]) for url in urls} | {
        int(CONFIG.properties[key]) for key in ("grpc_inference_port", "grpc_management_port")
    }


def test_hadolint_passes():
    result = subprocess.run([str(VENV_BIN / "hadolint"), "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copy_source_exists():
    for arguments in instructions("COPY"):
        words = shlex.split(arguments)
        if any(word.startswith("--from") for word in words):
            continue
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), source


def test_exposed_ports_are_the_configs():
    exposed = {int(port) for arguments in instructions("EXPOSE") for port in arguments.split()}
    assert exposed == config_ports()


def test_runs_as_non_root_with_tini_and_a_healthcheck():
    assert instructions("USER") == ["10001"]
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["tini", "--"]
    assert "scripts.server" in instructions("HEALTHCHECK")[0] and "health" in instructions("HEALTHCHECK")[0]
    assert "openjdk-17-jre-headless" in DOCKERFILE


def test_dockerignore_keeps_heavy_and_private_files_out():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for entry in (".venv/", "artifacts/", "data/", "logs/", "model_store/", "key_file.json", "**/__pycache__/"):
        assert entry in ignored


@pytest.mark.server  # starts a TorchServe of its own
def test_the_containers_start_command_rebinds_serves_and_stops_on_sigterm(tmp_path, tiny_run, samples):
    """The image's CMD, run here with --bind 127.0.0.2 instead of 0.0.0.0 (the config says 127.0.0.1): TorchServe
    listens on the new address only, serves, and on SIGTERM to the command alone (as tini passes it) stops with every
    worker and exits 0."""
    command = json.loads(instructions("CMD")[0])
    assert command[:3] == ["python", "-m", "scripts.server"] and "start" in command and "--foreground" in command
    config = write_config(tmp_path / "serve")
    publish(config, trained_run_source(tiny_run))
    arguments = command[3:]
    arguments[arguments.index("--config") + 1] = str(config.path)
    arguments[arguments.index("--bind") + 1] = REBOUND_HOST
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.server", *arguments], cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        rebound = wait_for_effective_config(config, process)
        for key in ("inference_address", "management_address", "metrics_address"):
            assert rebound.properties[key] == config.properties[key].replace("127.0.0.1", REBOUND_HOST), key
        assert rebound.properties["grpc_inference_address"] == REBOUND_HOST
        client = Client(rebound)
        wait_until(lambda: answers_ping(client), process)
        assert client.post(samples[0].read_bytes()).status_code == 200
        assert not answers_ping(Client(config)), "TorchServe still answers on the config's own address"
        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 3, "expected the launcher, the frontend and its workers"
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    assert exit_code == 0
    assert not [worker for worker in workers if worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE]
    assert stops_listening(Client(rebound), timeout_s=10), "TorchServe kept running after SIGTERM"


def wait_for_effective_config(config: ServerConfig, process: subprocess.Popen) -> ServerConfig:
    """The config TorchServe was started with, read as the project reads configs (paths stay the original's)."""
    effective = config.log_dir / "effective.properties"
    wait_until(effective.is_file, process)
    return ServerConfig(path=config.path, properties=read_properties(effective))


def wait_until(ready, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, "TorchServe did not start"
        time.sleep(0.5)


def answers_ping(client: Client) -> bool:
    try:
        return client.ping() == "Healthy"
    except UserError:  # not listening, or no key file yet
        return False


def stops_listening(client: Client, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client.send("GET", f"{client.inference_url}/ping", timeout=5)
        except TorchServeError as error:
            if error.kind == "unreachable":
                return True
        time.sleep(0.5)
    return False


def test_compose_publishes_only_loopback_and_keeps_state_in_a_volume():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"torchserve", "web"}
    published = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)
    assert not any(port.endswith(f":{CONFIG.management_url.rsplit(':', 1)[1]}") for port in published)
    assert "serve" in compose["volumes"]
    assert "serve:/app/serve" in compose["services"]["torchserve"]["volumes"]


def test_kubernetes_manifests_validate_strictly():
    manifests = sorted((REPO_ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    assert len(manifests) == 3
    command = [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, manifests)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_probes_ports_and_resources():
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {port["containerPort"] for port in container["ports"]} == config_ports()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][-1] == "health"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_the_autoscaler_and_the_resources_follow_the_readmes_capacity_plan():
    """The manifests use the plan's figures: the HPA's CPU target is the utilisation the plan assumes, its ceiling the
    int8 servers for 1,000 requests/s, and a pod requests the cores the benchmark's server had and more memory than
    it held."""
    row = re.search(
        r"^\| int8 \| [\d.]+ \(\d+, \d+ ms\) \| [\d.]+ \| ([\d.]+) \| [\d.]+ \| \d+ / (\d+) / \d+ \|$",
        (REPO_ROOT / "README.md").read_text(), re.MULTILINE,
    )  # fmt: skip
    server_gib, for_a_thousand = float(row[1]), int(row[2])
    hpa = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "hpa.yaml").read_text())["spec"]
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == round(HPA_CPU_UTILISATION * 100)
    assert hpa["maxReplicas"] == for_a_thousand
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["cpu"] == "2" and int(requests["memory"].removesuffix("Gi")) > server_gib


def test_kserve_inference_service_fits_the_v1beta1_api():
    service = yaml.safe_load((REPO_ROOT / "deploy" / "kserve" / "inference-service.yaml").read_text())
    assert service["apiVersion"] == "serving.kserve.io/v1beta1" and service["kind"] == "InferenceService"
    model = service["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "pytorch"
    assert model["protocolVersion"] in ("v1", "v2") and re.match(r"^(s3|gs|pvc|https?)://", model["storageUri"])
    kserve = read_properties(REPO_ROOT / "deploy" / "kserve" / "config.properties")
    assert kserve["model_store"] == "/mnt/models/model-store"
    snapshot = json.loads(kserve["model_snapshot"])
    assert snapshot["models"]["animals"]["1.0"]["marName"] == "animals.mar"


def test_manifests_and_compose_run_the_image_make_image_builds():
    built = f"{IMAGE_NAME}:1.0"
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == built
    service = yaml.safe_load((REPO_ROOT / "deploy" / "kserve" / "inference-service.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["image"] == built
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for container in compose["services"].values():
        assert container["image"] == "${ANIMALS_IMAGE:-" + built + "}" and container["pull_policy"] == "never"
