from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from feedbackloop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    # Invited reviewers choose their password here (the invite link carries a one-time token).
    path(
        "accounts/invite/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/invite_accept.html", success_url="/accounts/invite/done/"
        ),
        name="invite_accept",
    ),
    path(
        "accounts/invite/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="registration/invite_done.html"),
        name="invite_done",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("feedbackloop.api_urls")),
    path("", include("generation.urls")),
    path("", include("reviews.urls")),
    path("", include("improvements.urls")),
]

# Styled error pages for people; paths under /api/ answer in the API's JSON error format.
handler403 = "feedbackloop.views.page_forbidden"
handler404 = "feedbackloop.views.page_not_found"
handler500 = "feedbackloop.views.server_error"
