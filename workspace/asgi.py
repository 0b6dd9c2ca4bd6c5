"""ASGI entry point: the gateway's data plane in front of Django.

Requests under /gateway/ are answered by gateway.app.GatewayApp without
Django's request cycle, which keeps the gateway's added latency low; every
other request goes to Django. GatewayApp also serves the ASGI lifespan, so
batched usage events are flushed when the server shuts down.
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workspace.settings")

django_application = get_asgi_application()
if settings.DEBUG:
    # Development only, as runserver does; production serves STATIC_ROOT
    # from the reverse proxy.
    django_application = ASGIStaticFilesHandler(django_application)

# Loaded by dotted path after Django is set up, because the gateway imports
# models and workspace does not import the other apps.
GatewayApp = import_string("gateway.app.GatewayApp")

application = GatewayApp(fallback=django_application)
