"""What training measures: one pass over a part of the data, and a run's progress across epochs (saved in its
checkpoint, read by the report)."""

from dataclasses import dataclass, field

import torch


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    predictions: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    labels: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    unreadable: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """What a run has done so far; saved in checkpoint.pt so that --resume continues where it stopped."""

    epoch: int = 0
    best_epoch: int = 0
    best_valid_accuracy: float = -1.0
    history: list[dict] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)

    def record(self, epoch: int, train: EpochResult, valid: EpochResult, seconds: float) -> bool:
        """Add an epoch to the history; True when its validation accuracy is the best so far."""
        self.epoch = epoch
        self.unreadable |= set(train.unreadable) | set(valid.unreadable)
        self.history.append(
            {
                "epoch": epoch,
                "train_loss": round(train.loss, 4),
                "train_accuracy": round(train.accuracy, 4),
                "valid_loss": round(valid.loss, 4),
                "valid_accuracy": round(valid.accuracy, 4),
                "seconds": round(seconds, 2),
            }
        )
        if valid.accuracy <= self.best_valid_accuracy:
            return False
        self.best_valid_accuracy, self.best_epoch = valid.accuracy, epoch
        return True
