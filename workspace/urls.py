from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, register_converter
from django.views.generic import RedirectView

from workspace import views
from workspace.ids import RowIdConverter

# Registered before the included URL modules below are imported.
register_converter(RowIdConverter, "id")

urlpatterns = [
    # Browsers request /favicon.ico even when the page links another icon.
    path(
        "favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)
    ),
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("switch-project/", views.switch_project, name="switch-project"),
    path("p/<slug:project_slug>/", include("workspace.project_urls")),
    path("p/<slug:project_slug>/applications/", include("genai_apps.urls")),
    path("p/<slug:project_slug>/insights/", include("insights.urls")),
    path("api/", include("insights.api_urls")),
    path("gateway/", include("gateway.urls")),
]
