"""Model versions on disk: which archive is which version, whether its bytes are the ones we built, and the history
of default versions that `rollback` walks back through."""

import json
import shutil
import zipfile
from pathlib import Path

import yaml

from animals.acceleration import InferenceSettings
from animals.errors import UserError
from serving.archive import read_record, record_path, sha256_of
from serving.config import ServerConfig

HISTORY_FILE = "default-history.json"


def archive_version(archive: Path) -> str:
    """The model version written in the archive's manifest."""
    try:
        with zipfile.ZipFile(archive) as packed:
            manifest = json.loads(packed.read("MAR-INF/MANIFEST.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"{archive} is not a model archive (.mar) built by torch-model-archiver") from error
    return manifest["model"]["modelVersion"]


def verify_archive(archive: Path) -> str:
    """Refuse an archive whose SHA-256 is not the one recorded when serving.archive built it; return the SHA-256.

    An archive executes its handler's code when TorchServe loads it: only archives this project built are registered.
    """
    expected = read_record(archive).get("sha256")
    if expected is None:
        raise UserError(f"{archive} has no build record ({record_path(archive).name}): build it with `make archive`")
    if sha256_of(archive) != expected:
        raise UserError(f"{archive} does not match the SHA-256 recorded when it was built: refusing to register it")
    return expected


def install_archive(archive: Path, config: ServerConfig, expected_version: str | None = None) -> tuple[str, str]:
    """Check the archive and put it in the model store as MODEL-VERSION.mar; return (name in the store, version)."""
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"no archive at {archive}")
    digest = verify_archive(archive)
    version = archive_version(archive)
    if expected_version and expected_version != version:
        raise UserError(f"{archive} is version {version}, not {expected_version}: rebuild it with VERSION=...")
    store = config.model_store.resolve()
    if archive.resolve().parent == store:
        return archive.name, version
    target = store / f"{config.model_name}-{version}.mar"
    if target.exists() and read_record(target).get("sha256") != digest:
        raise UserError(
            f"{target} already holds another version {version}: unregister it first, or use another VERSION"
        )
    shutil.copy2(archive, target)
    shutil.copy2(record_path(archive), record_path(target))
    return target.name, version


def read_history(config: ServerConfig) -> list[str]:
    path = config.model_store / HISTORY_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def push_history(config: ServerConfig, version: str) -> None:
    """Remember that `version` became the default."""
    history = [entry for entry in read_history(config) if entry != version] + [version]
    (config.model_store / HISTORY_FILE).write_text(json.dumps(history) + "\n")


def previous_default(config: ServerConfig, current: str, registered: set[str]) -> str:
    """The most recent earlier default that is still registered."""
    candidates = [version for version in read_history(config) if version != current and version in registered]
    if not candidates:
        raise UserError(f"no earlier default version to roll back to (current default: {current})")
    return candidates[-1]


def extract_model(archive: Path, destination: Path) -> Path:
    """The archive's model files (model.pt, model.json, index_to_name.json), laid out as a training run folder."""
    with zipfile.ZipFile(archive) as packed:
        for name in ("model.pt", "model.json", "index_to_name.json"):
            packed.extract(name, destination)
    return destination


def archive_settings(archive: Path) -> InferenceSettings:
    """The handler's inference settings packed in the archive's model-config.yaml."""
    with zipfile.ZipFile(archive) as packed:
        return InferenceSettings.from_config(yaml.safe_load(packed.read("model-config.yaml")).get("handler", {}))


def archive_labels(archive: Path) -> set[str]:
    """The class names the archive's model answers with."""
    with zipfile.ZipFile(archive) as packed:
        return set(json.loads(packed.read("index_to_name.json")).values())
