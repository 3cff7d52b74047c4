"""The REST API, versioned under /api/v1/, and its schema and docs."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
