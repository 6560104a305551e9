"""Find the image bytes in one TorchServe request (a raw body, a multipart file, or JSON {"data": base64}), and the
label an explanation request names in its body (a multipart field or a JSON field "label")."""

import base64
import binascii
import json

from animals.errors import BadInput

FIELD_NAMES = ("data", "body", "file", "image")
LABEL_FIELD = "label"


def request_body(request: dict) -> object:
    """A request row's body as TorchServe's worker hands it over: bytes, text, or JSON already parsed; or None."""
    value = next((request[name] for name in FIELD_NAMES if name in request), None)
    if value is None:
        value = next((value for name, value in request.items() if name != LABEL_FIELD), None)
    return value


def image_bytes(request: dict) -> bytes:
    """Return the image bytes of a request row as TorchServe's worker hands it to the handler."""
    value = request_body(request)
    if value is None:
        return b""  # nothing sent: decoding says the body is empty
    if isinstance(value, (bytes, bytearray)) and value[:1] == b"{":
        value = _parse_json(bytes(value))
    if isinstance(value, dict):
        return _base64_field(value)
    if isinstance(value, str):
        raise BadInput("the body is text, not an image; send the image bytes", reason="not_image")
    if not isinstance(value, (bytes, bytearray)):
        raise BadInput("the body is not an image; send the image bytes", reason="not_image")
    return bytes(value)


def named_label(request: dict) -> str | None:
    """The label a request names, or None. Bodies that are not JSON name none."""
    value = request.get(LABEL_FIELD)
    if value is None:
        body = request_body(request)
        if isinstance(body, (bytes, bytearray)) and body[:1] == b"{":
            body = _parse_json(bytes(body))
        value = body.get(LABEL_FIELD) if isinstance(body, dict) else None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if value is not None and not isinstance(value, str):
        raise BadInput('"label" must be a string naming one of the classes', reason="unknown_label")
    return value


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInput("the body starts like JSON but is not valid JSON", reason="bad_json") from error


def _base64_field(document: dict) -> bytes:
    encoded = document.get("data")
    if not isinstance(encoded, str) or not encoded:
        raise BadInput('JSON requests need a "data" field holding the base64-encoded image', reason="bad_json")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadInput('the "data" field is not valid base64', reason="bad_base64") from error
