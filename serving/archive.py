"""Build model archives with torch-model-archiver: the same bytes for the same inputs, each with its record.

An archive packs the weights (a state dict; an int8 archive packs its int8 program and that program compiled
instead), model.json, index_to_name.json, the handler, the shared `animals` package and model-config.yaml. The record
beside it (animals-1.0.mar.json) holds its version, where it came from, `content` (a digest of everything packed: the
same model gives the same digest whatever version label or path spelling it was built under) and the archive's own
SHA-256, checked before it is registered. An int8 archive installed on a machine its compiled program cannot run on
gets that program compiled again there (same model, same content digest; a new SHA-256 in its record).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from animals import quantization
from animals.errors import UserError
from animals.inference_settings import InferenceSettings
from animals.labels import ANIMALS, write_index_to_name
from animals.model import ModelSpec, load_model
from animals.pretrained import imagenet_source, imagenet_weights_file
from animals.run import check_run, newest_run
from serving import int8
from serving.config import MODEL_CONFIG, REPO_ROOT
from serving.record import MANIFEST, Record, sha256_of

HANDLER = REPO_ROOT / "handler" / "animals_handler.py"
SHARED_PACKAGE = REPO_ROOT / "animals"
DEFAULT_ARCH = "vgg16"
# Fixed where the archiver writes the time: zip entries at the zip epoch, the manifest's createdOn likewise.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CREATED_ON = "01/01/1980 00:00:00"
ZIP_LEVEL = 1


@dataclass(frozen=True)
class ModelSource:
    """What goes into an archive: a trained run's folder, or (run=None) ImageNet weights with the zero-shot head."""

    description: str
    run: Path | None = None
    arch: str = DEFAULT_ARCH


def trained_run_source(run: Path) -> ModelSource:
    run = check_run(run).resolve()
    return ModelSource(description=f"trained run {run}", run=run)


def imagenet_source_default() -> ModelSource:
    return ModelSource(f"ImageNet {DEFAULT_ARCH} with the zero-shot animal head ({imagenet_source(DEFAULT_ARCH)})")


def choose_source(run: Path | None = None, imagenet: bool = False) -> ModelSource:
    """The run asked for, else (unless imagenet) the newest trained run, else the ImageNet zero-shot default."""
    if run is not None:
        return trained_run_source(Path(run))
    latest = None if imagenet else newest_run()
    return trained_run_source(latest) if latest is not None else imagenet_source_default()


@dataclass(frozen=True)
class Staged:
    """An archive's inputs laid out in a folder as they will be packed, and the digest of them all."""

    source: ModelSource
    folder: Path
    weights: Path
    model_config: Path
    content: str
    precision: str
    started: float  # time.perf_counter() when staging began: the archive's build time counts from there
    int8_images: int8.ImagePlan | None = None


@contextmanager
def staged(source: ModelSource, handler: dict | None = None, calibration: Path | None = None) -> Iterator[Staged]:
    """Lay out what an archive of `source` packs in a temporary folder. `handler` overrides settings of
    model-config.yaml's handler section (e.g. {"precision": "int8"}) for this archive; an int8 archive is quantized
    here, calibrated on the images of `calibration` (default: see serving.int8)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="archive-") as work:
        folder = Path(work) / "extra"
        folder.mkdir()
        weights = _stage_model(source, folder)
        shutil.copytree(SHARED_PACKAGE, folder / "animals", ignore=shutil.ignore_patterns("__pycache__"))
        model_config, precision = _model_config(Path(work), handler or {})
        plan = int8.image_plan(source.run, calibration) if precision == "int8" else None
        if plan is not None:
            int8.quantize_into(folder, weights, plan)
        packed = {"model-config.yaml": model_config, HANDLER.name: HANDLER}
        if plan is None:  # an int8 archive packs no float weights: its explanations dequantize the int8 ones
            packed["model.pt"] = weights
        packed |= {str(path.relative_to(folder)): path for path in folder.rglob("*") if path.is_file()}
        yield Staged(source, folder, weights, model_config, _digest(packed), precision, started, plan)


def build_archive(archive: Path, stage: Staged, model_name: str, version: str, agreement: dict | None = None) -> Record:
    """Build `archive` from staged inputs, byte-identical for identical inputs and version; written to a temporary
    name first, so a failed build leaves no half archive. Every archive registers as `model_name`."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    print(f"Building {archive} (version {version}) from {stage.source.description}")
    with tempfile.TemporaryDirectory(prefix="archive-", dir=archive.parent) as work:
        _run_archiver(model_name, version, stage, Path(work))
        _normalise(Path(work) / f"{model_name}.mar", Path(work) / "normalised.mar")
        os.replace(Path(work) / "normalised.mar", archive)
    calibration = stage.int8_images and f"{len(stage.int8_images.calibration)} images: {stage.int8_images.description}"
    seconds = round(time.perf_counter() - stage.started, 1)
    record = Record(
        version, stage.source.description, stage.content, sha256_of(archive), stage.precision, calibration, agreement,
        seconds,
    )  # fmt: skip
    record.write(archive)
    print(
        f"Built {archive} in {seconds:.0f} s ({archive.stat().st_size / 2**20:.0f} MiB, sha256 {record.sha256[:16]}...)"
    )
    return record


