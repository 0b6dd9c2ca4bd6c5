from django.urls import path

from workspace import views as workspace_views

app_name = "insights"

urlpatterns = [
    path("", workspace_views.placeholder, name="overview"),
    path(
        "applications/<int:application_id>/",
        workspace_views.placeholder,
        name="application",
    ),
]
