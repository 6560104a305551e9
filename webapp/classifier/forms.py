from django import forms
from django.conf import settings

from animals.labels import ANIMALS


class UploadForm(forms.Form):
    image = forms.FileField(label="Animal photo", error_messages={"required": "Send the photo as the field 'image'."})

    def clean_image(self):
        image = self.cleaned_data["image"]
        if image.size > settings.MAX_UPLOAD_BYTES:
            limit = settings.MAX_UPLOAD_BYTES / 2**20
            raise forms.ValidationError(f"This file is too large: the limit is {limit:.0f} MiB.", code="too_large")
        return image


class ExplainForm(UploadForm):
    """A photo and, optionally, the animal to explain (else the top-1): only one of the ten, so nothing else is
    passed on to TorchServe (the label travels as a header)."""

    label = forms.ChoiceField(
        choices=[("", "the top-1 label")] + [(animal, animal) for animal in ANIMALS],
        required=False,
        error_messages={"invalid_choice": f"The label must be one of: {', '.join(ANIMALS)}."},
    )
