"""Corrections from the page (CSRF-protected, the photo it holds) and from scripts (POST /api/corrections), and the
web app's Prometheus metrics."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webapp.classifier.views import answer_upload
from webapp.corrections.forms import CorrectionForm
from webapp.corrections.models import Correction
from webapp.corrections.record import as_json, record_correction

CREATED = 201


@require_POST
def page_correction(request: HttpRequest) -> JsonResponse:
    return correction(request, Correction.Source.PAGE)


@csrf_exempt  # a stateless JSON API for scripts, as /api/predict
@require_POST
def api_correction(request: HttpRequest) -> JsonResponse:
    return correction(request, Correction.Source.API)


def correction(request: HttpRequest, source: str) -> JsonResponse:
    def keep(fields: dict) -> dict:
        return as_json(record_correction(fields["image"].read(), fields["label"], source))

    return answer_upload(request, CorrectionForm, keep, status=CREATED)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
