"""django-tables2 tables for GenAI applications, their keys and their history."""

from urllib.parse import urlencode

import django_tables2 as tables
from django.template.defaultfilters import truncatechars
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from genai_apps.models import GenAIApplication, KeyMappingEvent
from workspace.tables import WhenColumn, render_status_badge, render_target

NUMERIC = {"td": {"class": "numeric"}, "th": {"class": "numeric"}}


class ApplicationTable(tables.Table):
    name = tables.Column()
    description = tables.Column(default="—", orderable=False)
    key_count = tables.Column(
        verbose_name="Keys", attrs=NUMERIC, initial_sort_descending=True
    )
    created_at = WhenColumn(verbose_name="Created")
    attach = tables.Column(
        accessor="pk", verbose_name="", orderable=False, exclude_from_export=True
    )

    class Meta:
        model = GenAIApplication
        fields = []
        sequence = ("name", "description", "key_count", "created_at", "attach")
        empty_text = "No applications match the search."
        attrs = {"class": "table", "id": "application-table"}

    def __init__(self, *args, project_slug, attach_key=None, **kwargs):
        # With an attach_key, the last column opens each application's key
        # picker, searched for that key and with it ticked.
        self.project_slug = project_slug
        self.attach_key = attach_key
        super().__init__(*args, **kwargs)
        if attach_key is None:
            self.columns.hide("attach")

    def render_name(self, record):
        url = reverse(
            "genai_apps:application-detail", args=[self.project_slug, record.pk]
        )
        return format_html('<a href="{}">{}</a>', url, record.name)

    def render_attach(self, record):
        url = reverse(
            "genai_apps:application-attach-keys", args=[self.project_slug, record.pk]
        )
        query = urlencode({"q": self.attach_key.prefix, "keys": self.attach_key.pk})
        return format_html(
            '<a class="button small primary" href="{}?{}">Attach here</a>', url, query
        )

    def render_description(self, value):
        return format_html(
            '<span title="{}">{}</span>', value, truncatechars(value, 120)
        )


class MappedKeyTable(tables.Table):
    """The keys of one application; rows are KeyMapping objects."""

    name = tables.Column(accessor="key__name", verbose_name="Key")
    target = tables.Column(
        accessor="key__pk",
        verbose_name="Provider or proxy",
        order_by=("key__provider__name", "key__proxy__name"),
    )
    status = tables.Column(accessor="key__pk", verbose_name="Status", orderable=False)
    created_by = tables.Column(
        accessor="key__created_by__username", verbose_name="Key creator", default="—"
    )
    created_at = WhenColumn(accessor="key__created_at", verbose_name="Created")
    updated_at = WhenColumn(accessor="key__updated_at", verbose_name="Updated")
    expires_at = WhenColumn(
        accessor="key__expires_at",
        verbose_name="Expires",
        default="Never",
    )
    actions = tables.Column(accessor="pk", verbose_name="", orderable=False)

    class Meta:
        fields = []
        sequence = (
            "name",
            "target",
            "status",
            "created_by",
            "created_at",
            "updated_at",
            "expires_at",
            "actions",
        )
        attrs = {"class": "table", "id": "mapped-keys"}
        empty_text = "No API keys attached yet."

    def __init__(self, *args, application, can_edit, **kwargs):
        self.application = application
        super().__init__(*args, **kwargs)
        if not can_edit:
            self.columns.hide("actions")

    def render_name(self, record):
        return format_html(
            '{}<br><code class="muted">{}…</code>', record.key.name, record.key.prefix
        )

    def render_target(self, record):
        return render_target(record.key)

    def render_status(self, record):
        return render_status_badge(record.key)

    def render_actions(self, record):
        return render_to_string(
            "genai_apps/_remove_button.html",
            {"key": record.key, "application": self.application},
        )


class HistoryTable(tables.Table):
    created_at = WhenColumn(verbose_name="When", time_format="H:i:s T")
    action = tables.Column(verbose_name="Action")
    key = tables.Column(accessor="key_name", verbose_name="Key")
    application_name = tables.Column(verbose_name="Application")
    actor = tables.Column(accessor="actor__username", verbose_name="Who", default="—")
    source = tables.Column(verbose_name="Through")

    class Meta:
        model = KeyMappingEvent
        fields = []
        sequence = (
            "created_at",
            "action",
            "key",
            "application_name",
            "actor",
            "source",
        )
        attrs = {"class": "table", "id": "mapping-history"}
        empty_text = "No keys have been attached or removed yet."
        order_by = ("-created_at",)

    def render_action(self, record):
        return record.get_action_display()

    def render_key(self, record):
        return format_html(
            '{} <code class="muted">{}…</code>', record.key_name, record.key_prefix
        )

    def render_source(self, record):
        return record.get_source_display()
