from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from generation.models import Generation
from generation.selectors import revision_active


@login_required
def home(request: HttpRequest) -> HttpResponse:
    recent = Generation.objects.select_related("revision").order_by("-created_at")[:20]
    return render(request, "home.html", {"recent": recent, "active": revision_active()})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
