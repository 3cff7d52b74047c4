"""The site's URLs plus two views that fail, to see the 500 pages (tests only)."""

from django.urls import path

from feedbackloop.urls import handler403, handler404, handler500, urlpatterns  # noqa: F401


def boom(request):
    raise RuntimeError("a bug, on purpose")


urlpatterns = [path("boom/", boom), path("api/boom/", boom), *urlpatterns]
