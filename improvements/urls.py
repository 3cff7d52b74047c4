from django.urls import path

from improvements import staff_views, views

app_name = "improvements"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("generations/<uuid:generation_id>/", staff_views.generation_detail, name="generation"),
    path(
        "generations/<uuid:generation_id>/series/",
        staff_views.generation_series,
        name="generation_series",
    ),
    path("reviewers/", staff_views.reviewer_list, name="reviewers"),
    path("reviewers/<int:user_id>/", staff_views.reviewer_detail, name="reviewer"),
]
