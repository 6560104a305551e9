"""TorchServe handler for the animals classifier: decode, preprocess, batched inference, softmax top-k, and Grad-CAM
explanations for the requests that come through TorchServe's explanations API.

Each request in a batch gets its own answer: a bad image answers 400 with a JSON message through
context.set_response_status, and the other requests in the batch are still served. TorchServe marks each explanation
request with the header explain=True; a batch may mix them with predictions, so the handler reads it per request.
"""

import json
from functools import cached_property
from http import HTTPStatus
from pathlib import Path

import torch
from ts.torch_handler.base_handler import BaseHandler

from animals.acceleration import InferenceModel, InferenceSettings, effective_precision
from animals.batch import Batch, ExplanationRequest
from animals.errors import BadInput
from animals.explanation import METHOD, GradCam
from animals.payload import image_bytes, named_label
from animals.preprocessing import MAX_PIXELS, decode_image, eval_transform, seen_region
from animals.serving_metrics import record_batch, record_explanations, stopwatch

DEFAULT_TOP_K = 5
EXPLAIN_HEADER = "explain"
LABEL_HEADER = "x-label"  # TorchServe passes headers to the handler, but not a URL's query parameters


class AnimalsHandler(BaseHandler):
    """Classifies animal photos into the classes of index_to_name.json."""

    def initialize(self, context) -> None:
        """Load the model as the archive's model-config.yaml says; compiled models are compiled here, for every batch
        size up to batchSize, so that TorchServe's startupTimeout covers it and no request waits for it."""
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        config = context.model_yaml_config or {}
        settings = config.get("handler", {})
        self.model = InferenceModel(
            model_dir,
            InferenceSettings.from_config(settings),
            _device(properties.get("gpu_id")),
            weights=context.manifest["model"]["serializedFile"],
            max_batch=int(config.get("batchSize", 1)),
        )
        self.labels = self.model.labels
        self.top_k = min(int(settings.get("top_k", DEFAULT_TOP_K)), len(self.labels))
        if self.top_k < 1:
            raise ValueError(f"handler.top_k in model-config.yaml must be at least 1, not {self.top_k}")
        self.max_pixels = int(settings.get("max_image_pixels", MAX_PIXELS))
        self.transform = eval_transform()
        version = context.manifest["model"]["modelVersion"]
        self.dimensions = {"ModelVersion": version, "Precision": effective_precision(self.model.settings.precision)}
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
            context.metrics, self.dimensions, batch, preprocessing.milliseconds, inferring.milliseconds, top_labels
        )
        if batch.explain:
            with stopwatch() as explaining:
                self.add_explanations(batch, probabilities, answers)
            record_explanations(context.metrics, self.dimensions, len(batch.explain), explaining.milliseconds)
        return answers

    def preprocess(self, data: list[dict]) -> Batch:
        batch = Batch(size=len(data))
        for position, request in enumerate(data):
            try:
                image = decode_image(image_bytes(request), self.max_pixels)
                if self._asks_for_explanation(position):
                    label = self._class_index(named_label(request) or self._label_header(position))
                    batch.explain[position] = ExplanationRequest(label, seen_region(*image.size))
            except BadInput as error:
                batch.errors[position] = error
                continue
            batch.images.append(self.transform(image))
            batch.positions.append(position)
        return batch

    def inference(self, batch: Batch) -> torch.Tensor:
        if not batch.images:
            return torch.empty(0, len(self.labels))
        return self.model(torch.stack(batch.images))

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

    def add_explanations(self, batch: Batch, probabilities: torch.Tensor, answers: list) -> None:
        """Replace the answers of explanation requests by their explanation: the top-1 label and its probability as
        predicted, and the Grad-CAM map of the label asked for (the top-1 when none was named)."""
        rows = [row for row, position in enumerate(batch.positions) if position in batch.explain]
        asked = [batch.explain[batch.positions[row]].label for row in rows]
        labels = [
            int(probabilities[row].argmax()) if label is None else label for row, label in zip(rows, asked, strict=True)
        ]
        maps = self.grad_cam(torch.stack([batch.images[row] for row in rows]), labels)
        for row, label, heatmap in zip(rows, labels, maps, strict=True):
            position = batch.positions[row]
            top_label, top_probability = next(iter(answers[position].items()))
            answers[position] = {
                "label": top_label,
                "probability": top_probability,
                "explained_label": self.labels[label],
                "explained_probability": round(float(probabilities[row, label]), 6),
                "method": METHOD,
                "computed_in": "bf16" if self.grad_cam.dtype == torch.bfloat16 else "fp32",
                "region": [round(side, 6) for side in batch.explain[position].region],
                "heatmap": [[round(value, 4) for value in line] for line in heatmap.tolist()],
            }

    @cached_property
    def grad_cam(self) -> GradCam:
        """Built at the first explanation, so that predictions pay nothing for explanations (int8 and compiled
        archives load their eager weights here: their programs have no gradients)."""
        return GradCam(*self.model.eager())

    def _asks_for_explanation(self, position: int) -> bool:
        return self.context.get_request_header(position, EXPLAIN_HEADER) == "True"

    def _label_header(self, position: int) -> str | None:
        headers = self.context.get_all_request_header(position) or {}
        return next((value for name, value in headers.items() if name.lower() == LABEL_HEADER), None)

    def _class_index(self, label: str | None) -> int | None:
        if label is None:
            return None
        if label not in self.labels:
            choices = ", ".join(self.labels)
            raise BadInput(f"label {label!r} is not one of the classes: {choices}", reason="unknown_label")
        return self.labels.index(label)

    def _error_answer(self, position: int, error: BadInput) -> str:
        self.context.set_response_status(error.status, HTTPStatus(error.status).phrase, position)
        self.context.set_response_content_type(position, "application/json")
        return json.dumps({"code": error.status, "type": "BadInput", "reason": error.reason, "message": str(error)})


def _device(gpu_id: int | str | None) -> torch.device:
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")
