"""Build the container image (`make image`): which model goes in, the docker command, and what came out."""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from animals.errors import UserError
from animals.pretrained import weights_variable
from serving.config import REPO_ROOT
from serving.record import record_path

IMAGE_NAME = "animals-torchserve"  # make image tags IMAGE_NAME:VERSION; the manifests and compose name it
CONFIG_IN_IMAGE = "serve/config.properties"  # relative to the image's working directory (the Dockerfile's CMD)
SHIPPED_CONFIG = REPO_ROOT / "config.properties"  # what the image copies to CONFIG_IN_IMAGE
DOCKERFILE = REPO_ROOT / "Dockerfile"
BASE_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "base_image.sh"


@dataclass(frozen=True)
class ImageRequest:
    """What to build: the tag, the base and torch index, the archive's version label, and the model."""

    tag: str
    version: str = "1.0"
    base_image: str | None = None
    torch_index: str = ""
    run: Path | None = None
    archive: Path | None = None


def describe_model(request: ImageRequest) -> str:
    if request.archive:
        return f"the archive {request.archive}"
    if request.run:
        return f"the trained run {request.run}"
    variable = weights_variable("vgg16")
    local = os.environ.get(variable)
    return "the ImageNet zero-shot model, " + (f"{variable}={local}" if local else "weights downloaded at build")


@contextlib.contextmanager
def model_context(request: ImageRequest) -> Iterator[Path | None]:
    """The folder given to the build as its `model` context, holding only what the model needs (so weights never
    enter the main context): a run folder as it is; an archive with its record; VGG16_WEIGHTS linked as vgg16.pth.
    None: the build downloads ImageNet weights."""
    if request.run:
        if not (request.run / "model.pt").is_file():
            raise UserError(f"{request.run} is not a training run (no model.pt); runs are in artifacts/")
        yield request.run.resolve()
        return
    files: dict[str, Path] = {}
    if request.archive:
        record = record_path(request.archive)
        for path in (request.archive, record):
            if not path.is_file():
                raise UserError(f"no {path}; build the archive with `make archive` first")
        files = {request.archive.name: request.archive, record.name: record}
    elif os.environ.get(weights_variable("vgg16")):
        weights = Path(os.environ[weights_variable("vgg16")])
        if not weights.is_file():
            raise UserError(f"{weights_variable('vgg16')}={weights} is not a file")
        files = {"vgg16.pth": weights}
    if not files:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="animals-model-") as folder:
        for name, path in files.items():
            link(path.resolve(), Path(folder) / name)
        yield Path(folder)


def link(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (weights are large), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def default_base_image() -> str:
    """The Dockerfile's own default base (animals-base:bookworm, which scripts/base_image.sh makes)."""
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise UserError(f"{DOCKERFILE} has no ARG BASE_IMAGE=")


def build_command(request: ImageRequest, context: Path | None) -> list[str]:
    command = ["docker", "build", "--tag", request.tag]
    arguments = {"BASE_IMAGE": request.base_image or default_base_image(), "TORCH_INDEX": request.torch_index}
    for name, value in (arguments | {"VERSION": request.version}).items():
        command += ["--build-arg", f"{name}={value}"]
    if context is not None:
        command += ["--build-context", f"model={context}"]
    return [*command, str(REPO_ROOT)]


def check_docker() -> None:
    """Docker 23+ with buildx (BuildKit) builds the Dockerfile; one line saying what to do otherwise."""
    if shutil.which("docker") is None:
        raise UserError("docker is not installed; README: Deployment says how (Docker 23+ with buildx)")
    version = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    if version.returncode != 0:
        reason = (version.stderr.strip().splitlines() or ["no answer"])[-1]
        raise UserError(f"the Docker engine does not answer ({reason}); start dockerd (scripts/ensure_docker.sh)")
    if int(version.stdout.split(".")[0] or 0) < 23:
        raise UserError(f"Docker {version.stdout.strip()} cannot build the Dockerfile: it needs Docker 23+ with buildx")
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        raise UserError("docker buildx is missing: install docker-buildx (README: Deployment)")


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build_image(request: ImageRequest) -> None:
    """Build the image with the model of `request`; docker's own progress goes to the terminal."""
    check_docker()
    base = request.base_image or default_base_image()
    if base == default_base_image() and not image_exists(base):
        print(f"No base image {base} yet: making it from Debian's archive")
        if subprocess.run([str(BASE_IMAGE_SCRIPT), base]).returncode != 0:
            raise UserError(f"could not make the base image {base} (its output is above)")
    print(f"Building {request.tag} on {base} with {describe_model(request)}")
    with model_context(request) as context:
        built = subprocess.run(build_command(request, context), env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if built.returncode != 0:
        raise UserError(f"docker build of {request.tag} failed (its output is above)")


def image_size_bytes(tag: str) -> int:
    inspected = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True, check=True)
    return int(json.loads(inspected.stdout)[0]["Size"])
