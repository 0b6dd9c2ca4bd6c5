"""Django routes under /gateway/, reached only without the ASGI entry point.

workspace.asgi handles /gateway/ itself; under runserver or a WSGI server
the gateway is not available, and clients get an OpenAI error body that
says so instead of an HTML 404.
"""

from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

app_name = "gateway"


@csrf_exempt
def asgi_required(request, path=""):
    error = {
        "message": "The gateway is served by the ASGI application "
        "(uvicorn workspace.asgi:application), not by this server.",
        "type": "server_error",
        "param": None,
        "code": "gateway_not_served",
    }
    return JsonResponse({"error": error}, status=503)


urlpatterns = [re_path(r"^(?P<path>.*)$", asgi_required, name="asgi-required")]
