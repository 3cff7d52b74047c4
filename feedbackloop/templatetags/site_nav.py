"""The site's one navigation bar: which links a user sees, and which one is the current page."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from feedbackloop.roles import is_reviewer

register = template.Library()

# (label, url name, path prefix that marks the link as the current page)
REVIEW_LINKS = (
    ("Review queue", "reviews:queue", "/review/"),
    ("Compare", "reviews:compare_next", "/compare/"),
)
STAFF_LINKS = (
    ("Generations", "generation:list", "/generations/"),
    ("Dashboard", "improvements:dashboard", "/dashboard/"),
    ("Proposals", "improvements:proposals", "/proposals/"),
    ("Reviewers", "improvements:reviewers", "/reviewers/"),
    ("Admin", "admin:index", "/admin/"),
)


@register.simple_tag(takes_context=True)
def nav_links(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The links the signed-in user may follow; anonymous users get none."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    entries: list[tuple[str, str, str]] = []
    if is_reviewer(user):
        entries.extend(REVIEW_LINKS)
    if user.is_staff:
        entries.extend(STAFF_LINKS)
    path = request.path
    return [
        {"label": label, "url": reverse(name), "current": path.startswith(prefix)}
        for label, name, prefix in entries
    ]
