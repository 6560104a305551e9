"""TorchServe handler for the animals classifier: decode, preprocess, batched inference, softmax top-k, and Grad-CAM
explanations for the requests that come through TorchServe's explanations API.

Each request in a batch gets its own answer: a bad image answers 4xx with a JSON message through
context.set_response_status, anything else that fails for one request (a bug, a library's error on its input)
answers 500 for that request alone, logged with its traceback, and the other requests in the batch are still served.
KServe v1 and v2 bodies (several base64 images each) are read per request too (animals.kserve). TorchServe marks each
explanation request with the header explain=True; a batch may mix them with predictions, so the handler reads it per
request.
"""

import json
import logging
from collections.abc import Callable
from functools import cached_property
from http import HTTPStatus
from pathlib import Path

import torch
from PIL import Image
from ts.torch_handler.base_handler import BaseHandler

from animals.acceleration import InferenceModel, effective_precision
from animals.batch import Batch, ExplanationRequest
from animals.errors import BadInput, RequestError
from animals.explanation import METHOD, GradCam
from animals.inference_settings import InferenceSettings
from animals.kserve import DEFAULT_MAX_IMAGES, KServeRequest, kserve_answer, kserve_request
from animals.memory import IdleTrim
from animals.payload import MODEL_VERSION_HEADER, image_in, named_label, request_body
from animals.preprocessing import DecodeLimits, decode_image, eval_transform, seen_region
from animals.serving_metrics import record_batch, record_explanations, stopwatch