def fit_compiled_program(archive: Path) -> str | None:
    """Compile an int8 archive's program ahead of time again, for this machine, where the one packed cannot run on
    its software (another C library or torch: an archive built on a newer system and installed in the container
    image), so that its workers load it instead of each compiling it at every start. Not for the CPU's features: the
    machine that installs (an image's build host) need not be the one that serves. The archive and its record's
    SHA-256 are rewritten; why the packed one did not fit, or None (nothing done: not int8, it fits, or this machine
    compiles nothing ahead of time)."""
    record = Record.read(archive)
    if record is None or record.precision != "int8":
        return None
    # The new archive is written beside the old one, so that it replaces it in one rename (same filesystem).
    with tempfile.TemporaryDirectory(prefix="fit-", dir=archive.parent) as work, zipfile.ZipFile(archive) as packed:
        folder = Path(work)
        packed.extract(quantization.PROGRAM, folder)
        if quantization.COMPILED_FOR in packed.namelist():
            packed.extract(quantization.COMPILED_FOR, folder)
        reason = quantization.why_not_ahead_of_time(folder, cpu=False)
        if reason is None:
            return None
        print(f"Compiling the int8 program of {archive.name} again for this machine: {reason}")
        try:
            quantization.compile_ahead(folder)
        except Exception as error:  # no C++ compiler here, say: as before, each worker tries to compile it
            print(f"  not compiled ({type(error).__name__}: {str(error).strip()[:200]}): its workers compile it")
            return None
        if not (folder / quantization.COMPILED).is_file():
            print("  not compiled: this machine compiles nothing ahead of time; its workers compile it")
            return None
        compiled = (quantization.COMPILED, quantization.COMPILED_FOR)
        kept = [(name, packed.read(name)) for name in packed.namelist() if name not in compiled]
        fitted = folder / "fitted.mar"
        with zipfile.ZipFile(fitted, "w") as target:
            for name, data in sorted([*kept, *((name, (folder / name).read_bytes()) for name in compiled)]):
                _write_entry(target, name, data)
        os.replace(fitted, archive)
    replace(record, sha256=sha256_of(archive)).write(archive)
    return reason


def _stage_model(source: ModelSource, folder: Path) -> Path:
    """Put model.json and index_to_name.json in `folder`; return the weights file to pack."""
    if source.run is not None:
        for name in ("model.json", "index_to_name.json"):
            shutil.copy2(source.run / name, folder / name)
        return source.run / "model.pt"
    print(f"Packing ImageNet {source.arch} weights from {imagenet_source(source.arch)}")
    spec = ModelSpec(arch=source.arch, num_classes=len(ANIMALS), head="imagenet-groups")
    weights = imagenet_weights_file(source.arch)
    try:
        load_model(spec, weights)
    except RuntimeError as error:
        raise UserError(f"{weights} is not an ImageNet {source.arch} state dict in torchvision's layout") from error
    spec.save(folder / "model.json")
    write_index_to_name(ANIMALS, folder / "index_to_name.json")
    return weights.resolve()


def _model_config(work: Path, handler: dict) -> tuple[Path, str]:
    """model-config.yaml, or a copy with handler settings replaced; and the precision it asks for."""
    settings = yaml.safe_load(MODEL_CONFIG.read_text())
    settings["handler"] |= handler
    try:
        precision = InferenceSettings.from_config(settings["handler"]).precision
    except ValueError as error:
        raise UserError(str(error)) from error
    if not handler:
        return MODEL_CONFIG, precision
    path = work / "model-config.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path, precision


def _digest(packed: dict[str, Path]) -> str:
    listing = "".join(f"{name} {sha256_of(path)}\n" for name, path in sorted(packed.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _run_archiver(name: str, version: str, stage: Staged, export: Path) -> None:
    command = [
        sys.executable, "-m", "model_archiver.model_packaging",
        "--model-name", name,
        "--version", version,
        "--handler", str(HANDLER),
        "--extra-files", str(stage.folder),
        "--config-file", str(stage.model_config),
        "--archive-format", "zip-store",
        "--export-path", str(export),
    ]  # fmt: skip
    if stage.int8_images is None:
        weights = export / "model.pt"
        weights.symlink_to(stage.weights)  # the archiver copies the file it points to, under this name
        command += ["--serialized-file", str(weights)]
    # The archiver stages files in TMPDIR/<model name>: a folder of its own keeps parallel builds apart.
    environment = os.environ | {"TMPDIR": str(export)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise UserError(f"torch-model-archiver failed: {result.stderr.strip().splitlines()[-1:]}")


def _normalise(built: Path, normalised: Path) -> None:
    """The archiver's zip with its entries sorted, their times and modes fixed, and createdOn fixed; deflated at
    zlib's fastest level, which packs VGG16's int8 archive 13% smaller (level 6: 13.5%, at 1.6 times the time)."""
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(normalised, "w") as target:
        for name in sorted(source.namelist()):
            data = source.read(name)
            if name == MANIFEST:
                data = json.dumps(json.loads(data) | {"createdOn": CREATED_ON}, indent=2).encode()
            _write_entry(target, name, data)


def _write_entry(target: zipfile.ZipFile, name: str, data: bytes) -> None:
    """An entry as every archive holds it: at the zip epoch, readable by all, deflated at ZIP_LEVEL."""
    entry = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    entry.external_attr = 0o644 << 16
    target.writestr(entry, data, zipfile.ZIP_DEFLATED, ZIP_LEVEL)
