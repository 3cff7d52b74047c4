from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("review/", views.queue, name="queue"),
    path("review/next/", views.review_next, name="next"),
    path("review/<uuid:generation_id>/", views.review, name="review"),
    path("review/<uuid:generation_id>/draft/", views.review_draft, name="draft"),
    path("compare/", views.compare_next, name="compare_next"),
    path("compare/<slug:token>/", views.compare, name="compare"),
    path(
        "compare/<slug:token>/<str:side>.mp4",
        views.compare_media,
        {"kind": "video"},
        name="compare_video",
    ),
    path(
        "compare/<slug:token>/<str:side>.jpg",
        views.compare_media,
        {"kind": "poster"},
        name="compare_poster",
    ),
]