DEFAULT_TOP_K = 5
EXPLAIN_HEADER = "explain"
LABEL_HEADER = "x-label"  # TorchServe passes headers to the handler, but not a URL's query parameters
JSON = "application/json"
logger = logging.getLogger(__name__)


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
            weights=context.manifest["model"].get("serializedFile", "model.pt"),  # int8 archives have none
            max_batch=int(config.get("batchSize", 1)),
        )
        self.labels = self.model.labels
        self.top_k = min(int(settings.get("top_k", DEFAULT_TOP_K)), len(self.labels))
        if self.top_k < 1:
            raise ValueError(f"handler.top_k in model-config.yaml must be at least 1, not {self.top_k}")
        self.limits = DecodeLimits.from_config(settings)
        self.max_images = int(settings.get("max_images_per_request", DEFAULT_MAX_IMAGES))
        self.transform = eval_transform()
        self.name, self.version = context.manifest["model"]["modelName"], context.manifest["model"]["modelVersion"]
        precision = effective_precision(self.model.settings.precision)
        self.dimensions = {"ModelVersion": self.version, "Precision": precision}
        self.idle_trim = IdleTrim()
        self.initialized = True

    def handle(self, data: list[dict], context) -> list:
        """BaseHandler.handle's steps, each timed, and the memory the batch freed given back once the worker idles."""
        with self.idle_trim.batch():
            self.context = context
            with stopwatch() as preprocessing:
                batch = self.preprocess(data)
            with stopwatch() as inferring:
                probabilities = self.inference(batch)
            with stopwatch() as explaining:
                explanations = self.run_explanations(batch, probabilities)
            answers = self.postprocess(probabilities, batch, explanations)
            top_labels = [
                self.labels[index]
                for index, position in zip(probabilities.argmax(dim=1).tolist(), batch.positions, strict=True)
                if position not in batch.errors
            ]
            record_batch(
                context.metrics, self.dimensions, batch, preprocessing.milliseconds, inferring.milliseconds, top_labels
            )
            if explanations:
                record_explanations(context.metrics, self.dimensions, len(explanations), explaining.milliseconds)
            return answers

    def preprocess(self, data: list[dict]) -> Batch:
        """Decode and transform every request's image (a KServe request may hold several) and note what each request
        asks for. A request that fails here is noted with its error; the others go on."""
        batch = Batch(size=len(data))
        for position, request in enumerate(data):
            try:
                images, explanation, kserve = self._read(request, position)
            except BadInput as error:
                batch.errors[position] = error
                continue
            except Exception:  # our bug or a library's, on this request's input: its own 500, logged
                logger.exception("request %d of the batch failed in preprocessing", position)
                batch.errors[position] = RequestError.internal()
                continue
            if explanation:
                batch.explain[position] = explanation
            if kserve:
                batch.kserve[position] = kserve
            batch.images.extend(images)
            batch.positions.extend([position] * len(images))
        return batch

    def _read(
        self, request: dict, position: int
    ) -> tuple[list[torch.Tensor], ExplanationRequest | None, KServeRequest | None]:
        """One request's model inputs, what it asks to have explained, and its KServe body if it is one."""
        body = request_body(request)
        kserve = kserve_request(body, self.max_images)
        explains = self._asks_for_explanation(position)
        if kserve and explains:
            raise BadInput('explanations take one image, raw, multipart or as {"data": base64}', reason="bad_json")
        explanation = None
        images = []
        for index, photo in enumerate(kserve.images if kserve else [image_in(body)]):
            image = self._decoded(photo, index if kserve else None)
            if explains:
                explanation = self._explanation_request(request, body, position, image.size)
            images.append(self.transform(image))  # the decoded image is freed here, before the next one
        return images, explanation, kserve

    def inference(self, batch: Batch) -> torch.Tensor:
        """The probabilities of every image; the rows of explanation requests are left for run_explanations to fill
        (BaseHandler.explain is a flag of TorchServe's, hence the name)."""
        probabilities = torch.zeros(len(batch.images), len(self.labels))
        rows = [row for row, position in enumerate(batch.positions) if position not in batch.explain]
        computed = self._isolated(batch, rows, lambda chosen: (self.model(batch.stacked(chosen)),))
        for row, (row_probabilities,) in computed.items():
            probabilities[row] = row_probabilities
        return probabilities

    def _isolated(
        self, batch: Batch, rows: list[int], compute: Callable[[list[int]], tuple[torch.Tensor, ...]]
    ) -> dict[int, tuple[torch.Tensor, ...]]:
        """`compute` over `rows` at once, each of its outputs holding one entry per row; if that raises, row by row,
        so that only a row that fails alone fails, answering 500 for its request (logged), and the rest of the batch
        is answered."""
        if not rows:
            return {}
        try:
            outputs = compute(rows)
            return {row: tuple(output[index] for output in outputs) for index, row in enumerate(rows)}
        except Exception:
            logger.exception("a batch of %d images failed; computing them one by one", len(rows))
        computed = {}
        for row in rows:
            try:
                computed[row] = tuple(output[0] for output in compute([row]))
            except Exception:
                logger.exception("request %d of the batch failed in inference", batch.positions[row])
                batch.errors[batch.positions[row]] = RequestError.internal()
        return computed

    def run_explanations(self, batch: Batch, probabilities: torch.Tensor) -> dict[int, tuple[int, torch.Tensor]]:
        """Grad-CAM for the rows of explanation requests: {row: (explained label, heatmap)}. Its forward pass gives
        those rows' probabilities too (written into `probabilities`), so an explanation costs one pass, not two."""
        rows = [row for row, position in enumerate(batch.positions) if position in batch.explain]
        asked = {row: batch.explain[batch.positions[row]].label for row in rows}
        computed = self._isolated(
            batch, rows, lambda chosen: self.grad_cam(batch.stacked(chosen), [asked[row] for row in chosen])
        )
        explanations = {}
        for row, (heatmap, explained) in computed.items():
            probabilities[row] = explained
            explanations[row] = (int(explained.argmax()) if asked[row] is None else asked[row], heatmap)
        return explanations

    def postprocess(
        self, probabilities: torch.Tensor, batch: Batch, explanations: dict[int, tuple[int, torch.Tensor]]
    ) -> list:
        """Each request's top-k labels, or its explanation; a KServe request's top-k per image, in its protocol's
        answer."""
        answers: list = [None] * batch.size
        per_image: dict[int, list[dict]] = {position: [] for position in batch.kserve}
        top = probabilities.topk(self.top_k, dim=1)
        for row, position in enumerate(batch.positions):
            if position in batch.errors:
                continue
            labels = {
                self.labels[index]: round(probability, 6)
                for probability, index in zip(top.values[row].tolist(), top.indices[row].tolist(), strict=True)
            }
            if position in batch.kserve:
                per_image[position].append(labels)
            elif row in explanations:
                answers[position] = self._explanation(labels, probabilities[row], *explanations[row], batch, position)
            else:
                answers[position] = labels
        for position, request in batch.kserve.items():
            if position not in batch.errors:
                answers[position] = kserve_answer(request, per_image[position], self.name, self.version)
        for position, error in batch.errors.items():
            answers[position] = self._error_answer(position, error)
        for position in range(batch.size):
            self.context.set_response_content_type(position, JSON)
            self.context.set_response_header(position, MODEL_VERSION_HEADER, self.version)
        return answers

    def _explanation(
        self, labels: dict, probabilities: torch.Tensor, label: int, heatmap: torch.Tensor, batch: Batch, position: int
    ) -> dict:
        """The answer to an explanation request (README: Explanations)."""
        top_label, top_probability = next(iter(labels.items()))
        return {
            "label": top_label,
            "probability": top_probability,
            "explained_label": self.labels[label],
            "explained_probability": round(float(probabilities[label]), 6),
            "method": METHOD,
            "computed_in": "bf16" if self.grad_cam.dtype == torch.bfloat16 else "fp32",
            "region": [round(side, 6) for side in batch.explain[position].region],
            "heatmap": [[round(value, 4) for value in line] for line in heatmap.tolist()],
        }

    @cached_property
    def grad_cam(self) -> GradCam:
        """Built at the first explanation, so that predictions pay nothing for explanations (compiled archives load
        their float weights here, int8 ones dequantize their int8 weights: their programs have no gradients)."""
        return GradCam(*self.model.eager())

    def _decoded(self, photo: bytes, index: int | None) -> Image.Image:
        """The decoded image; an error names the image by its `index` in the request when there may be several."""
        try:
            return decode_image(photo, self.limits)
        except BadInput as error:
            if index is None:
                raise
            raise BadInput(f"image {index}: {error}", error.reason, error.status) from error

    def _explanation_request(
        self, request: dict, body: object, position: int, size: tuple[int, int]
    ) -> ExplanationRequest:
        label = self._class_index(named_label(request, body) or self._label_header(position))
        return ExplanationRequest(label, seen_region(*size))

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

    def _error_answer(self, position: int, error: RequestError) -> str:
        self.context.set_response_status(error.status, HTTPStatus(error.status).phrase, position)
        kind = "BadInput" if isinstance(error, BadInput) else "InternalServerError"
        return json.dumps({"code": error.status, "type": kind, "reason": error.reason, "message": str(error)})


def _device(gpu_id: int | str | None) -> torch.device:
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")
