"""A finished training run folder: the files serving needs from it, loading its model, and finding the newest run.

Training writes run folders, the archive builder packs them and offline prediction reads them: all through here.
"""

import os
from pathlib import Path

import torch

from animals.errors import UserError
from animals.labels import read_index_to_name
from animals.model import ModelSpec, load_model

RUN_FILES = ("model.pt", "model.json", "index_to_name.json")
# Runs live under the repository's artifacts/, wherever a command is started from (ANIMALS_ARTIFACTS: elsewhere).
ARTIFACTS_DIR = Path(os.environ.get("ANIMALS_ARTIFACTS") or Path(__file__).resolve().parent.parent / "artifacts")


def check_run(run: Path) -> Path:
    """Return the run folder, or say which of its files are missing."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run folder {run} does not exist")
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
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
