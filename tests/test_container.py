"""The image as built by `make image`, run by a real Docker engine: its config's files are there, it serves the sample
photos with the answers of the archive it holds, it keeps management unpublished and the token on, it stops cleanly;
and compose brings up the page with it. Docker is set up by scripts/ensure_docker.sh (make test); without it these
tests skip, loudly, except in CI (CI=true), where they fail."""

import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator

import pytest
import requests

from animals.errors import UserError
from benchmarks import cold_start
from serving.config import MODEL_NAME, read_properties
from serving.image import CONFIG_IN_IMAGE, check_docker
from tests.support import HTTP_TIMEOUT_S, REPO_ROOT, SAMPLE_DIR, archive_of, free_port
from training.predict import Predictor

IMAGE_TAG = "animals-torchserve:test"
SERVE_HOME = "/app/serve"
BUILD_TIMEOUT_S = 1800
START_TIMEOUT_S = 180
STOP_GRACE_S = 10


def docker(*arguments: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=timeout_s)
    if check:
        assert result.returncode == 0, f"docker {' '.join(arguments)}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def docker_ready() -> str | None:
    """Why the container tests cannot run here (the product's own check, plus compose), or None."""
    try:
        check_docker()
    except UserError as error:
        return str(error)
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "docker compose is missing (scripts/ensure_docker.sh installs it)"
    return None


@pytest.fixture(scope="module")
def image(tiny_run) -> str:
    """The image of the tiny run, built by `make image`'s command (Docker's layer cache makes a rebuild quick)."""
    problem = docker_ready()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true runs the container tests)")
        pytest.skip(problem)
    command = [sys.executable, "-m", "scripts.image", "--run", str(tiny_run), "--tag", IMAGE_TAG]
    built = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert f"Built {IMAGE_TAG}" in built.stdout and "version 1.0" in built.stdout
    return IMAGE_TAG


@pytest.fixture(scope="module")
def container(image) -> Iterator[dict]:
    """The image run as the README runs it: inference REST and gRPC published on 127.0.0.1 only."""
    name = f"animals-test-{uuid.uuid4().hex[:8]}"
    ports = {"rest": free_port(), "grpc": free_port()}
    published = ["-p", f"127.0.0.1:{ports['rest']}:8080", "-p", f"127.0.0.1:{ports['grpc']}:7070"]
    docker("run", "-d", "--name", name, *published, image)
    try:
        wait_until_healthy(name)
        token = docker("exec", name, "python", "-m", "scripts.server", "--config", CONFIG_IN_IMAGE, "token")
        yield {"name": name, "url": f"http://127.0.0.1:{ports['rest']}", "token": token.stdout.strip()}
    finally:
        docker("rm", "-f", name, check=False)


def wait_until_healthy(container_name: str) -> None:
    """Until Docker's HEALTHCHECK (the image's `health` command) says healthy; fail at once if the container exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container_name).stdout)
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state["Running"]:
            logs = docker("logs", "--tail", "30", container_name, check=False)
            pytest.fail(f"the container exited ({state['ExitCode']}): {logs.stdout[-2000:]}{logs.stderr[-2000:]}")
        time.sleep(1)
    pytest.fail(f"the container was not healthy in {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def archive_reference(image, tmp_path_factory) -> Predictor:
    """The archive inside the image, unpacked here and called in-process: what every container answer must be."""
    work = tmp_path_factory.mktemp("image-archive")
    archive = work / "animals.mar"
    created = docker("create", image).stdout.strip()
    try:
        docker("cp", f"{created}:{SERVE_HOME}/model_store/{MODEL_NAME}-1.0.mar", str(archive))
    finally:
        docker("rm", created, check=False)
    with zipfile.ZipFile(archive) as packed:
        packed.extractall(work / "model")
    return Predictor(work / "model")


def test_every_file_the_config_names_is_in_the_image(image):
    """The product's own check, run in the image on its own config (the start command runs it too)."""
    code = (
        "import json; from serving.config import read_config, check_named_files; "
        f"config = read_config('{CONFIG_IN_IMAGE}'); check_named_files(config); "
        "print(json.dumps({key: str(path) for key, path in config.named_files().items()}))"
    )
    checked = docker("run", "--rm", "--entrypoint", "python", image, "-c", code)
    named = json.loads(checked.stdout.strip().splitlines()[-1])
    assert set(named) == {"model_store", "metrics_config", "vmargs log4j.configurationFile"}
    listing = docker("run", "--rm", "--entrypoint", "ls", image, *named.values()).stdout
    assert "log4j2.xml" in listing and "metrics.yaml" in listing and f"{MODEL_NAME}-1.0.mar" in listing


