"""The upload page and its JSON twin. The photo stays in memory: it is shown back as a data URI, never stored (unless
the user corrects its answer: webapp.corrections)."""

import base64
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from animals.labels import ANIMALS
from webapp.classifier.forms import ExplainForm, UploadForm
from webapp.classifier.limits import TOO_LARGE
from webapp.classifier.predictions import PredictionFailed, Refused, classify, explain


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "classifier/index.html", {"form": UploadForm()})
    form = UploadForm(request.POST, request.FILES)
    context, status = {"form": form}, 200
    if not form.is_valid():
        return render(request, "classifier/index.html", context, status=invalid_status(form))
    upload = form.cleaned_data["image"]
    image = upload.read()
    try:
        context["prediction"] = prediction = classify(image)
        context["image_uri"] = data_uri(image, upload.content_type)
        context["unsure"] = prediction.top_probability < settings.CORRECTION_PROMPT_BELOW
        context["animals"] = ANIMALS
    except PredictionFailed as failure:
        context["error"], status = str(failure), failure.status
    return render(request, "classifier/index.html", context, status=status)


@csrf_exempt  # a stateless JSON API for scripts: no cookies or sessions to forge
@require_POST
def api_predict(request: HttpRequest) -> JsonResponse:
    return answer_upload(request, UploadForm, lambda fields: classify(fields["image"].read()).as_json())


@csrf_exempt  # as api_predict; the page's "show where it looked" posts the photo it holds here
@require_POST
def api_explain(request: HttpRequest) -> JsonResponse:
    """The Grad-CAM explanation of the photo's top-1 label, or of the form field `label` (one of the animals)."""
    return answer_upload(request, ExplainForm, lambda fields: explain(fields["image"].read(), fields["label"] or None))


def answer_upload(
    request: HttpRequest, form_class: type[UploadForm], answer: Callable[[dict], dict], status: int = 200
) -> JsonResponse:
    """The JSON answer for an upload: the form's fields checked first, every refusal as {"error": ...}."""
    try:
        form = form_class(request.POST, request.FILES)
        valid = form.is_valid()
    except (TooManyFieldsSent, TooManyFilesSent):
        return JsonResponse({"error": "Send one photo as the field 'image', and nothing else."}, status=400)
    except RequestDataTooBig:
        return JsonResponse({"error": "This file is too large."}, status=TOO_LARGE)
    if not valid:
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        return JsonResponse({"error": " ".join(errors)}, status=invalid_status(form))
    try:
        return JsonResponse(answer(form.cleaned_data), status=status)
    except Refused as refusal:
        return JsonResponse({"error": str(refusal)}, status=refusal.status)


def invalid_status(form: UploadForm) -> int:
    """413 for a file over the limit, 400 for anything else wrong with the upload."""
    return TOO_LARGE if form.has_error("image", "too_large") else 400


def data_uri(image: bytes, content_type: str | None) -> str:
    kind = content_type if content_type and content_type.startswith("image/") else "image/jpeg"
    return f"data:{kind};base64,{base64.b64encode(image).decode()}"
