"""What a run leaves behind: classification metrics, metrics.json, the confusion matrix and the training curves."""

import matplotlib

matplotlib.use("Agg")

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from animals.run import Split
from training.progress import EpochResult, Progress


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_metrics(matrix: torch.Tensor, class_names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each class (0 where a class was never predicted or present)."""
    true_positives = matrix.diag().double()
    predicted = matrix.sum(dim=0).double()
    actual = matrix.sum(dim=1).double()
    precision = torch.where(predicted > 0, true_positives / predicted.clamp_min(1), 0.0)
    recall = torch.where(actual > 0, true_positives / actual.clamp_min(1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), 0.0)
    return {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(actual[i]),
        }
        for i, name in enumerate(class_names)
    }


def plot_confusion_matrix(matrix: torch.Tensor, class_names: list[str], path: Path) -> None:
    size = max(5, len(class_names) * 0.6)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix.numpy(), cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (test set)")
    threshold = matrix.max().item() / 2
    for (row, column), count in zip(
        [(r, c) for r in range(len(class_names)) for c in range(len(class_names))],
        matrix.flatten().tolist(),
        strict=True,
    ):
        colour = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_training_curves(history: list[dict], path: Path) -> None:
    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for part in ("train", "valid"):
        loss_axes.plot(epochs, [entry[f"{part}_loss"] for entry in history], marker="o", label=part)
        accuracy_axes.plot(epochs, [entry[f"{part}_accuracy"] for entry in history], marker="o", label=part)
    loss_axes.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    accuracy_axes.set(title="Accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for axes in (loss_axes, accuracy_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def classification_summary(test: EpochResult, class_names: list[str]) -> dict:
    """Accuracy, loss, per-class metrics and the confusion matrix of an evaluation."""
    matrix = confusion_matrix(test.labels, test.predictions, len(class_names))
    return {
        "accuracy": round(test.accuracy, 4),
        "loss": round(test.loss, 4),
        "images": len(test.labels),
        "per_class": per_class_metrics(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }


def write_report(
    run: Path,
    split: Split,
    args: argparse.Namespace,
    progress: Progress,
    test: EpochResult,
    sources: dict[str, dict[str, int]],
) -> None:
    """metrics.json and the two plots, in the run folder; `sources` is training.data.photos_per_folder's count."""
    report = classification_summary(test, split.class_names)
    metrics = {
        "arguments": json.loads(json.dumps(vars(args), default=str)),
        "class_names": split.class_names,
        "split_sha256": split.sha256(),
        "split_sizes": {part: len(items) for part, items in split.parts.items()},
        "photos_per_data_dir": sources,
        "history": progress.history,
        "best_epoch": progress.best_epoch,
        "best_valid_accuracy": round(progress.best_valid_accuracy, 4),
        "test": report,
        "unreadable_files": sorted(progress.unreadable),
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion_matrix(torch.tensor(report["confusion_matrix"]), split.class_names, run / "confusion_matrix.png")
    plot_training_curves(progress.history, run / "training_curves.png")
