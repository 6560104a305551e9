"""A training run folder: the files serving needs from it, its split, loading its model, and finding the newest run.

Training writes run folders, the archive builder packs them and offline prediction reads them: all through here.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from animals.errors import UserError
from animals.labels import read_index_to_name
from animals.model import ModelSpec, load_model

DESCRIPTION_FILES = ("model.json", "index_to_name.json")  # what builds the network and names its outputs
# Runs live under the repository's artifacts/, wherever a command is started from (ANIMALS_ARTIFACTS: elsewhere).
ARTIFACTS_DIR = Path(os.environ.get("ANIMALS_ARTIFACTS") or Path(__file__).resolve().parent.parent / "artifacts")


Item = tuple[str, int]  # (path relative to the data root, class index)


@dataclass(frozen=True)
class Split:
    """Which file belongs to which part: the manifest written as split.json beside each run."""

    root: Path
    class_names: list[str]
    parts: dict[str, list[Item]]

    def to_json(self) -> str:
        document = {"root": str(self.root), "class_names": self.class_names, "parts": self.parts}
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path, root: Path | None = None) -> "Split":
        document = json.loads(Path(path).read_text())
        parts = {name: [(rel, label) for rel, label in items] for name, items in document["parts"].items()}
        return cls(Path(root or document["root"]), document["class_names"], parts)


def check_run(run: Path, weights: str = "model.pt") -> Path:
    """Return the run folder (or an unpacked archive), or say which of its files are missing; `weights` is the file
    that holds the model (an int8 archive's is its program)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run folder {run} does not exist")
    missing = [name for name in (weights, *DESCRIPTION_FILES) if not (run / name).is_file()]
    if missing:
        raise UserError(f"{run} is not a finished training run: it lacks {', '.join(missing)}")
    return run


def load_run_model(run: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, list[str]]:
    """The run's best model, ready for inference, and its class names in output order."""
    run = check_run(run)
    model = load_model(ModelSpec.load(run / "model.json"), run / "model.pt", device)
    return model, read_index_to_name(run / "index_to_name.json")


def newest_run(artifacts: Path = ARTIFACTS_DIR) -> Path | None:
    """The most recently trained run under artifacts/, if any."""
    runs = [weights.parent for weights in artifacts.glob("*/model.pt") if (weights.parent / "model.json").is_file()]
    return max(runs, key=lambda run: (run / "model.pt").stat().st_mtime, default=None)
