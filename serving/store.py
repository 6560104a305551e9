"""The model store's versions: one archive per version (model_store/animals-1.0.mar) with its record, a label that
names one model forever, and the next free label."""

import json
import re
import shutil
import zipfile
from pathlib import Path

import yaml

from animals.errors import UserError
from animals.inference_settings import InferenceSettings
from serving import snapshots
from serving.config import ServerConfig
from serving.record import MANIFEST, Record, record_path, sha256_of

FIRST_VERSION = "1.0"


def archive_version(archive: Path) -> str:
    """The model version written in the archive's manifest."""
    return _read_archive(archive, MANIFEST, json.loads)["model"]["modelVersion"]


def verify_archive(archive: Path) -> Record:
    """The archive's record, after checking its SHA-256 is the one recorded when serving.archive built it.

    An archive executes its handler's code when TorchServe loads it: only archives this project built are registered.
    """
    record = Record.read(archive)
    if record is None:
        raise UserError(f"{archive} has no build record ({record_path(archive).name}): build it with `make archive`")
    if sha256_of(archive) != record.sha256:
        raise UserError(f"{archive} does not match the SHA-256 recorded when it was built: refusing to register it")
    return record


def stored(config: ServerConfig) -> dict[str, Record]:
    """The versions in the model store, by label, with their records."""
    records = (Record.read(path) for path in sorted(config.model_store.glob(f"{config.model_name}-*.mar")))
    return {record.version: record for record in records if record is not None}


def taken_versions(config: ServerConfig, registered: set[str] = frozenset()) -> set[str]:
    """Labels that already name a model: in the store, in TorchServe's last snapshot, or registered now."""
    snapshot = snapshots.last_snapshot(config)
    return set(stored(config)) | set(snapshots.versions(snapshot, config.model_name)) | set(registered)


def next_free_version(taken: set[str]) -> str:
    """After the highest numeric label, its last number plus one: 1.0 -> 1.1; 1.0 when nothing is taken."""
    numeric = [tuple(int(part) for part in label.split(".")) for label in taken if re.fullmatch(r"\d+(\.\d+)*", label)]
    if not numeric:
        return FIRST_VERSION
    highest = max(numeric)
    return ".".join(map(str, (*highest[:-1], highest[-1] + 1))) if len(highest) > 1 else f"{highest[0]}.1"


def install_archive(archive: Path, config: ServerConfig, expected_version: str | None = None) -> tuple[str, str]:
    """Check the archive and put it in the model store as MODEL-VERSION.mar; return (name in the store, version)."""
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"no archive at {archive}")
    record = verify_archive(archive)
    version = archive_version(archive)
    if expected_version and expected_version != version:
        raise UserError(f"{archive} is version {version}, not {expected_version}: rebuild it with VERSION=...")
    target = config.archive(version)
    if archive.resolve() == target.resolve():
        return target.name, version
    existing = Record.read(target)
    if existing is not None and existing.content != record.content:
        taken = taken_versions(config)
        raise UserError(
            f"version {version} already names another model in {config.model_store}: rebuild this one with "
            f"VERSION={next_free_version(taken)}"
        )
    shutil.copy2(archive, target)
    shutil.copy2(record_path(archive), record_path(target))
    return target.name, version


def remove_archive(config: ServerConfig, name: str) -> Path | None:
    """Delete an archive (and its record) from the model store; the path removed, or None when it was not there."""
    archive = config.model_store / name
    if not archive.is_file():
        return None
    archive.unlink()
    record_path(archive).unlink(missing_ok=True)
    return archive


def extract_model(archive: Path, destination: Path) -> Path:
    """The archive's model files laid out as a training run folder: index_to_name.json and every `model.*` file at
    its top (the weights, model.json, and an int8 archive's program)."""
    with zipfile.ZipFile(archive) as packed:
        for name in packed.namelist():
            if "/" not in name and (name.startswith("model.") or name == "index_to_name.json"):
                packed.extract(name, destination)
    return destination


def archive_settings(archive: Path) -> InferenceSettings:
    """The handler's inference settings packed in the archive's model-config.yaml."""
    return InferenceSettings.from_config(_read_archive(archive, "model-config.yaml", yaml.safe_load).get("handler", {}))


def archive_labels(archive: Path) -> set[str]:
    """The class names the archive's model answers with."""
    return set(_read_archive(archive, "index_to_name.json", json.loads).values())


def _read_archive(archive: Path, name: str, parse):
    try:
        with zipfile.ZipFile(archive) as packed:
            return parse(packed.read(name))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"{archive} is not a model archive (.mar) built by torch-model-archiver") from error
