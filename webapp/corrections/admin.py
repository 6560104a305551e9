"""Review corrections in Django's admin: thumbnails, filters by version and by answered -> corrected label, deletion
of a correction with its photo, and the confusion seen in use (answered against corrected label, per version)."""

from collections import Counter

from django.contrib import admin
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from animals.labels import ANIMALS
from webapp.corrections import photos
from webapp.corrections.models import Correction, Photo

CONTENT_TYPES = {"jpg": "image/jpeg", "tif": "image/tiff"}


class AnsweredCorrectedFilter(admin.SimpleListFilter):
    title = "answered -> corrected"
    parameter_name = "mistake"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        pairs = Correction.objects.values_list("answered_label", "correct_label").distinct()
        return [(f"{answered}>{corrected}", f"{answered} -> {corrected}") for answered, corrected in sorted(pairs)]

    def queryset(self, request: HttpRequest, queryset):
        if not self.value() or ">" not in self.value():
            return queryset
        answered, corrected = self.value().split(">", 1)
        return queryset.filter(answered_label=answered, correct_label=corrected)


@admin.register(Correction)
class CorrectionAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "answered_label", "answered_percent", "correct_label", "model_version", "source",
                    "created")  # fmt: skip
    list_filter = ("model_version", AnsweredCorrectedFilter, "correct_label", "source")
    list_per_page = 100
    date_hierarchy = "created"
    readonly_fields = ("photo", "answered_label", "answered_probability", "model_version", "source", "created")
    change_list_template = "corrections/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # corrections come from the page and the API, with TorchServe's answer

    @admin.display(description="photo")
    def thumbnail(self, correction: Correction) -> str:
        url = reverse("admin:corrections_photo", args=[correction.photo_id])
        return format_html('<img src="{}" alt="photo {}" style="height: 4rem; border-radius: .25rem">', url,
                           correction.photo_id[:12])  # fmt: skip

    @admin.display(description="answered with", ordering="answered_probability")
    def answered_percent(self, correction: Correction) -> str:
        return f"{correction.answered_probability:.0%}"

    def get_urls(self) -> list:
        own = [
            path("photo/<str:digest>", self.admin_site.admin_view(self.photo), name="corrections_photo"),
            path("confusion/", self.admin_site.admin_view(self.confusion), name="corrections_confusion"),
        ]
        return own + super().get_urls()

    def photo(self, request: HttpRequest, digest: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise Http404
        kept = get_object_or_404(Photo, digest=digest)
        try:
            opened = photos.path_of(kept.file_name).open("rb")
        except FileNotFoundError as error:
            raise Http404("the photo's file is gone") from error
        return FileResponse(opened, content_type=CONTENT_TYPES.get(kept.kind, f"image/{kept.kind}"))

    def confusion(self, request: HttpRequest) -> HttpResponse:
        """Answered label (rows) against corrected label (columns), one table per model version."""
        if not self.has_view_permission(request):
            raise Http404
        counts = Counter(Correction.objects.values_list("model_version", "answered_label", "correct_label"))
        largest = max(counts.values(), default=1)
        tables = []
        for version in sorted({version for version, _, _ in counts}):
            rows = []
            for answered in ANIMALS:
                cells = [counts[version, answered, corrected] for corrected in ANIMALS]
                if any(cells):
                    shaded = [(count, f"{0.1 + 0.5 * count / largest:.2f}") for count in cells]
                    rows.append((answered, shaded, sum(cells)))
            total = sum(count for (seen, _, _), count in counts.items() if seen == version)
            tables.append({"version": version, "rows": rows, "total": total})
        context = {**self.admin_site.each_context(request), "title": "Corrections: answered against corrected",
                   "animals": ANIMALS, "tables": tables, "opts": self.model._meta}  # fmt: skip
        return TemplateResponse(request, "corrections/confusion.html", context)
