from django import forms
from django.conf import settings


class UploadForm(forms.Form):
    image = forms.FileField(label="Animal photo")

    def clean_image(self):
        image = self.cleaned_data["image"]
        if image.size > settings.MAX_UPLOAD_BYTES:
            limit = settings.MAX_UPLOAD_BYTES / 2**20
            raise forms.ValidationError(f"This file is too large: the limit is {limit:.0f} MiB.", code="too_large")
        return image
