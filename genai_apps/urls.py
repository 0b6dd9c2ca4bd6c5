from django.urls import path

from workspace import views as workspace_views

app_name = "genai_apps"

urlpatterns = [
    path("", workspace_views.placeholder, name="application-list"),
]
