"""The upload page with Django's test client and served as `make web` serves it, against the session's real
TorchServe."""

import contextlib
import json
import os
import socket
from urllib.parse import urlsplit

import django
import pytest
import requests
from django.test import Client as DjangoClient
from django.test.utils import override_settings, setup_test_environment, teardown_test_environment

from serving.config import read_keys
from tests import hostile
from tests.support import HTTP_TIMEOUT_S


@pytest.fixture(scope="module")
def web(served, tmp_path_factory):
    """Django configured for the test TorchServe (its config, URL and token)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.animals_web.settings")
    os.environ.setdefault("CORRECTIONS_DIR", str(tmp_path_factory.mktemp("web-corrections")))
    django.setup()
    setup_test_environment()
    try:
        with override_settings(TORCHSERVE_URL=served.config.inference_url, TORCHSERVE_TOKEN=None, CONFIG=served.config):
            yield DjangoClient(enforce_csrf_checks=True)
    finally:
        teardown_test_environment()


def upload(web, path_or_bytes, name="photo.jpg", url="/", csrf=True):
    """Post a file as the page's form does: the CSRF token from the page's cookie, unless csrf=False."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    fields = {"image": SimpleUploadedFile(name, data, content_type="image/jpeg")}
    if csrf:
        web.get("/")
        fields["csrfmiddlewaretoken"] = web.cookies["csrftoken"].value
    return web.post(url, fields)


def test_a_form_post_without_the_csrf_token_is_refused(web, samples):
    assert upload(web, samples[0], csrf=False).status_code == 403
    assert upload(web, samples[0]).status_code == 200


def test_page_has_the_upload_form(web):
    page = web.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="file" name="image"' in html and "csrfmiddlewaretoken" in html
    assert 'name="viewport"' in html


def test_a_real_photo_shows_itself_and_five_labels(web, samples, reference):
    photo = samples[0]
    page = upload(web, photo)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'src="data:image/jpeg;base64,' in html
    assert html.count('class="bar"') == 5
    assert f"This looks like a <strong>{reference.top1(photo.read_bytes())}</strong>" in html
    assert "Predicted in" in html


def test_a_text_file_is_refused_with_words(web):
    page = upload(web, b"just text\n", name="notes.txt")
    assert page.status_code == 400
    assert "This file cannot be classified" in page.content.decode() and 'type="file"' in page.content.decode()


def test_too_large_files_are_refused_before_torchserve(web, served):
    limit = int(served.config.properties["max_request_size"])
    page = upload(web, b"\0" * (limit + 1))
    assert page.status_code == 413 and "too large" in page.content.decode()


def test_torchserves_own_size_limit_is_explained(web, served):
    """With the page's own limit raised, the file reaches TorchServe, whose 413 the page words the same way."""
    limit = int(served.config.properties["max_request_size"])
    raised = {"MAX_UPLOAD_BYTES": 2 * limit, "FILE_UPLOAD_MAX_MEMORY_SIZE": 3 * limit}
    with override_settings(**raised, DATA_UPLOAD_MAX_MEMORY_SIZE=3 * limit):
        page = upload(web, b"\0" * (limit + 1))
    assert page.status_code == 413 and "This file is too large." in page.content.decode()


def test_json_api_returns_what_the_page_shows(web, samples, reference):
    answer = upload(web, samples[3], url="/api/predict")
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["labels"]) == 5 and body["top_label"] == reference.top1(samples[3].read_bytes())
    assert json.loads(upload(web, b"nope", url="/api/predict").content)["error"]


def test_torchserve_down_says_not_reachable(web, samples):
    with override_settings(TORCHSERVE_URL="http://127.0.0.1:9", TORCHSERVE_TOKEN="t"):
        page = upload(web, samples[0])
    assert page.status_code == 503 and "not reachable" in page.content.decode()


def test_refused_token_is_explained(web, samples, served):
    assert read_keys(served.config)["inference"]
    with override_settings(TORCHSERVE_TOKEN="wrong"):
        page = upload(web, samples[0])
    assert page.status_code == 502 and "refused" in page.content.decode()


