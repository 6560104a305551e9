"""Find the image bytes in one TorchServe request (a raw body, a multipart file, or JSON {"data": base64}), and the
label an explanation request names in its body (a multipart field or a JSON field "label"). Every answer names the
model version that gave it in a header."""

import base64
import binascii
import json

from animals.errors import BadInput

FIELD_NAMES = ("data", "body", "file", "image")
LABEL_FIELD = "label"
MODEL_VERSION_HEADER = "X-Model-Version"
UTF8_BOM = b"\xef\xbb\xbf"
JSON_WHITESPACE = b" \t\r\n"


def request_body(request: dict) -> object:
    """A request row's body as TorchServe's worker hands it over (bytes, text, or JSON already parsed; or None), with
    JSON sent as bytes parsed here, once, for every reader of the body."""
    value = next((request[name] for name in FIELD_NAMES if name in request), None)
    if value is None:
        value = next((value for name, value in request.items() if name != LABEL_FIELD), None)
    if isinstance(value, (bytes, bytearray)):
        text = _json_text(bytes(value))
        if text is not None:
            value = _parse_json(text)
    return value


def _json_text(body: bytes) -> bytes | None:
    """The body without a UTF-8 byte-order mark and leading whitespace, when what follows opens a JSON object; None
    for anything else (image formats start with their own signature, never with these bytes)."""
    text = body.removeprefix(UTF8_BOM).lstrip(JSON_WHITESPACE)
    return text if text[:1] == b"{" else None


def image_bytes(request: dict) -> bytes:
    """Return the image bytes of a request row as TorchServe's worker hands it to the handler."""
    return image_in(request_body(request))


def image_in(body: object) -> bytes:
    """The image bytes of a request body (see request_body)."""
    if body is None:
        return b""  # nothing sent: decoding says the body is empty
    if isinstance(body, dict):
        return _base64_field(body)
    if isinstance(body, str):
        raise BadInput("the body is text, not an image; send the image bytes", reason="not_image")
    if not isinstance(body, (bytes, bytearray)):
        raise BadInput("the body is not an image; send the image bytes", reason="not_image")
    return bytes(body)


def named_label(request: dict, body: object = None) -> str | None:
    """The label a request names, or None: a field of its own, or "label" in a JSON body (`body`, if already read)."""
    value = request.get(LABEL_FIELD)
    if value is None:
        body = request_body(request) if body is None else body
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
    except RecursionError as error:  # the parser's depth limit (about 1,000 levels): no request nests that deep
        raise BadInput("the JSON body is nested too deeply", reason="bad_json") from error


def _base64_field(document: dict) -> bytes:
    encoded = document.get("data")
    if not isinstance(encoded, str) or not encoded:
        raise BadInput('JSON requests need a "data" field holding the base64-encoded image', reason="bad_json")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadInput('the "data" field is not valid base64', reason="bad_base64") from error
