"""Rendering shared by the project pages: whole pages or htmx fragments."""

from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


def render_page(request, template_name, context, partial=None, status=200):
    """Render the page, or only its named partial for an htmx request.

    The partial is a django-template-partials `partialdef` in the page
    template, so the fragment and the page never drift apart.
    """
    if partial and getattr(request, "htmx", False):
        template_name = f"{template_name}#{partial}"
    return render(request, template_name, context, status=status)


def safe_next_url(request, default):
    """Return the request's `next` URL if it stays on this site, else default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
