"""Read config.properties and TorchServe's key file: the one place the project learns addresses and paths."""

import json
from dataclasses import dataclass
from pathlib import Path

from animals.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.properties"
MODEL_CONFIG = REPO_ROOT / "model-config.yaml"
SAMPLE_IMAGES = REPO_ROOT.parent / "shared" / "data" / "animals10-sample"


@dataclass(frozen=True)
class ServerConfig:
    """A TorchServe config file; TorchServe runs in the file's folder (its key file and logs/ go there)."""

    path: Path
    properties: dict[str, str]

    @property
    def home(self) -> Path:
        return self.path.parent

    @property
    def inference_url(self) -> str:
        return self.properties["inference_address"]

    @property
    def management_url(self) -> str:
        return self.properties["management_address"]

    @property
    def metrics_url(self) -> str:
        return self.properties["metrics_address"]

    @property
    def model_store(self) -> Path:
        return self.home / self.properties["model_store"]

    @property
    def archive_name(self) -> str:
        return self.properties["load_models"].split(",")[0].strip()

    @property
    def model_name(self) -> str:
        return Path(self.archive_name).stem

    @property
    def archive(self) -> Path:
        return self.model_store / self.archive_name

    @property
    def key_file(self) -> Path:
        return self.home / "key_file.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java .properties file of key=value lines (the subset TorchServe's configs use)."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def read_config(path: Path = DEFAULT_CONFIG) -> ServerConfig:
    path = Path(path).resolve()
    if not path.is_file():
        raise UserError(f"no TorchServe config at {path}; pass --config PATH")
    return ServerConfig(path=path, properties=read_properties(path))


def read_keys(config: ServerConfig) -> dict[str, str]:
    """The current keys from TorchServe's key file: {"inference": ..., "management": ..., "API": ...}."""
    try:
        document = json.loads(config.key_file.read_text())
        return {kind: entry["key"] for kind, entry in document.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{config.key_file} is not TorchServe's key file (or is being rewritten): try again") from error
    except FileNotFoundError as error:
        raise UserError(
            f"no key file at {config.key_file}: is TorchServe running? Start it with `make serve`"
        ) from error
