from pathlib import Path

from django.apps import AppConfig


class CorrectionsConfig(AppConfig):
    name = "webapp.corrections"
    label = "corrections"
    verbose_name = "Corrections"

    def ready(self) -> None:
        from django.conf import settings

        from webapp.corrections import signals  # noqa: F401 (connects the receivers that delete photo files)

        Path(settings.CORRECTIONS_DIR).mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
