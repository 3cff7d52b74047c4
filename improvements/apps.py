from django.apps import AppConfig


class ImprovementsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "improvements"
