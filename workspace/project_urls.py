"""Project-scoped pages of the workspace app: providers, proxies and keys."""

from django.urls import path

from workspace import views

app_name = "workspace"

urlpatterns = [
    path("providers/", views.placeholder, name="provider-list"),
    path("proxies/", views.placeholder, name="proxy-list"),
    path("keys/", views.placeholder, name="key-list"),
]
