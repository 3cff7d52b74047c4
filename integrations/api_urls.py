"""Routes of the staff API for exports and imports, included under /api/v1/."""

from django.urls import path

from integrations import apis

urlpatterns = [
    path("exports/<str:kind>/", apis.ExportApi.as_view(), name="exports"),
    path("imports/", apis.ImportApi.as_view(), name="imports"),
]
