"""Project-scoped pages of the workspace app: providers, proxies and keys."""

from django.urls import path

from workspace import views

app_name = "workspace"

urlpatterns = [
    path("", views.project_home, name="project-home"),
    path("providers/", views.provider_list, name="provider-list"),
    path("providers/new/", views.provider_create, name="provider-create"),
    path("providers/<id:provider_id>/", views.provider_edit, name="provider-edit"),
    path(
        "providers/<id:provider_id>/delete/",
        views.provider_delete,
        name="provider-delete",
    ),
    path("proxies/", views.proxy_list, name="proxy-list"),
    path("proxies/new/", views.proxy_create, name="proxy-create"),
    path("proxies/<id:proxy_id>/", views.proxy_edit, name="proxy-edit"),
    path("proxies/<id:proxy_id>/delete/", views.proxy_delete, name="proxy-delete"),
    path("keys/", views.key_list, name="key-list"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<id:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
