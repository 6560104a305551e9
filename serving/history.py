"""The default versions in the order they became the default (model_store/default-history.json): what `rollback`
walks back through."""

import json

from animals.errors import UserError
from serving.config import ServerConfig

HISTORY_FILE = "default-history.json"


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
