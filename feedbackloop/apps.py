from django.apps import AppConfig


class FeedbackloopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "feedbackloop"
    verbose_name = "feedbackloop"
