from django.urls import path

from improvements import proposal_views, staff_views, views

app_name = "improvements"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("proposals/", proposal_views.proposal_list, name="proposals"),
    path("proposals/approve/", proposal_views.proposals_approve, name="proposals_approve"),
    path(
        "proposals/<str:slug>/<str:number>/",
        proposal_views.proposal_detail,
        name="proposal",
    ),
    path("generations/<uuid:generation_id>/", staff_views.generation_detail, name="generation"),
    path(
        "generations/<uuid:generation_id>/series/",
        staff_views.generation_series,
        name="generation_series",
    ),
    path("reviewers/", staff_views.reviewer_list, name="reviewers"),
    path("reviewers/<int:user_id>/", staff_views.reviewer_detail, name="reviewer"),
]
