"""The Celery application: the worker, beat and the web all import it from here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackloop.settings")

app = Celery("feedbackloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
