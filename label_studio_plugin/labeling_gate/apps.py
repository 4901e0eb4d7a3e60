from django.apps import AppConfig


class LabelingGateConfig(AppConfig):
    name = "labeling_gate"
    label = "labeling_gate"
    verbose_name = "Labeling pipeline: access rules and worker accounts"
