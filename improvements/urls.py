from django.urls import path

from improvements import views

app_name = "improvements"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
]
