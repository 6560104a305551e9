"""Keep one correction: what TorchServe answers for the photo now (asked here, never taken from the client), the
photo stored once by digest, and the event."""

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from animals.errors import BadInput
from webapp.classifier.predictions import Prediction, PredictionFailed, Refused, classify
from webapp.corrections import photos
from webapp.corrections.metrics import CORRECTIONS
from webapp.corrections.models import Correction, Photo

INSUFFICIENT_STORAGE = 507


class StorageFull(Refused):
    """The photos kept for training already take CORRECTIONS_MAX_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            INSUFFICIENT_STORAGE,
            f"The corrections store is full ({limit / 2**20:.0f} MiB of photos): this photo was not kept. "
            "Export and delete old corrections, or raise CORRECTIONS_MAX_BYTES.",
        )


def record_correction(photo: bytes, correct_label: str, source: str) -> Correction:
    """Store the photo (unless it is already kept) and the correction; TorchServe's answer for the photo is what
    was answered. A photo TorchServe cannot classify is refused as it refuses it, and nothing is kept."""
    prediction = classify(photo)
    try:
        kind = photos.kind(photo)
    except BadInput as error:
        raise PredictionFailed(400, f"This file cannot be kept: {error}.") from error
    correction = save(photo, kind, correct_label, prediction, source)
    CORRECTIONS.labels(prediction.version, correction.answered_label, correct_label).inc()
    return correction


def save(photo: bytes, kind: str, correct_label: str, prediction: Prediction, source: str) -> Correction:
    digest = photos.digest(photo)
    with transaction.atomic():
        if not Photo.objects.filter(digest=digest).exists():
            used = Photo.objects.aggregate(total=Sum("size"))["total"] or 0
            if used + len(photo) > settings.CORRECTIONS_MAX_BYTES:
                raise StorageFull(settings.CORRECTIONS_MAX_BYTES)
        # get_or_create: the same new photo corrected twice at once is still one row
        kept, created = Photo.objects.get_or_create(
            digest=digest, defaults={"kind": kind, "size": len(photo), "label": correct_label}
        )
        if created:
            photos.save(photo, kept.file_name)
        else:
            kept.label = correct_label  # the latest correction wins
            kept.save(update_fields=["label"])
        answered_label, answered_probability = prediction.labels[0]
        return Correction.objects.create(
            photo=kept,
            correct_label=correct_label,
            answered_label=answered_label,
            answered_probability=answered_probability,
            model_version=prediction.version,
            source=source,
        )


def as_json(correction: Correction) -> dict:
    return {
        "photo": correction.photo_id,
        "label": correction.correct_label,
        "answered": {
            "label": correction.answered_label,
            "probability": correction.answered_probability,
            "model_version": correction.model_version,
        },
        "corrections_of_this_photo": correction.photo.corrections.count(),
    }
