"""TorchServe's model snapshots (logs/config/*.cfg): which versions were registered when it last ran, with which
settings, and which was the default.

TorchServe restores a snapshot only when it starts without a config file, and `make serve` always passes one, so
serving.server carries the last snapshot's models into the config it starts with. TorchServe writes a snapshot at
every change and never deletes one: all but the newest few are pruned at each start.
"""

import json
import zipfile
from pathlib import Path

import yaml

from serving.config import ServerConfig, read_properties

PROPERTY = "model_snapshot="
KEPT = 5
# A new version's settings in the snapshot, from the archive's packed model-config.yaml.
SETTINGS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout", "startupTimeout")


def snapshot_files(config: ServerConfig) -> list[Path]:
    """Oldest first: TorchServe names them by time (20261130091441123-startup.cfg)."""
    return sorted(config.snapshot_dir.glob("*.cfg")) if config.snapshot_dir.is_dir() else []


def last_snapshot(config: ServerConfig) -> dict | None:
    """The newest snapshot's models ({"modelCount": .., "models": {name: {version: settings}}}), or None."""
    for path in reversed(snapshot_files(config)):
        models = read_properties(path).get(PROPERTY.removesuffix("="))
        if models:
            return json.loads(models)
    return None


def versions(snapshot: dict | None, model: str) -> dict[str, dict]:
    """The model's versions in a snapshot and their settings (defaultVersion, marName, workers, batching)."""
    return dict((snapshot or {}).get("models", {}).get(model, {}))


def default_version(snapshot: dict | None, model: str) -> str | None:
    return next((version for version, entry in versions(snapshot, model).items() if entry["defaultVersion"]), None)


def models_to_start(
    snapshot: dict | None, model: str, store: Path, version: str | None = None, entry: dict | None = None
) -> tuple[dict, list[str]]:
    """The models TorchServe starts with: the snapshot's versions whose archive is still in the store, and, given,
    `version` (with `entry` as its settings unless the snapshot has it) made the default. Also the versions left out
    because their archive is gone (TorchServe would stop restoring at the first of them)."""
    kept = {
        label: settings
        for label, settings in versions(snapshot, model).items()
        if (store / settings["marName"]).is_file()
    }
    gone = sorted(set(versions(snapshot, model)) - set(kept))
    if version is not None:
        kept = {label: settings | {"defaultVersion": False} for label, settings in kept.items()}
        kept[version] = kept.get(version, entry or {}) | {"defaultVersion": True}
    return {"name": "startup.cfg", "modelCount": len(kept), "models": {model: kept}}, gone


def prune(config: ServerConfig, keep: int = KEPT) -> None:
    """Delete all but the newest `keep` snapshots."""
    for path in snapshot_files(config)[:-keep]:
        path.unlink()


def entry_for(archive: Path) -> dict:
    """A new version's settings in TorchServe's snapshot format, from the archive's packed model-config.yaml."""
    with zipfile.ZipFile(archive) as packed:
        settings = yaml.safe_load(packed.read("model-config.yaml"))
    return {"marName": archive.name} | {key: settings[key] for key in SETTINGS if key in settings}
