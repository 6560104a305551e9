"""Finding the image in a request row, in each shape TorchServe's worker hands rows to the handler."""

import base64

import pytest

from animals.errors import BadInput
from animals.payload import image_bytes
from animals.preprocessing import decode_image

IMAGE = b"\xff\xd8\xff\xe0 pretend jpeg"


@pytest.mark.parametrize(
    "row",
    [
        {"body": bytearray(IMAGE)},
        {"data": IMAGE},
        {"file": IMAGE},
        {"upload": IMAGE},
        {"body": {"data": base64.b64encode(IMAGE).decode()}},
        {"body": b'{"data": "' + base64.b64encode(IMAGE) + b'"}'},
    ],
    ids=["raw", "multipart-data", "multipart-file", "multipart-other-field", "json", "json-as-bytes"],
)
def test_image_bytes_found_in_every_request_shape(row):
    assert image_bytes(row) == IMAGE


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"body": bytearray()}, "empty"),
        ({}, "empty"),
        ({"body": "some text"}, "not_image"),
        ({"body": {"image": "abc"}}, "bad_json"),
        ({"body": {"data": 42}}, "bad_json"),
        ({"body": {"data": "not base64!"}}, "bad_base64"),
        ({"body": b"{not json"}, "bad_json"),
        ({"body": [1, 2, 3]}, "not_image"),
    ],
)
def test_unusable_rows_raise_bad_input(row, reason):
    """As the handler reads a row: find the image, then decode it (which is where an empty body is refused)."""
    with pytest.raises(BadInput) as raised:
        decode_image(image_bytes(row))
    assert raised.value.reason == reason
