"""One coverage-guided fuzzing harness (atheris, libFuzzer) over an entry point that parses untrusted bytes. The only
exception an input may raise is BadInput (a 4xx answer); anything else is a crash, an input over the time limit a
timeout, and one that grows memory past the limit a memory blow-up, each saved by libFuzzer as a file.

    python -m fuzz.harness NAME [libFuzzer flags] [SEED_DIR ...]   (make fuzz runs every harness)
"""

import contextlib
import sys
from pathlib import Path

import atheris
import psutil

with atheris.instrument_imports(include=["animals", "PIL"]):
    from animals.errors import BadInput
    from animals.kserve import kserve_request
    from animals.payload import image_in, named_label, request_body
    from animals.preprocessing import decode_image, eval_transform

MEMORY_HEADROOM_MB = 1024  # above the harness's memory once loaded: a blow-up (the 300 MB bound is test_hostile's)
TRANSFORM = eval_transform()


def request(data: bytes) -> None:
    """A raw TorchServe request row: its body (raw, or JSON with base64) and the label an explanation names."""
    row = {"body": bytearray(data)}
    body = request_body(row)
    named_label(row, body)
    if kserve_request(body) is None:
        image_in(body)


def kserve(data: bytes) -> None:
    """A KServe v1 or v2 body, and every image it holds decoded as the handler decodes them."""
    body = request_body({"body": bytearray(b'{"instances": ' + data + b"}")})
    for image in kserve_request(body).images:
        decode_image(image)


def image(data: bytes) -> None:
    """An image's bytes, decoded and transformed into the model's input."""
    TRANSFORM(decode_image(data))


HARNESSES = {"request": request, "kserve": kserve, "image": image}


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    target = HARNESSES[name]

    def one_input(data: bytes) -> None:
        with contextlib.suppress(BadInput):  # a 4xx answer: what the parsers are for
            target(data)

    own_mb = psutil.Process().memory_info().rss // 2**20
    atheris.Setup([sys.argv[0], f"-rss_limit_mb={own_mb + MEMORY_HEADROOM_MB}", *flags], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
