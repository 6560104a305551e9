"""What users said the animal really was. A photo is stored once, by the SHA-256 of its bytes; each correction of it
is an event of its own, and the latest one gives the photo's label."""

from django.db import models
from django.utils import timezone

from animals.labels import ANIMALS

LABELS = [(animal, animal) for animal in ANIMALS]


class Photo(models.Model):
    digest = models.CharField(max_length=64, primary_key=True, help_text="SHA-256 of the photo's bytes")
    kind = models.CharField(max_length=8, help_text="the file's image format: its suffix on disk")
    size = models.PositiveIntegerField(help_text="bytes")
    label = models.CharField(max_length=16, choices=LABELS, help_text="the latest correction's label")
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.digest[:12]} ({self.label})"

    @property
    def file_name(self) -> str:
        return f"{self.digest}.{self.kind}"


class Correction(models.Model):
    class Source(models.TextChoices):
        PAGE = "page", "upload page"
        API = "api", "API"

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="corrections")
    correct_label = models.CharField(max_length=16, choices=LABELS)
    answered_label = models.CharField(max_length=16, help_text="TorchServe's top-1 for the photo")
    answered_probability = models.FloatField()
    model_version = models.CharField(max_length=32, help_text="the version that answered")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=4, choices=Source.choices)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"{self.answered_label} -> {self.correct_label} ({self.model_version})"
