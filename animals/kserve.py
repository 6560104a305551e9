"""KServe's request bodies, read per request: protocol v1 ({"instances": [...]}) and the Open Inference Protocol v2
({"inputs": [{"datatype": "BYTES", "data": [...]}]}), each image base64-encoded.

TorchServe's own KServe envelopes read only the first request of each batch TorchServe hands the handler, so the
handler reads these bodies itself, request by request, and answers each in its protocol's shape.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from http import HTTPStatus

from animals.errors import BadInput

V1, V2 = "v1", "v2"
DEFAULT_MAX_IMAGES = 16  # model-config.yaml's handler.max_images_per_request: twice batchSize
OUTPUT_NAME = "predictions"


@dataclass(frozen=True)
class KServeRequest:
    """One KServe request: its protocol, its v2 id (echoed in the answer), and its images' bytes."""

    protocol: str
    images: list[bytes]
    request_id: str | None = None


def kserve_request(body: object, max_images: int = DEFAULT_MAX_IMAGES) -> KServeRequest | None:
    """The KServe request a body (animals.payload.request_body) holds, or None for a plain body. Raises BadInput
    naming the bad instance, or with 413 when it holds more than `max_images` images."""
    if not isinstance(body, dict):
        return None
    if "instances" in body:
        return KServeRequest(V1, _images(body["instances"], "instance", _v1_field, max_images))
    if "inputs" in body:
        return KServeRequest(V2, _v2_images(body["inputs"], max_images), body.get("id"))
    return None


def kserve_answer(request: KServeRequest, answers: list[dict], model_name: str, model_version: str) -> dict:
    """The answer in the request's protocol: one top-k object per image, in order."""
    if request.protocol == V1:
        return {"predictions": answers}
    output = {"name": OUTPUT_NAME, "shape": [len(answers)], "datatype": "BYTES"}
    answer = {"model_name": model_name, "model_version": model_version}
    if request.request_id is not None:
        answer["id"] = request.request_id
    return answer | {"outputs": [output | {"data": [json.dumps(labels) for labels in answers]}]}


def _v1_field(instance: object) -> object:
    """An instance is the base64 string itself, or {"data": ...} or {"b64": ...} holding it."""
    if isinstance(instance, dict):
        return instance.get("data", instance.get("b64"))
    return instance


def _v2_images(inputs: object, max_images: int) -> list[bytes]:
    if not isinstance(inputs, list) or not inputs:
        raise BadInput('"inputs" must be a list holding one BYTES input of base64 images', reason="bad_json")
    tensor = inputs[0]
    if not isinstance(tensor, dict) or tensor.get("datatype") != "BYTES":
        raise BadInput('the input must have "datatype": "BYTES" and base64 images as "data"', reason="bad_json")
    return _images(tensor.get("data"), "element", lambda element: element, max_images)


def _images(items: object, name: str, field, max_images: int) -> list[bytes]:
    if not isinstance(items, list) or not items:
        raise BadInput(f"the request needs a non-empty list of {name}s, each a base64 image", reason="bad_json")
    if len(items) > max_images:
        raise BadInput(
            f"the request holds {len(items)} images, the limit is {max_images}: send them in several requests",
            reason="too_many_images",
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    return [_decoded(field(item), f"{name} {index}") for index, item in enumerate(items)]


def _decoded(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadInput(f"{where}: expected a base64-encoded image", reason="bad_json")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadInput(f"{where}: not valid base64", reason="bad_base64") from error
