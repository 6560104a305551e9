"""Refuse a request body over the upload limit before a byte of it is read: 413, whatever the server in front."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

TOO_LARGE = 413
LENGTH_REQUIRED = 411


class RequestSizeLimit:
    """A declared Content-Length over settings.MAX_REQUEST_BYTES answers 413 at once. A chunked body reaches Django
    only through a server that decodes it (waitress, which `make web` runs, counts it and cuts it at the same limit,
    then declares its length); a server that hands it over undecoded gets 411, since its size cannot be known."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not declared and not request.META.get("wsgi.input_terminated"):
            return refusal(request, LENGTH_REQUIRED, "Send the photo with a Content-Length (not chunked).")
        if declared.isdigit() and int(declared) > settings.MAX_REQUEST_BYTES:
            limit = settings.MAX_UPLOAD_BYTES / 2**20
            return refusal(request, TOO_LARGE, f"This file is too large: the limit is {limit:.0f} MiB.")
        return self.get_response(request)


def refusal(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """The API's JSON error, or the message as plain text for the page's own form."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
