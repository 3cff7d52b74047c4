from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from generation.models import Generation
from generation.selectors import revision_active
from generation.views import user_may_review


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Reviewers go straight to their queue; staff get the overview; anyone else is told why
    there is nothing for them here."""
    if not request.user.is_staff:
        if user_may_review(request.user):
            return redirect("reviews:queue")
        return render(request, "home.html", {"may_review": False}, status=403)
    recent = Generation.objects.select_related("revision").order_by("-created_at")[:20]
    return render(
        request,
        "home.html",
        {"recent": recent, "active": revision_active(), "may_review": True},
    )


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
