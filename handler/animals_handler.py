"""TorchServe handler for the animals classifier: decode, preprocess, batched inference, softmax top-k.

Each request in a batch gets its own answer: a bad image answers 400 with a JSON message through
context.set_response_status, and the other requests in the batch are still served.
"""

import json
from http import HTTPStatus
from pathlib import Path

import torch
from ts.torch_handler.base_handler import BaseHandler

from animals.acceleration import InferenceSettings, as_input, prepare
from animals.batch import Batch
from animals.errors import BadInput
from animals.labels import read_index_to_name
from animals.model import ModelSpec, load_model
from animals.payload import image_bytes
from animals.preprocessing import MAX_PIXELS, decode_image, eval_transform
from animals.serving_metrics import record_batch, stopwatch

DEFAULT_TOP_K = 5


class AnimalsHandler(BaseHandler):
    """Classifies animal photos into the classes of index_to_name.json."""

    def initialize(self, context) -> None:
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        settings = (context.model_yaml_config or {}).get("handler", {})
        self.device = _device(properties.get("gpu_id"))
        spec = ModelSpec.load(model_dir / "model.json")
        model = load_model(spec, model_dir / context.manifest["model"]["serializedFile"], self.device)
        self.acceleration = InferenceSettings.from_config(settings)
        self.model, self.dtype = prepare(model, self.acceleration, self.device)
        self.labels = read_index_to_name(model_dir / "index_to_name.json")
        self.top_k = min(int(settings.get("top_k", DEFAULT_TOP_K)), len(self.labels))
        if self.top_k < 1:
            raise ValueError(f"handler.top_k in model-config.yaml must be at least 1, not {self.top_k}")
        self.max_pixels = int(settings.get("max_image_pixels", MAX_PIXELS))
        self.transform = eval_transform()
        self.version = context.manifest["model"]["modelVersion"]
        self.initialized = True

    def handle(self, data: list[dict], context) -> list:
        self.context = context
        with stopwatch() as preprocessing:
            batch = self.preprocess(data)
        with stopwatch() as inferring:
            probabilities = self.inference(batch)
        answers = self.postprocess(probabilities, batch)
        top_labels = [next(iter(answers[position])) for position in batch.positions]
        record_batch(
            context.metrics, self.version, batch, preprocessing.milliseconds, inferring.milliseconds, top_labels
        )
        return answers

    def preprocess(self, data: list[dict]) -> Batch:
        batch = Batch(size=len(data))
        for position, request in enumerate(data):
            try:
                image = decode_image(image_bytes(request), self.max_pixels)
            except BadInput as error:
                batch.errors[position] = error
                continue
            batch.images.append(self.transform(image))
            batch.positions.append(position)
        return batch

    def inference(self, batch: Batch) -> torch.Tensor:
        if not batch.images:
            return torch.empty(0, len(self.labels))
        with torch.inference_mode():
            images = as_input(torch.stack(batch.images), self.dtype, self.acceleration, self.device)
            return self.model(images).float().softmax(dim=1).cpu()

    def postprocess(self, probabilities: torch.Tensor, batch: Batch) -> list:
        answers: list = [None] * batch.size
        top = probabilities.topk(self.top_k, dim=1)
        for row, position in enumerate(batch.positions):
            answers[position] = {
                self.labels[index]: round(probability, 6)
                for probability, index in zip(top.values[row].tolist(), top.indices[row].tolist(), strict=True)
            }
        for position, error in batch.errors.items():
            answers[position] = self._error_answer(position, error)
        return answers

    def _error_answer(self, position: int, error: BadInput) -> str:
        self.context.set_response_status(error.status, HTTPStatus(error.status).phrase, position)
        self.context.set_response_content_type(position, "application/json")
        return json.dumps({"code": error.status, "type": "BadInput", "reason": error.reason, "message": str(error)})


def _device(gpu_id: int | str | None) -> torch.device:
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")
