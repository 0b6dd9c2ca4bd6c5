"""Project-scoped pages of the workspace app: providers, proxies and keys."""

from django.urls import path

from workspace import views

app_name = "workspace"

urlpatterns = [
    path("providers/", views.provider_list, name="provider-list"),
    path("providers/new/", views.provider_create, name="provider-create"),
    path("providers/<int:provider_id>/", views.provider_edit, name="provider-edit"),
    path(
        "providers/<int:provider_id>/delete/",
        views.provider_delete,
        name="provider-delete",
    ),
    path("proxies/", views.proxy_list, name="proxy-list"),
    path("proxies/new/", views.proxy_create, name="proxy-create"),
    path("proxies/<int:proxy_id>/", views.proxy_edit, name="proxy-edit"),
    path("proxies/<int:proxy_id>/delete/", views.proxy_delete, name="proxy-delete"),
    path("keys/", views.key_list, name="key-list"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
