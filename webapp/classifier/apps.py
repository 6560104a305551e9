from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "webapp.classifier"
    label = "classifier"
