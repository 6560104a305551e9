"""Corrections kept by the web app as `make web` serves it, against the session's real TorchServe: the same tests on
SQLite (the default) and on a real PostgreSQL server started on loopback. What was answered comes from TorchServe;
photos are stored once by digest; the admin reviews and deletes; the export writes class folders."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import HTTP_TIMEOUT_S, REPO_ROOT, own_page, own_postgresql

ADMIN_PASSWORD = "a long test password"


@dataclass
class Page:
    url: str
    corrections_dir: Path
    environment: dict[str, str]

    def correct(self, photo: bytes, label: str | None, **fields: str) -> requests.Response:
        data = fields | ({"label": label} if label is not None else {})
        files = {"image": ("photo.jpg", photo, "image/jpeg")}
        return requests.post(f"{self.url}api/corrections", data=data, files=files, timeout=HTTP_TIMEOUT_S)

    def stored_files(self) -> list[Path]:
        return sorted(path for path in (self.corrections_dir / "photos").rglob("*") if path.is_file())

    def manage(self, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
        """python -m webapp.manage with the page's database and corrections folder."""
        command = [sys.executable, "-m", "webapp.manage", *arguments]
        env = {"CORRECTIONS_DIR": str(self.corrections_dir), **self.environment, **environment}
        done = subprocess.run(command, cwd=REPO_ROOT, env=os.environ | env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request) -> Iterator[dict[str, str]]:
    """The page's database: the default SQLite file in the corrections folder, or a real PostgreSQL by DATABASE_URL."""
    if request.param == "sqlite":
        yield {}
    else:
        with own_postgresql() as url:
            yield {"DATABASE_URL": url}


@pytest.fixture(scope="module")
def page(served, database, tmp_path_factory) -> Iterator[Page]:
    corrections = tmp_path_factory.mktemp("corrections-page") / "corrections"
    with own_page(served.config, corrections, **database) as url:
        yield Page(url, corrections, database)


def test_a_correction_keeps_the_photo_once_with_what_torchserve_answered(page, samples, served):
    photo = samples[0].read_bytes()
    labels, version = served.predict_and_version(photo)
    assert version == served.default_version()  # the handler's X-Model-Version header
    first = page.correct(photo, "sheep", answered_label="cat", model_version="9.9")  # the client's word is ignored
    assert first.status_code == 201, first.text
    answer = first.json()
    answered_label, answered_probability = next(iter(labels.items()))
    assert answer["answered"] == {
        "label": answered_label, "probability": answered_probability, "model_version": version
    }  # fmt: skip
    assert answer["label"] == "sheep" and answer["corrections_of_this_photo"] == 1
    [stored] = page.stored_files()
    assert stored.read_bytes() == photo and stored.name == f"{answer['photo']}.jpg"

    again = page.correct(photo, "cow")
    assert again.status_code == 201 and again.json()["corrections_of_this_photo"] == 2
    assert page.stored_files() == [stored]
    exported = page.corrections_dir.parent / "export"
    page.manage("export_corrections", str(exported), "--check-share", "0")
    assert [path.relative_to(exported) for path in exported.rglob("*.jpg")] == [Path("train/cow", stored.name)]
    page.manage("export_corrections", str(exported), "--since", "2999-01-01")  # replaces the earlier export
    assert not list(exported.rglob("*.jpg"))


@pytest.mark.parametrize(
    ("photo", "label", "status", "message"),
    [
        (b"just text\n", "cat", 400, "cannot be classified"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 64, "cat", 400, "cannot be classified"),
        ("sample", "unicorn", 400, "must be one of"),
        ("sample", None, 400, "'label'"),
    ],
)
def test_what_cannot_be_kept_is_refused_and_nothing_is_stored(page, samples, photo, label, status, message):
    before = page.stored_files()
    refused = page.correct(samples[1].read_bytes() if photo == "sample" else photo, label)
    assert refused.status_code == status and message in refused.json()["error"]
    assert page.stored_files() == before


