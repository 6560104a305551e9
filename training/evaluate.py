"""Evaluate a training run on its test split again: the same numbers as its metrics.json for the same data."""

import argparse
import json
from pathlib import Path

import torch

from animals import cli
from animals.errors import UserError
from animals.preprocessing import eval_transform
from animals.run import Split, check_run, load_run_model
from training.data import ImageDataset, dataset_root, skip_unreadable
from training.progress import EpochResult
from training.report import classification_summary
from training.train import evaluate


def evaluate_run(run: Path, data_dir: Path | None = None, batch_size: int = 32) -> tuple[dict, EpochResult]:
    """Test-set metrics of the run's model on the test part of its split.json (under `data_dir` if given)."""
    run = check_run(run)
    if not (run / "split.json").is_file():
        raise UserError(f"{run} has no split.json: it was not written by training.train")
    split = Split.load(run / "split.json", dataset_root(data_dir) if data_dir else None)
    if not split.root.is_dir():
        raise UserError(f"the run's data directory {split.root} does not exist; pass --data-dir PATH")
    model, class_names = load_run_model(run)
    model.to(memory_format=torch.channels_last)  # as training evaluated it (training.data.as_input)
    dataset = ImageDataset(split.root, split.parts["test"], eval_transform())
    batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=skip_unreadable)
    result = evaluate(model, batches, torch.device("cpu"), "test")
    return classification_summary(result, class_names), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="training run folder (artifacts/RUN)")
    parser.add_argument("--data-dir", type=Path, help="where the data set is now (default: where it was trained)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    print(f"Evaluating {args.run} on its test split")
    summary, _ = evaluate_run(args.run, args.data_dir)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"test accuracy {summary['accuracy']:.2%}  loss {summary['loss']:.4f}  ({summary['images']} images)")
    print(f"  {'class':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for name, scores in summary["per_class"].items():
        precision, recall, f1, support = (scores[key] for key in ("precision", "recall", "f1", "support"))
        print(f"  {name:<12} {precision:9.3f} {recall:7.3f} {f1:6.3f} {support:8d}")
    return 0


if __name__ == "__main__":
    cli.run(main)