def test_the_image_workers_wait_for_work_asleep(image):
    """As `make serve`'s workers do (serving.server.WORKER_ENVIRONMENT), whether the image's own command or KServe's
    starts TorchServe."""
    environment = json.loads(docker("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout)
    assert "OMP_WAIT_POLICY=PASSIVE" in environment


def test_the_container_answers_every_sample_photo_as_its_archive_does(container, archive_reference, samples):
    url = f"{container['url']}/predictions/{MODEL_NAME}"
    headers = {"Authorization": f"Bearer {container['token']}"}
    with requests.Session() as session:
        for path in samples:
            photo = path.read_bytes()
            answer = session.post(url, data=photo, headers=headers, timeout=HTTP_TIMEOUT_S)
            assert answer.status_code == 200, (path.name, answer.text)
            assert next(iter(answer.json())) == archive_reference.top1(photo), path.name


def test_the_container_publishes_no_management_port_and_wants_the_token(container):
    published = docker("port", container["name"]).stdout
    management = read_properties(REPO_ROOT / "config.properties")["management_address"].rsplit(":", 1)[1]
    assert "8080/tcp" in published and f"{management}/tcp" not in published
    assert all("127.0.0.1:" in line for line in published.splitlines() if line.strip())
    refused = requests.post(f"{container['url']}/predictions/{MODEL_NAME}", data=b"x", timeout=HTTP_TIMEOUT_S)
    assert refused.status_code == 400 and refused.json()["type"] == "InvalidKeyException"  # TorchServe 0.12's answer


def test_docker_stop_ends_the_container_cleanly_within_its_grace_period(image):
    """A container of its own, so that the others' tests are not cut short: healthy, then `docker stop`."""
    name = f"animals-stop-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, image)
    try:
        wait_until_healthy(name)
        docker("stop", "--time", str(STOP_GRACE_S), name, timeout_s=STOP_GRACE_S + 60)
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        logs = docker("logs", name).stdout
        assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} (137: killed after {STOP_GRACE_S} s)"
        assert "SIGTERM: stopping TorchServe" in logs and "TorchServe stopped" in logs
        assert "did not stop" not in logs, "workers had to be killed"
    finally:
        docker("rm", "-f", name, check=False)


def test_compose_brings_up_the_page_and_the_server_and_a_page_upload_is_answered(image, archive_reference, samples):
    """README: `make image`, then `docker compose up -d`; here with the test's image and free host ports."""
    ports = {"ANIMALS_INFERENCE_PORT": free_port(), "ANIMALS_GRPC_PORT": free_port(), "ANIMALS_WEB_PORT": free_port()}
    env = {**os.environ, "ANIMALS_IMAGE": image, **{key: str(port) for key, port in ports.items()}}
    project = f"animals-test-{uuid.uuid4().hex[:8]}"

    def compose(*arguments: str) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "--project-name", project, *arguments]
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        assert result.returncode == 0, f"{' '.join(command)}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result

    try:
        compose("up", "-d", "--wait")
        page = f"http://127.0.0.1:{ports['ANIMALS_WEB_PORT']}"
        photo = samples[0].read_bytes()
        answer = requests.post(f"{page}/api/predict", files={"image": photo}, timeout=HTTP_TIMEOUT_S)
        assert answer.status_code == 200, answer.text
        assert answer.json()["top_label"] == archive_reference.top1(photo)
    finally:
        compose("down", "--volumes", "--timeout", str(STOP_GRACE_S))
    assert docker("volume", "inspect", f"{project}_serve", check=False).returncode != 0, "the volume was left behind"


def test_an_int8_archive_is_served_by_the_image(tiny_run, samples, tmp_path):
    """`make image ARCHIVE=` with an int8 archive: its worker loads a program compiled ahead of time, without
    compiling: the one packed when the archive was built, or, where the image's C library is older than this
    machine's (a library built against a newer glibc does not load on an older one), the one the image's build
    compiled again for it. Healthy means a READY worker, and photos are answered."""
    if docker_ready():
        pytest.skip(docker_ready())
    archive = archive_of(tiny_run, tmp_path / "animals-1.0.mar", handler={"precision": "int8"}, calibration=SAMPLE_DIR)
    tag = f"{IMAGE_TAG}-int8"
    command = [sys.executable, "-m", "scripts.image", "--archive", str(archive), "--tag", tag]
    built = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    name, port = f"animals-int8-{uuid.uuid4().hex[:8]}", free_port()
    command = json.loads(docker("image", "inspect", "--format", "{{json .Config.Cmd}}", tag).stdout)
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag, *command, "--workers", "1")
    try:
        wait_until_healthy(name)
        token = docker("exec", name, "python", "-m", "scripts.server", "--config", CONFIG_IN_IMAGE, "token")
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        for path in samples[:5]:
            url = f"http://127.0.0.1:{port}/predictions/{MODEL_NAME}"
            answer = requests.post(url, data=path.read_bytes(), headers=headers, timeout=HTTP_TIMEOUT_S)
            assert answer.status_code == 200 and len(answer.json()) == 5, answer.text
        logs = docker("logs", name).stdout + docker("logs", name).stderr
        assert "InductorError" not in logs
        assert "compiles the int8 program itself" not in logs
    finally:
        docker("rm", "-f", name, check=False)


def test_the_benchmark_times_a_container_of_the_image_to_its_first_answer(image, samples):
    """benchmarks.cold_start as `make bench` runs it on an image: started as the README runs it, answered, removed."""
    seconds = cold_start.container_to_first_answer(image, samples[0].read_bytes())
    assert seconds > 0
    left = docker("ps", "--all", "--filter", f"name=animals-bench-{os.getpid()}", "--format", "{{.Names}}").stdout
    assert left.strip() == "", f"the benchmark left its container behind: {left}"
