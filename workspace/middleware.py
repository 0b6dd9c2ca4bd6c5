"""Middleware of the dashboard."""

from django.template.loader import render_to_string

from workspace.models import Membership


class MethodNotAllowedPageMiddleware:
    """Render templates/405.html for an empty 405 response, in the site layout.

    Django's require_http_methods returns 405 with an empty body for PUT,
    DELETE, PATCH and OPTIONS on the dashboard pages. Responses with a body
    of their own, like the ingestion API's JSON errors, are kept.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 405 or response.streaming or response.content:
            return response

        allowed = [method.strip() for method in response.get("Allow", "").split(",")]
        _set_project(request)
        context = {"method": request.method, "allowed_methods": allowed}
        response.content = render_to_string("405.html", context, request=request)
        response["Content-Type"] = "text/html; charset=utf-8"
        return response


def _set_project(request):
    """Set request.project for the layout if the URL names a project of the user.

    The 405 response comes before the view's own access check, so this looks
    the membership up. For an outsider the page names no project, as a 404
    page does.
    """
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("project_slug") if match else None
    user = getattr(request, "user", None)
    if not slug or user is None or not user.is_authenticated:
        return
    membership = (
        Membership.objects.select_related("project")
        .filter(user=user, project__slug=slug)
        .first()
    )
    if membership is not None:
        request.membership = membership
        request.project = membership.project
