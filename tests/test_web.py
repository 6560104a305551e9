"""The upload page with Django's test client, against the session's real TorchServe."""

import json
import os

import django
import pytest
from django.test import Client as DjangoClient
from django.test.utils import override_settings, setup_test_environment, teardown_test_environment

from serving.config import read_keys


@pytest.fixture(scope="module")
def web(served):
    """Django configured for the test TorchServe (its config, URL and token)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.animals_web.settings")
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
