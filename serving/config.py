"""Read config.properties and TorchServe's key file: the one place the project learns addresses and paths."""

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from animals.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every command takes --config (make: CONFIG=); TORCHSERVE_CONFIG changes the default for all of them.
DEFAULT_CONFIG = Path(os.environ.get("TORCHSERVE_CONFIG") or REPO_ROOT / "config.properties")
# The name TorchServe serves the model under (/predictions/animals): every archive this project builds registers as it.
MODEL_NAME = "animals"
MODEL_CONFIG = REPO_ROOT / "model-config.yaml"
SAMPLE_IMAGES = REPO_ROOT.parent / "shared" / "data" / "animals10-sample"
# Where the web app's corrections are exported as class folders: train/ for `make train`, check/ for rollout.
CORRECTIONS_EXPORT = REPO_ROOT / "data" / "corrections-export"


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
    def model_name(self) -> str:
        return MODEL_NAME

    def archive(self, version: str) -> Path:
        """Where the model store keeps a version's archive: model_store/animals-1.0.mar."""
        return self.model_store / f"{self.model_name}-{version}.mar"

    @property
    def key_file(self) -> Path:
        return self.home / "key_file.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def snapshot_dir(self) -> Path:
        """Where TorchServe writes its model snapshots."""
        return self.log_dir / "config"

    @property
    def effective_path(self) -> Path:
        """The config TorchServe is started with: this one plus the models to serve (see serving.server)."""
        return self.log_dir / "effective.properties"

    def named_files(self) -> dict[str, Path]:
        """The files and folders this config names, which TorchServe needs before it starts."""
        files = {"model_store": self.model_store, "metrics_config": self.home / self.properties["metrics_config"]}
        log_config = re.search(r"-Dlog4j\.configurationFile=(\S+)", self.properties.get("vmargs", ""))
        if log_config:
            files["vmargs log4j.configurationFile"] = self.home / log_config.group(1)
        return files

    def make(self, target: str) -> str:
        """The make command for `target` on this config, as a user would type it."""
        default = (REPO_ROOT / "config.properties").resolve()
        return f"make {target}" if self.path == default else f"make {target} CONFIG={self.path}"


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java .properties file of key=value lines (the subset TorchServe writes: one line per key, values with
    Java's backslash escapes, as in its snapshots' model_snapshot={\\n  "name"\\: ...})."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = JAVA_ESCAPE.sub(_unescape, value.strip())
    return properties


JAVA_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
JAVA_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(match: re.Match) -> str:
    escaped = match.group(1)
    if escaped.startswith("u") and len(escaped) == 5:
        return chr(int(escaped[1:], 16))
    return JAVA_ESCAPES.get(escaped, escaped)


def read_config(path: Path = DEFAULT_CONFIG) -> ServerConfig:
    path = Path(path).resolve()
    if not path.is_file():
        raise UserError(f"no TorchServe config at {path}; pass --config PATH")
    return ServerConfig(path=path, properties=read_properties(path))


# What a second server beside a config's own must move; everything else, hosts included, stays as the config says.
PORT_KEYS = (
    "inference_address",
    "management_address",
    "metrics_address",
    "grpc_inference_port",
    "grpc_management_port",
    "initial_worker_port",
)
COMPANIONS = ("metrics.yaml", "log4j2.xml")  # the files config.properties names beside it


def write_moved_config(
    home: Path, source: Path, free_port: Callable[[], int], with_store: bool = True, **overrides: str
) -> ServerConfig:
    """home/config.properties: a copy of the config at `source` with every port moved to one `free_port` gives, so
    that a second server runs beside the first (`home` may be the source's own folder: then only the ports move).
    Addresses that share a port in the source share their new one; the model store is created unless `with_store`
    is False."""
    home.mkdir(parents=True, exist_ok=True)
    shipped = read_properties(source)
    new_ports: dict[str, int] = {}

    def moved(key: str) -> str:
        value = shipped.get(key)
        if value is None:
            return str(free_port())
        port = re.search(r"\d+$", value).group()
        return re.sub(r"\d+$", str(new_ports.setdefault(port, free_port())), value)

    values = {key: moved(key) for key in PORT_KEYS} | overrides
    lines = []
    for line in source.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key}={values.pop(key)}" if key in values else line)
    lines += [f"{key}={value}" for key, value in values.items()]
    (home / "config.properties").write_text("\n".join(lines) + "\n")
    if home.resolve() != source.parent.resolve():
        for companion in COMPANIONS:
            shutil.copy2(source.parent / companion, home / companion)
    config = read_config(home / "config.properties")
    if with_store:
        config.model_store.mkdir(exist_ok=True)
    return config


def check_named_files(config: ServerConfig) -> None:
    """One line naming every file or folder the config names that is missing (before TorchServe starts)."""
    missing = [f"{key}={path}" for key, path in config.named_files().items() if not path.exists()]
    if missing:
        raise UserError(f"{config.path} names what does not exist: {', '.join(missing)}")


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
