from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("videos/<uuid:generation_id>.mp4", views.video, name="video"),
    path("posters/<uuid:generation_id>.jpg", views.poster, name="poster"),
    path("generations/", views.generation_list, name="list"),
    path("generations/progress.json", views.generation_progress, name="progress"),
]