def test_the_web_app_counts_corrections_by_version_and_labels(page, samples, served):
    photo = samples[2].read_bytes()
    labels, version = served.predict_and_version(photo)
    answered = next(iter(labels))
    before = corrections_counted(page, version, answered, "spider")
    assert page.correct(photo, "spider").status_code == 201
    assert corrections_counted(page, version, answered, "spider") == before + 1


def corrections_counted(page: Page, version: str, answered: str, corrected: str) -> float:
    text = requests.get(f"{page.url}metrics", timeout=HTTP_TIMEOUT_S).text
    wanted = {"model_version": version, "answered": answered, "corrected": corrected}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "animals_corrections_total" and sample.labels == wanted:
                return sample.value
    return 0.0


def test_the_admin_needs_a_login_then_reviews_and_deletes_with_the_photo(page, samples, served):
    photo = samples[3].read_bytes()
    assert page.correct(photo, "elephant").status_code == 201
    answered = next(iter(served.predict(photo)))
    listing = f"{page.url}admin/corrections/correction/"
    anonymous = requests.get(listing, timeout=HTTP_TIMEOUT_S, allow_redirects=False)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["Location"]

    admin = logged_in_admin(page)
    shown = admin.get(f"{listing}?mistake={answered}>elephant", timeout=HTTP_TIMEOUT_S)
    assert shown.status_code == 200
    thumbnails = re.findall(r'<img src="(/admin/corrections/correction/photo/[0-9a-f]{64})"', shown.text)
    assert len(thumbnails) == 1 and admin.get(page.url + thumbnails[0][1:], timeout=HTTP_TIMEOUT_S).content == photo
    assert requests.get(page.url + thumbnails[0][1:], timeout=HTTP_TIMEOUT_S, allow_redirects=False).status_code == 302

    confusion = admin.get(f"{listing}confusion/", timeout=HTTP_TIMEOUT_S)
    assert confusion.status_code == 200 and "answered \\ corrected" in confusion.text

    digest = thumbnails[0].rsplit("/", 1)[1]
    stored = [path for path in page.stored_files() if path.stem == digest]
    assert stored
    ids = re.findall(r'name="_selected_action" value="(\d+)"', shown.text)
    token = admin.cookies["csrftoken"]
    deleted = admin.post(
        listing,
        data={"action": "delete_selected", "_selected_action": ids, "post": "yes", "csrfmiddlewaretoken": token},
        headers={"Referer": listing},
        timeout=HTTP_TIMEOUT_S,
    )
    assert deleted.status_code == 200 and "Successfully deleted" in deleted.text
    assert not stored[0].exists()
    assert digest not in admin.get(listing, timeout=HTTP_TIMEOUT_S).text


def logged_in_admin(page: Page) -> requests.Session:
    """A superuser made as the README says (createsuperuser), logged in through the admin's own form."""
    page.manage("createsuperuser", "--noinput", "--username", "reviewer", "--email", "reviewer@example.com",
                DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD)  # fmt: skip
    session = requests.Session()
    login = f"{page.url}admin/login/?next=/admin/"
    session.get(login, timeout=HTTP_TIMEOUT_S)
    fields = {"username": "reviewer", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    answer = session.post(login, data=fields, headers={"Referer": login}, timeout=HTTP_TIMEOUT_S)
    assert answer.status_code == 200 and "Log out" in answer.text, answer.text[-500:]
    return session


def test_a_full_store_refuses_new_photos_but_keeps_correcting_kept_ones(served, samples, tmp_path):
    kept, new = samples[4].read_bytes(), samples[5].read_bytes()
    limit = str(len(kept) + len(new) - 1)
    with own_page(served.config, tmp_path / "corrections", CORRECTIONS_MAX_BYTES=limit) as url:
        page = Page(url, tmp_path / "corrections", {})
        assert page.correct(kept, "dog").status_code == 201
        full = page.correct(new, "dog")
        assert full.status_code == 507 and "store is full" in full.json()["error"]
        assert page.correct(kept, "cat").status_code == 201
        assert len(page.stored_files()) == 1