def post_explain(web, photo: bytes, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return web.post("/api/explain", {"image": SimpleUploadedFile("p.jpg", photo, "image/jpeg"), **fields})


@pytest.mark.parametrize("label", ["unicorn", "cat\r\nX-Injected: 1", "cat\x00", "c" * 10_000])
def test_an_explanation_label_must_be_one_of_the_animals(web, samples, label):
    answer = post_explain(web, samples[0].read_bytes(), label=label)
    assert answer.status_code == 400 and "The label must be one of" in answer.json()["error"]


def test_an_explanation_of_a_named_animal_is_answered(web, samples):
    answer = post_explain(web, samples[0].read_bytes(), label="cat")
    assert answer.status_code == 200 and answer.json()["explained_label"] == "cat"


def test_too_many_files_or_fields_get_the_apis_json_error(web, samples):
    from django.core.files.uploadedfile import SimpleUploadedFile

    photo = samples[0].read_bytes()
    files = {f"image{index}": SimpleUploadedFile(f"{index}.jpg", photo, "image/jpeg") for index in range(3)}
    fields = {f"field{index}": "x" for index in range(300)}
    for body in (files, fields | {"image": SimpleUploadedFile("p.jpg", photo, "image/jpeg")}):
        answer = web.post("/api/predict", body)
        assert answer.status_code == 400 and "nothing else" in answer.json()["error"]


def test_a_declared_length_over_the_limit_is_refused_before_reading(web):
    from django.conf import settings

    answer = web.post(
        "/api/predict", b"tiny", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(settings.MAX_REQUEST_BYTES + 1),
    )  # fmt: skip
    assert answer.status_code == 413 and "too large" in answer.json()["error"]


def test_a_chunked_body_a_server_hands_over_undecoded_gets_411(web):
    """Waitress de-chunks and declares the length (below); a server that passes the chunks on unmeasured cannot have
    its size checked, so the upload is refused with a JSON error."""
    answer = web.post(
        "/api/predict", b"4\r\ntiny\r\n0\r\n\r\n", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
    )  # fmt: skip
    assert answer.status_code == 411 and "Content-Length" in answer.json()["error"]


def test_torchserves_4xx_stays_a_4xx(web):
    """A photo TorchServe refuses as too thin answers the page's 400 (TorchServe's reason in words), not a 5xx."""
    answer = upload(web, hostile.thin_png(1, 100_000), url="/api/predict")
    assert answer.status_code == 400 and "sides differ" in answer.json()["error"]


def raw_post(url: str, head: str, chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a request over a plain socket (headers, then body chunks while the server reads them) and return the
    status and body of its answer, however early the server answers."""
    parsed = urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=HTTP_TIMEOUT_S) as connection:
        connection.sendall(head.encode())
        try:
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:  # the server answered and closed while the body was still coming: what is being tested
            pass
        answer = b""
        with contextlib.suppress(OSError):
            while data := connection.recv(65536):
                answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_the_page_server_refuses_an_oversized_upload_however_it_is_sent(page_url):
    from django.conf import settings

    limit = settings.MAX_REQUEST_BYTES
    host = urlsplit(page_url).netloc
    declared = f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {200 * 2**20}\r\n"
    declared += "Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    assert raw_post(page_url, declared, [])[0] == 413  # answered before a byte of the body was sent
    chunked = f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
    chunked += "Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    piece = b"\0" * 2**20
    chunks = [b"%x\r\n" % len(piece) + piece + b"\r\n"] * (limit // len(piece) + 4) + [b"0\r\n\r\n"]
    assert raw_post(page_url, chunked, chunks)[0] == 413


def test_a_chunked_upload_within_the_limit_is_answered(page_url, samples, reference):
    photo = samples[5].read_bytes()
    answer = requests.post(
        f"{page_url}api/predict", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=HTTP_TIMEOUT_S
    )
    assert answer.status_code == 200
    boundary = "animals-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunked = requests.post(
        f"{page_url}api/predict", data=iter([body[:1000], body[1000:]]), timeout=HTTP_TIMEOUT_S,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert chunked.status_code == 200 and chunked.json()["top_label"] == reference.top1(photo)


def test_the_page_asks_for_a_correction_on_its_own_only_below_the_threshold(web, samples):
    with override_settings(CORRECTION_PROMPT_BELOW=0.0):
        sure = upload(web, samples[0]).content.decode()
    with override_settings(CORRECTION_PROMPT_BELOW=1.0):
        unsure = upload(web, samples[0]).content.decode()
    assert '<details class="correct" id="correct">' in sure and "Not right?" in sure
    assert '<details class="correct" id="correct" open>' in unsure and "Not sure" in unsure
    assert "A photo you correct is kept" in sure
