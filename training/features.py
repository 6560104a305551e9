"""Feature caching: with frozen features, the convolutional part's output for each image never changes, so it is
computed once and the classifier head trains on the cache (each later epoch costs only the head)."""

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from training.data import LoadedBatch, as_input


@torch.inference_mode()
def extract_features(
    model: nn.Module, batches: Iterable[LoadedBatch], device: torch.device, description: str
) -> tuple[TensorDataset, list[str]]:
    """The flattened avgpool output of every readable image, with its label; and the unreadable files."""
    model.eval()
    features, labels, unreadable = [], [], []
    for batch in tqdm(batches, desc=description, leave=False, unit="batch", disable=None):
        unreadable += batch.unreadable
        if len(batch.labels):
            pooled = model.avgpool(model.features(as_input(batch.images, device)))
            features.append(torch.flatten(pooled, 1).cpu())
            labels.append(batch.labels)
    return TensorDataset(torch.cat(features), torch.cat(labels)), unreadable


def _as_batch(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> LoadedBatch:
    features, labels = zip(*samples, strict=True)
    return LoadedBatch(torch.stack(features), torch.stack(labels), unreadable=[])


def cached_loader(
    dataset: TensorDataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=_as_batch)
