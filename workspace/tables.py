"""django-tables2 tables for providers, App LLM Proxies and API keys."""

import re
from urllib.parse import urlencode

import django_tables2 as tables
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from workspace.models import APIKey, AppProxy, Provider
from workspace.validators import redact_url_user_info

DATETIME_FORMAT = "Y-m-d H:i"


class WhenColumn(tables.DateTimeColumn):
    """A date over its time of day and zone (UTC), so wide tables stay narrow.

    The first click on its header sorts the latest first. The zone is shown
    because Insights pages use the browser's zone instead.
    """

    def __init__(self, *args, time_format="H:i T", **kwargs):
        self.time_format = time_format
        kwargs.setdefault("attrs", {"td": {"class": "when"}})
        kwargs.setdefault("initial_sort_descending", True)
        super().__init__(*args, **kwargs)

    def render(self, value):
        if value is None:
            return self.default
        value = timezone.localtime(value)
        return format_html(
            '{}<br><span class="muted">{}</span>',
            date_format(value, "Y-m-d"),
            date_format(value, self.time_format),
        )


def render_path_breaking_at_slashes(text, code=False):
    """Return a URL or path as HTML that may wrap only after a slash.

    A line break inside a host, port or path segment ("127.0.0.1:850" over
    "1") reads as a different value, so each run up to and including its
    slashes is kept on one line (the .path-segments rule in app.css).
    """
    segments = re.findall(r"[^/]*/+|[^/]+", text)
    html = format_html_join(
        mark_safe("<wbr>"), "<span>{}</span>", ((s,) for s in segments)
    )
    if code:
        return format_html('<code class="path-segments">{}</code>', html)
    return format_html('<span class="mono path-segments">{}</span>', html)


class ProviderTable(tables.Table):
    name = tables.Column(linkify=False)
    context_path = tables.Column(verbose_name="Context path")
    # Vendor names wrap only between words, so the URL column beside them
    # cannot squeeze "Anthropic" to "Anthropi" over "c".
    vendor = tables.Column(attrs={"td": {"class": "words"}})
    base_url = tables.Column(verbose_name="Base URL")
    model_count = tables.Column(
        verbose_name="Models",
        attrs={"td": {"class": "numeric"}, "th": {"class": "numeric"}},
        initial_sort_descending=True,
    )
    credential = tables.Column(
        accessor="credential_encrypted", verbose_name="Credential", orderable=False
    )
    updated_at = WhenColumn(verbose_name="Updated")

    class Meta:
        model = Provider
        fields = []
        sequence = (
            "name",
            "context_path",
            "vendor",
            "base_url",
            "model_count",
            "credential",
            "updated_at",
        )
        empty_text = "No LLM providers yet."

    def __init__(self, *args, project_slug, **kwargs):
        self.project_slug = project_slug
        super().__init__(*args, **kwargs)

    def render_name(self, record):
        url = reverse("workspace:provider-edit", args=[self.project_slug, record.pk])
        return format_html('<a href="{}">{}</a>', url, record.name)

    def render_context_path(self, value):
        return render_path_breaking_at_slashes(f"/gateway/{value}/v1/", code=True)

    def render_vendor(self, record):
        return record.get_vendor_display()

    def render_base_url(self, record):
        base_url = render_path_breaking_at_slashes(
            redact_url_user_info(record.base_url)
        )
        if record.api_version:
            return format_html(
                '{}<br><span class="muted">api-version {}</span>',
                base_url,
                record.api_version,
            )
        return base_url

    def render_credential(self, value):
        return "Stored, encrypted" if value else "None"


class AppProxyTable(tables.Table):
    name = tables.Column()
    context_path = tables.Column(verbose_name="Context path")
    provider = tables.Column(accessor="provider__name", verbose_name="Provider")
    allowed_models = tables.Column(verbose_name="Allowed models", orderable=False)
    max_tokens = tables.Column(
        verbose_name="Max tokens",
        attrs={"td": {"class": "numeric"}, "th": {"class": "numeric"}},
        default="No limit",
        initial_sort_descending=True,
    )
    updated_at = WhenColumn(verbose_name="Updated")

    class Meta:
        model = AppProxy
        fields = []
        sequence = (
            "name",
            "context_path",
            "provider",
            "allowed_models",
            "max_tokens",
            "updated_at",
        )
        empty_text = "No App LLM Proxies yet."

    def __init__(self, *args, project_slug, **kwargs):
        self.project_slug = project_slug
        super().__init__(*args, **kwargs)

    def render_name(self, record):
        url = reverse("workspace:proxy-edit", args=[self.project_slug, record.pk])
        return format_html('<a href="{}">{}</a>', url, record.name)

    def render_context_path(self, value):
        return render_path_breaking_at_slashes(f"/gateway/{value}/v1/", code=True)

    def render_allowed_models(self, value):
        return ", ".join(value) if value else "All models of the provider"

    def value_allowed_models(self, value):
        return ", ".join(value)


def render_status_badge(key):
    status = key.status
    return format_html('<span class="badge {}">{}</span>', status, status.label)


def render_target(key):
    kind = "Provider" if key.provider_id else "Proxy"
    return format_html('{} <span class="muted">({})</span>', key.target.name, kind)


class APIKeyTable(tables.Table):
    name = tables.Column()
    target = tables.Column(
        accessor="pk",
        verbose_name="Provider or proxy",
        order_by=("provider__name", "proxy__name"),
    )
    status = tables.Column(accessor="pk", verbose_name="Status", orderable=False)
    application = tables.Column(
        accessor="mapping__application__name",
        verbose_name="Application",
        default="—",
    )
    created_by = tables.Column(
        accessor="created_by__username", verbose_name="Creator", default="—"
    )
    created_at = WhenColumn(verbose_name="Created")
    updated_at = WhenColumn(verbose_name="Updated")
    expires_at = WhenColumn(verbose_name="Expires", default="Never")
    last_used_at = WhenColumn(verbose_name="Last used", default="Never")
    actions = tables.Column(
        accessor="pk", verbose_name="", orderable=False, exclude_from_export=True
    )

    class Meta:
        model = APIKey
        fields = []
        sequence = (
            "name",
            "target",
            "status",
            "application",
            "created_by",
            "created_at",
            "updated_at",
            "expires_at",
            "last_used_at",
            "actions",
        )
        empty_text = "No API keys match."

    def __init__(self, *args, project_slug, can_edit, **kwargs):
        self.project_slug = project_slug
        self.can_edit = can_edit
        super().__init__(*args, **kwargs)
        if not can_edit:
            self.columns.hide("actions")

    def render_name(self, record):
        return format_html(
            '{}<br><code class="muted">{}…</code>', record.name, record.prefix
        )

    def render_target(self, record):
        return render_target(record)

    def render_status(self, record):
        return render_status_badge(record)

    def render_application(self, record):
        application = record.mapping.application
        url = reverse(
            "genai_apps:application-detail", args=[self.project_slug, application.pk]
        )
        return format_html('<a href="{}">{}</a>', url, application.name)

    def render_actions(self, record):
        if record.revoked_at is not None:
            return ""
        revoke_url = reverse(
            "workspace:key-revoke", args=[self.project_slug, record.pk]
        )
        # The confirmation returns to this list with its filters, sorting
        # and page. An htmx request for the table has the query string of
        # the URL that it pushes.
        request = getattr(self, "request", None)
        if request is not None:
            revoke_url += "?" + urlencode({"next": request.get_full_path()})
        return render_to_string(
            "workspace/_revoke_button.html", {"revoke_url": revoke_url}
        )
