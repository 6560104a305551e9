"""An archive's record (animals-1.0.mar.json beside animals-1.0.mar): what the project knows of an archive it built,
readable without torch, so that registering and rolling out stay quick to start."""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from animals.errors import UserError

MANIFEST = "MAR-INF/MANIFEST.json"  # torch-model-archiver's manifest inside an archive


@dataclass(frozen=True)
class Record:
    """What the project knows of an archive it built, kept beside it as ARCHIVE.json. An int8 archive also records
    the images that calibrated it and its top-1 agreement with the fp32 model on images not used for that. Every
    record since the benchmark's cold-start section says how long the build took (staging, quantizing, compiling
    ahead of time, checking and packing)."""

    version: str
    source: str
    content: str
    sha256: str
    precision: str
    calibration: str | None = None
    agreement: dict | None = None
    build_seconds: float | None = None

    @classmethod
    def read(cls, archive: Path) -> "Record | None":
        path = record_path(archive)
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise UserError(f"{path} is not an archive record written by `make archive`") from error

    def write(self, archive: Path) -> None:
        record_path(archive).write_text(json.dumps(asdict(self), indent=2) + "\n")


def record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
