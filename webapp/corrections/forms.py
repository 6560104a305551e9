from django import forms

from animals.labels import ANIMALS
from webapp.classifier.forms import UploadForm


class CorrectionForm(UploadForm):
    """The photo and the animal it really shows: one of the ten."""

    label = forms.ChoiceField(
        choices=[(animal, animal) for animal in ANIMALS],
        error_messages={
            "required": "Send the correct animal as the field 'label'.",
            "invalid_choice": f"The label must be one of: {', '.join(ANIMALS)}.",
        },
    )
