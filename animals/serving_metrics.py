"""The handler's own metrics, emitted through TorchServe's context.metrics and declared in metrics.yaml."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes

from animals.batch import Batch


def record_batch(
    metrics, model: dict[str, str], batch: Batch, preprocess_ms: float, inference_ms: float, top_labels: list[str]
) -> None:
    """Per batch: preprocess and inference time, batch size; per request: bad input by reason or top-1 label. Every
    metric carries the model version and its precision (`model`), so that a new version can be watched beside the
    old one."""
    dimensions = [Dimension(name, value) for name, value in model.items()]
    metrics.add_time("AnimalsPreprocessTime", preprocess_ms, None, "ms", list(dimensions))
    metrics.add_time("AnimalsInferenceTime", inference_ms, None, "ms", list(dimensions))
    metrics.add_metric("AnimalsBatchSize", batch.size, "count", None, list(dimensions), MetricTypes.GAUGE)
    for error in batch.errors.values():
        metrics.add_counter("AnimalsBadInputs", 1, None, [Dimension("Reason", error.reason), *dimensions])
    for label in top_labels:
        metrics.add_counter("AnimalsPredictedLabel", 1, None, [Dimension("Label", label), *dimensions])


class Stopwatch:
    milliseconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block: `with stopwatch() as elapsed: ...` then `elapsed.milliseconds`."""
    elapsed = Stopwatch()
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.milliseconds = (time.perf_counter() - started) * 1000


def record_explanations(metrics, model: dict[str, str], count: int, milliseconds: float) -> None:
    """Per batch with explanations: how many, and the time Grad-CAM took for them."""
    dimensions = [Dimension(name, value) for name, value in model.items()]
    metrics.add_counter("AnimalsExplanations", count, None, list(dimensions))
    metrics.add_time("AnimalsExplanationTime", milliseconds, None, "ms", list(dimensions))
