"""Settings of the upload page. Safe by default: DEBUG off, CSRF on, hosts from the environment, uploads kept in
memory only (never written to disk) and limited to TorchServe's own max_request_size."""

import os
import secrets

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
# The forms hold one photo, a label and the CSRF token: anything far beyond that is refused (400).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
DATA_UPLOAD_MAX_NUMBER_FILES = 1

INSTALLED_APPS = ["django.contrib.staticfiles", "webapp.classifier"]
MIDDLEWARE = [
    "webapp.classifier.limits.RequestSizeLimit",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "webapp.animals_web.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
WSGI_APPLICATION = "webapp.animals_web.wsgi.application"
DATABASES: dict = {}
STATIC_URL = "static/"
USE_TZ = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
