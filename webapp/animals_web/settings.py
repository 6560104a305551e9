"""Settings of the upload page. Safe by default: DEBUG off, CSRF on, hosts from the environment, uploads kept in
memory only and limited to TorchServe's own max_request_size. Only a photo a user corrects is stored: its file under
CORRECTIONS_DIR, its corrections in the database (SQLite there, or the PostgreSQL that DATABASE_URL names)."""

import os
import secrets
from pathlib import Path

import dj_database_url

from serving.config import DEFAULT_CONFIG, read_config

CONFIG = read_config(os.environ.get("TORCHSERVE_CONFIG", DEFAULT_CONFIG))

DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in ("1", "true", "yes")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
ALLOWED_HOSTS = [host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if host]

# Where TorchServe answers, and with which token: the local config and key file unless the environment says otherwise.
TORCHSERVE_URL = os.environ.get("TORCHSERVE_URL", CONFIG.inference_url)
TORCHSERVE_TOKEN = os.environ.get("TORCHSERVE_TOKEN")
TORCHSERVE_MODEL = CONFIG.model_name
TORCHSERVE_TIMEOUT_S = 60

MAX_UPLOAD_BYTES = int(CONFIG.properties["max_request_size"])
# A whole request body: the photo and the multipart envelope around it. Larger bodies answer 413 before they are read
# (webapp.classifier.limits; waitress cuts a chunked body at this size).
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
# The page's forms hold one photo, a label and the CSRF token, and the admin's largest form a page of 100 selected
# corrections: anything far beyond that is refused (400).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
DATA_UPLOAD_MAX_NUMBER_FILES = 1

# Corrections: where their photos and the default SQLite database live, how much photo data may be kept, and below
# which top-1 probability the page asks for a correction on its own.
CORRECTIONS_DIR = Path(os.environ.get("CORRECTIONS_DIR", Path(__file__).resolve().parents[2] / "data" / "corrections"))
CORRECTIONS_MAX_BYTES = int(os.environ.get("CORRECTIONS_MAX_BYTES", 2 * 2**30))
CORRECTION_PROMPT_BELOW = float(os.environ.get("CORRECTION_PROMPT_BELOW", 0.6))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webapp.classifier",
    "webapp.corrections",
]
MIDDLEWARE = [
    "webapp.classifier.limits.RequestSizeLimit",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "webapp.animals_web.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "webapp.animals_web.wsgi.application"
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{CORRECTIONS_DIR / 'corrections.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True  # the admin's CSS and scripts, straight from Django's package: no collectstatic step
USE_TZ = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
