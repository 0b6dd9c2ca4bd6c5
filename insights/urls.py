from django.urls import path

from insights import views

app_name = "insights"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("export.csv", views.overview_export, name="overview-export"),
    path("applications/<id:application_id>/", views.application, name="application"),
    path(
        "applications/<id:application_id>/export.csv",
        views.application_export,
        name="application-export",
    ),
]
