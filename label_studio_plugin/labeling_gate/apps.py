from django.apps import AppConfig


class LabelingGateConfig(AppConfig):
    name = "labeling_gate"
    label = "labeling_gate"
    verbose_name = "Labeling pipeline: access rules and worker accounts"

    def ready(self) -> None:
        # The data manager's next_task action leaves a reviewer's own images out, as /api/projects/<pk>/next/
        # does (review_gate.py).
        from labeling_gate.review_gate import install_next_task_action

        install_next_task_action()
