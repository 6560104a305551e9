"""Property-based tests: for any bytes, decoding and preprocessing give a 3x224x224 tensor or BadInput, nothing else."""

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from animals.errors import BadInput
from animals.payload import image_bytes
from animals.preprocessing import CROP_SIZE, DecodeLimits, decode_image, eval_transform

TRANSFORM = eval_transform()
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


def preprocess(data: bytes):
    return TRANSFORM(decode_image(data, DecodeLimits(max_pixels=4_000_000, max_full_pixels=4_000_000)))


def assert_tensor_or_bad_input(data: bytes) -> None:
    try:
        tensor = preprocess(data)
    except BadInput as error:
        assert error.status in (400, 413) and str(error)
        return
    assert tensor.shape == (3, CROP_SIZE, CROP_SIZE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data):
    assert_tensor_or_bad_input(data)


@st.composite
def mangled_images(draw) -> bytes:
    """A real small image in a supported format, then truncated or with bytes overwritten."""
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P"]))
    fmt = draw(st.sampled_from(FORMATS))
    image = Image.new(mode, size, color=draw(st.integers(0, 255)))
    buffer = io.BytesIO()
    (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, format=fmt)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_images())
def test_mangled_images(data):
    assert_tensor_or_bad_input(data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["body", "data", "file"]),
        st.one_of(st.binary(max_size=64), st.text(max_size=64), st.dictionaries(st.text(max_size=8), st.text())),
        max_size=2,
    )
)
def test_request_rows(row):
    try:
        data = image_bytes(row)
    except BadInput as error:
        assert error.status == 400 and str(error)
        return
    assert_tensor_or_bad_input(data)
