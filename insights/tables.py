"""django-tables2 tables of the insights pages, over lists of report rows."""

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from insights.templatetags.insights_format import count, percent, usd

NUMERIC = {"th": {"class": "numeric"}, "td": {"class": "numeric"}}


def sortable(rows):
    """Add sort keys so rows with unknown cost or no requests sort as lowest."""
    for row in rows:
        row["cost_sort"] = -1 if row["cost"] is None else row["cost"]
        for name in ("error_rate", "request_share", "cost_share"):
            value = row.get(name)
            row[f"{name}_sort"] = -1 if value is None else value
    return rows


class CountColumn(tables.Column):
    """A right-aligned number column. Its first header click sorts largest first."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", NUMERIC)
        kwargs.setdefault("initial_sort_descending", True)
        super().__init__(*args, **kwargs)

    def render(self, value):
        return count(value)


class PercentColumn(CountColumn):
    def render(self, value):
        return percent(value)


class CostColumn(CountColumn):
    # None is an unknown cost, which reads "unknown", not the "—" of no data.
    empty_values = ()

    def render(self, value, record):
        text = usd(value)
        if record.get("cost_is_partial"):
            return format_html(
                '{} <span class="muted" title="Some requests have no price">+ unknown</span>',
                text,
            )
        if value is None:
            return format_html('<span class="muted">{}</span>', text)
        return text


class UsageTable(tables.Table):
    # Cost comes right after the request counts: the tables are ranked by
    # it, so it stays on screen when a narrow window cuts off the token
    # columns.
    requests = CountColumn()
    errors = CountColumn()
    error_rate = PercentColumn(order_by="error_rate_sort")
    cost = CostColumn(order_by="cost_sort")
    prompt_tokens = CountColumn(verbose_name="Prompt tokens")
    cached_tokens = CountColumn(verbose_name="Cached")
    completion_tokens = CountColumn(verbose_name="Completion tokens")
    reasoning_tokens = CountColumn(verbose_name="Reasoning")

    class Meta:
        orderable = True
        order_by = ("-cost",)
        empty_text = "No usage in this range."


class KeyTable(UsageTable):
    name = tables.Column(verbose_name="Key")
    prefix = tables.Column(verbose_name="Prefix", orderable=False)
    status = tables.Column()

    class Meta(UsageTable.Meta):
        sequence = ("name", "prefix", "status", "...")

    def render_prefix(self, value):
        return format_html("<code>{}…</code>", value) if value else "—"

    def render_status(self, value):
        if not value:
            return "—"
        return format_html(
            '<span class="badge {}">{}</span>', value, value.capitalize()
        )


class ModelTable(UsageTable):
    name = tables.Column(verbose_name="Model")

    class Meta(UsageTable.Meta):
        sequence = ("name", "...")


class ApplicationTable(UsageTable):
    name = tables.Column(verbose_name="Application")
    request_share = PercentColumn(
        verbose_name="Share of requests", order_by="request_share_sort"
    )
    cost_share = PercentColumn(verbose_name="Share of cost", order_by="cost_share_sort")

    class Meta(UsageTable.Meta):
        sequence = ("name", "requests", "request_share", "cost", "cost_share", "...")
        exclude = ("prompt_tokens", "cached_tokens", "reasoning_tokens")

    def __init__(self, *args, project_slug, query_string="", **kwargs):
        self.project_slug = project_slug
        self.query_string = query_string
        super().__init__(*args, **kwargs)

    def render_name(self, value, record):
        url = reverse(
            "insights:application", args=[self.project_slug, record["application_id"]]
        )
        if self.query_string:
            url = f"{url}?{self.query_string}"
        deleted = (
            format_html(' <span class="badge revoked">Deleted</span>')
            if record.get("deleted")
            else ""
        )
        return format_html('<a href="{}">{}</a>{}', url, value, deleted)
