"""Build the model archive (animals.mar) with torch-model-archiver, from a trained run or the ImageNet default.

The archive packs the weights (a state dict), model.json, index_to_name.json, the handler, the shared `animals`
package and model-config.yaml. A record beside it (animals.mar.json) keeps its source, version and SHA-256.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from animals.acceleration import InferenceSettings
from animals.errors import UserError
from animals.labels import ANIMALS, write_index_to_name
from animals.model import ModelSpec, load_model
from animals.pretrained import imagenet_source, imagenet_weights_file
from animals.run import RUN_FILES, check_run, newest_run
from serving.config import MODEL_CONFIG, REPO_ROOT, ServerConfig

HANDLER = REPO_ROOT / "handler" / "animals_handler.py"
SHARED_PACKAGE = REPO_ROOT / "animals"
DEFAULT_ARCH = "vgg16"
DEFAULT_VERSION = "1.0"


@dataclass(frozen=True)
class ModelSource:
    """What goes into an archive: a trained run's folder, or (run=None) ImageNet weights with a zero-shot head."""

    description: str
    run: Path | None = None
    arch: str = DEFAULT_ARCH

    def input_files(self) -> list[Path]:
        """Files whose change makes an archive built from this source out of date."""
        code = [HANDLER, MODEL_CONFIG, *sorted(SHARED_PACKAGE.glob("*.py"))]
        if self.run is not None:
            return code + [self.run / name for name in RUN_FILES]
        return [*code, imagenet_weights_file(self.arch)]


def trained_run_source(run: Path) -> ModelSource:
    return ModelSource(description=f"trained run {run}", run=check_run(run).resolve())


def choose_source(run: Path | None = None, imagenet: bool = False) -> ModelSource:
    """The run asked for, else the newest trained run, else the ImageNet zero-shot default."""
    if run is not None:
        return trained_run_source(Path(run))
    latest = None if imagenet else newest_run()
    if latest is not None:
        return trained_run_source(latest)
    return ModelSource(
        description=f"ImageNet {DEFAULT_ARCH} with a zero-shot animal head ({imagenet_source(DEFAULT_ARCH)})"
    )


def record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".json")


def read_record(archive: Path) -> dict:
    path = record_path(archive)
    return json.loads(path.read_text()) if path.is_file() else {}


def is_stale(archive: Path, source: ModelSource) -> bool:
    """True when the archive is missing, was built from another source, or is older than any of its inputs."""
    if not archive.is_file() or read_record(archive).get("source") != source.description:
        return True
    built = archive.stat().st_mtime
    return any(path.stat().st_mtime > built for path in source.input_files())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_archive(
    archive: Path,
    source: ModelSource,
    model_name: str,
    version: str = DEFAULT_VERSION,
    precision: str | None = None,
) -> Path:
    """Build `archive` from `source`; written to a temporary name first, so a failed build leaves no half archive.

    Every archive registers as `model_name` whatever its file is called (animals-2.0.mar is version 2.0 of animals).
    `precision` overrides model-config.yaml's handler precision for this archive (fp32, bf16 or auto).
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    print(f"Building {archive} (version {version}) from {source.description}")
    with tempfile.TemporaryDirectory(prefix="archive-", dir=archive.parent) as work:
        stage = Path(work) / "stage"
        weights = _stage_model(source, stage)
        shutil.copytree(SHARED_PACKAGE, stage / "animals", ignore=shutil.ignore_patterns("__pycache__"))
        model_config = _model_config(Path(work), precision)
        _run_archiver(model_name, version, weights, stage, model_config, Path(work))
        os.replace(Path(work) / f"{model_name}.mar", archive)
    record = {"source": source.description, "version": version, "sha256": sha256_of(archive)}
    record_path(archive).write_text(json.dumps(record, indent=2) + "\n")
    print(f"Built {archive} ({archive.stat().st_size / 2**20:.0f} MiB, sha256 {record['sha256'][:16]}...)")
    return archive


def _stage_model(source: ModelSource, stage: Path) -> Path:
    """Put model.json and index_to_name.json in `stage`; return the weights file to pack."""
    stage.mkdir()
    if source.run is not None:
        for name in ("model.json", "index_to_name.json"):
            shutil.copy2(source.run / name, stage / name)
        return source.run / "model.pt"
    print(f"Packing ImageNet {source.arch} weights from {imagenet_source(source.arch)}")
    spec = ModelSpec(arch=source.arch, num_classes=len(ANIMALS), head="imagenet-groups")
    weights = imagenet_weights_file(source.arch)
    try:
        load_model(spec, weights)
    except RuntimeError as error:
        raise UserError(f"{weights} is not an ImageNet {source.arch} state dict in torchvision's layout") from error
    spec.save(stage / "model.json")
    write_index_to_name(ANIMALS, stage / "index_to_name.json")
    packed = stage.parent / "model.pt"
    packed.symlink_to(weights.resolve())
    return packed


def _model_config(work: Path, precision: str | None) -> Path:
    """model-config.yaml, or a copy of it with the handler's precision replaced."""
    if precision is None:
        return MODEL_CONFIG
    settings = yaml.safe_load(MODEL_CONFIG.read_text())
    try:
        InferenceSettings.from_config({**settings["handler"], "precision": precision})
    except ValueError as error:
        raise UserError(str(error)) from error
    settings["handler"]["precision"] = precision
    path = work / "model-config.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def _run_archiver(name: str, version: str, weights: Path, stage: Path, model_config: Path, export: Path) -> None:
    command = [
        sys.executable, "-m", "model_archiver.model_packaging",
        "--model-name", name,
        "--version", version,
        "--serialized-file", str(weights),
        "--handler", str(HANDLER),
        "--extra-files", str(stage),
        "--config-file", str(model_config),
        "--archive-format", "zip-store",
        "--export-path", str(export),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"torch-model-archiver failed: {result.stderr.strip().splitlines()[-1:]}")


def ensure_archive(config: ServerConfig, source: ModelSource) -> None:
    """Build the config's archive only when it is missing or out of date."""
    if is_stale(config.archive, source):
        build_archive(config.archive, source, config.model_name)
    else:
        print(f"{config.archive} is up to date ({source.description})")
