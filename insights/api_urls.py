from django.urls import path

from insights import api

app_name = "insights_api"

urlpatterns = [
    path("v1/usage/events", api.ingest_events, name="events"),
]
