from django.apps import AppConfig


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Active-learning annotator"

    def ready(self):
        from annotator import signals  # noqa: F401 - connects the receivers
