"""Ask TorchServe for a photo's labels or explanation through the project's client, and put each way that can fail
into words."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from animals.errors import UserError
from serving import client

Answer = TypeVar("Answer")


class Refused(Exception):
    """A request the page cannot serve: the HTTP status to answer with and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PredictionFailed(Refused):
    """TorchServe gave no answer for the photo."""


@dataclass
class Prediction:
    labels: list[tuple[str, float]]
    milliseconds: float
    version: str

    @property
    def top_probability(self) -> float:
        return self.labels[0][1]

    @property
    def top_label(self) -> str:
        return self.labels[0][0]

    @property
    def top_percent(self) -> int:
        return round(self.labels[0][1] * 100)

    def as_json(self) -> dict:
        return {
            "labels": dict(self.labels),
            "top_label": self.top_label,
            "top_probability": self.top_probability,
            "model_version": self.version,
            "milliseconds": round(self.milliseconds, 1),
        }


def torchserve() -> client.RestClient:
    """TorchServe as the settings name it; its key file is read on every request, so renewed keys apply."""
    return client.RestClient(
        settings.CONFIG,
        token=settings.TORCHSERVE_TOKEN,
        inference_url=settings.TORCHSERVE_URL,
        timeout=settings.TORCHSERVE_TIMEOUT_S,
    )


def classify(image: bytes) -> Prediction:
    started = time.perf_counter()
    labels, version = ask(lambda torchserve: torchserve.predict_and_version(image))
    return Prediction(list(labels.items()), (time.perf_counter() - started) * 1000, version)


def explain(image: bytes, label: str | None = None) -> dict:
    """TorchServe's Grad-CAM explanation of the top-1 label or of `label`, as the README's Explanations shows it."""
    return ask(lambda torchserve: torchserve.explain(image, label=label))


def ask(call: Callable[[client.RestClient], Answer]) -> Answer:
    """The answer of one call to TorchServe, or the PredictionFailed that says what went wrong."""
    try:
        return call(torchserve())
    except client.TorchServeError as error:
        raise failure(error) from error
    except UserError as error:  # no key file: TorchServe has not been started
        raise PredictionFailed(
            503, "The classifier is not running (no TorchServe key file). Start it: make serve"
        ) from error


# What the page answers for each kind of TorchServe failure; any other is a 502.
FAILURES = {
    "too_large": (413, "This file is too large."),
    "unreachable": (503, "The classifier is not reachable right now. Is TorchServe running?"),
    "unavailable": (503, "The model is not ready yet. Please try again in a moment."),
    "timeout": (504, "The classifier took too long to answer. Please try again."),
    "token_refused": (502, "The classifier refused this page's access token. Check TORCHSERVE_TOKEN."),
}


def failure(error: client.TorchServeError) -> PredictionFailed:
    """What the page says for each way TorchServe can fail."""
    if error.kind in ("bad_input", "client_error"):  # TorchServe's 4xx for this photo stays the page's 4xx
        status = error.status if error.status and 400 <= error.status < 500 else 400
        return PredictionFailed(status, f"This file cannot be classified: {error}.")
    status, message = FAILURES.get(error.kind, (502, f"The classifier failed ({error.status or error.kind})."))
    return PredictionFailed(status, message)
