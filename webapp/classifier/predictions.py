"""Ask TorchServe for a photo's labels, and turn each way that can fail into words for the page."""

import time
from dataclasses import dataclass

import requests
from django.conf import settings

from animals.errors import UserError
from scripts.settings import read_keys


class PredictionFailed(Exception):
    """A prediction that could not be made: the HTTP status to answer with and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Prediction:
    labels: list[tuple[str, float]]
    milliseconds: float

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
            "top_probability": self.labels[0][1],
            "milliseconds": round(self.milliseconds, 1),
        }


def token() -> str:
    """The inference token: from the environment, else TorchServe's key file, read afresh so renewals apply."""
    if settings.TORCHSERVE_TOKEN:
        return settings.TORCHSERVE_TOKEN
    try:
        return read_keys(settings.CONFIG)["inference"]
    except UserError as error:
        raise PredictionFailed(
            503, "The classifier is not running (no TorchServe key file). Start it: make serve"
        ) from error


def classify(image: bytes) -> Prediction:
    url = f"{settings.TORCHSERVE_URL}/predictions/{settings.TORCHSERVE_MODEL}"
    started = time.perf_counter()
    try:
        response = requests.post(
            url, data=image, headers={"Authorization": f"Bearer {token()}"}, timeout=settings.TORCHSERVE_TIMEOUT_S
        )
    except requests.ConnectionError as error:
        raise PredictionFailed(503, "The classifier is not reachable right now. Is TorchServe running?") from error
    except requests.Timeout as error:
        raise PredictionFailed(504, "The classifier took too long to answer. Please try again.") from error
    milliseconds = (time.perf_counter() - started) * 1000
    if response.status_code == 200:
        return Prediction(list(response.json().items()), milliseconds)
    raise failure(response)


def failure(response: requests.Response) -> PredictionFailed:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if body.get("type") == "InvalidKeyException":
        return PredictionFailed(502, "The classifier refused this page's access token. Check TORCHSERVE_TOKEN.")
    if body.get("type") == "BadInput":
        return PredictionFailed(400, f"This file cannot be classified: {body.get('message')}.")
    if response.status_code == 413:
        return PredictionFailed(413, "This file is too large.")
    if response.status_code == 503:
        return PredictionFailed(503, "The model is not ready yet. Please try again in a moment.")
    return PredictionFailed(502, f"The classifier failed ({response.status_code}). Please try again.")
