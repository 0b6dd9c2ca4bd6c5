from django.urls import path

from genai_apps import views

app_name = "genai_apps"

urlpatterns = [
    path("", views.application_list, name="application-list"),
    path("new/", views.application_create, name="application-create"),
    path(
        "<id:application_id>/",
        views.application_detail,
        name="application-detail",
    ),
    path(
        "<id:application_id>/edit/",
        views.application_edit,
        name="application-edit",
    ),
    path(
        "<id:application_id>/delete/",
        views.application_delete,
        name="application-delete",
    ),
    path(
        "<id:application_id>/attach/",
        views.attach_keys,
        name="application-attach-keys",
    ),
    path(
        "<id:application_id>/keys/<id:key_id>/remove/",
        views.remove_key,
        name="application-remove-key",
    ),
]
