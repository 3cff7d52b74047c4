from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import redirect, render
from django.template.loader import get_template
from django.templatetags.static import static

from feedbackloop.api_errors import error_body
from feedbackloop.roles import is_reviewer
from generation.models import Generation
from pipelines.models import ConfigRevision


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Reviewers go straight to their queue; staff get the overview; anyone else is told why
    there is nothing for them here."""
    if not request.user.is_staff:
        if is_reviewer(request.user):
            return redirect("reviews:queue")
        return render(request, "home.html", {"may_review": False}, status=403)
    recent = Generation.objects.select_related("revision__pipeline").order_by("-created_at")[:20]
    actives = ConfigRevision.objects.filter(status=ConfigRevision.Status.ACTIVE).select_related(
        "pipeline"
    )
    return render(
        request,
        "home.html",
        {"recent": recent, "actives": actives.order_by("pipeline__slug"), "may_review": True},
    )


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


# --- error pages ------------------------------------------------------------------------------
# Styled pages for people; anything under /api/ keeps the API's JSON error format.


def _wants_json(request: HttpRequest) -> bool:
    if request.path.startswith("/api/"):
        return True
    # The review page's autosave posts JSON with fetch(): answer it in kind.
    return (
        request.content_type == "application/json"
        or "application/json" in request.headers.get("Accept", "").split(",")[0]
    )


def _error(
    request: HttpRequest, status: int, code: str, message: str, template: str, context=None
) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body(code, message), status=status)
    return render(request, template, {"status": status, **(context or {})}, status=status)


def page_forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, "forbidden", "you may not open this page", "errors/403.html")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "not_found", f"nothing at {request.path}", "errors/404.html")


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: the failure may be in the database or a context processor.
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "the server failed; try again"), status=500)
    return HttpResponse(
        get_template("errors/500.html").render({"request_path": request.path}), status=500
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form sent without its security cookie or token, or a stale one."""
    no_cookie = reason == REASON_NO_CSRF_COOKIE
    if _wants_json(request):
        return JsonResponse(
            error_body(
                "csrf_failed", "the security check failed; reload the page", {"reason": reason}
            ),
            status=403,
        )
    return render(
        request,
        "errors/csrf.html",
        {"no_cookie": no_cookie, "retry_url": request.path},
        status=403,
    )


def favicon(request: HttpRequest) -> HttpResponse:
    return redirect(static("favicon.ico"), permanent=True)
