import datetime
import functools
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_GET
from django_tables2 import RequestConfig

from genai_apps.models import GenAIApplication
from insights import export, reports
from insights.forms import (
    RANGE_CHOICES,
    TIMEZONE_COOKIE,
    describe_value,
    make_period,
    read_options,
)
from insights.tables import ApplicationTable, KeyTable, ModelTable, sortable
from insights.templatetags.insights_format import usd
from workspace.access import get_membership
from workspace.models import APIKey
from workspace.pagination import paginate_options

TABLE_ROWS_PER_PAGE = 25

CHART_TITLES = {
    "volume": (
        "Request volume",
        "Requests per bucket: successful and errors.",
        "stacked",
    ),
    "tokens": (
        "Tokens by kind",
        "Prompt tokens split into uncached, cached and cache writes; completion split into output and reasoning.",
        "stacked",
    ),
    "latency": (
        "Latency and time to first token",
        "Percentiles in milliseconds from merged per-bucket histograms.",
        "line",
    ),
    "errors_by_type": (
        "Errors by type",
        "Failed requests per bucket by error type.",
        "stacked",
    ),
    "errors_by_status": (
        "Errors by HTTP status",
        "Failed requests in the range by HTTP status code.",
        "bar",
    ),
    "cost_by_model": (
        "Cost by model",
        "Known cost in USD per bucket; requests without a price are not included.",
        "stacked",
    ),
    "cost_by_application": (
        "Cost by application",
        "Known cost in USD per bucket for the largest applications.",
        "stacked",
    ),
    "requests_by_application": (
        "Applications by requests",
        "The applications with the most requests in the range.",
        "hbar",
    ),
    "cost_ranking": (
        "Applications by cost",
        "The applications with the highest known cost in the range.",
        "hbar",
    ),
}


# Charts whose values are USD (floats for display), shown as "$0.0231" in
# their tables.
COST_CHARTS = {"cost_by_model", "cost_by_application", "cost_ranking"}


def _usd_cell(value):
    return "—" if value is None else usd(Decimal(repr(value)))


def _count_cell(value):
    return "—" if value is None else value


def _chart(name, data):
    """Return template context for one chart and its table alternative.

    The table is built here rather than in a template loop, because a 90-day
    page has thousands of cells and template loops render them slowly.
    """
    title, description, kind = CHART_TITLES[name]
    first_header = {"errors_by_status": "HTTP status"}.get(
        name, "Name" if kind == "hbar" else "Bucket"
    )
    cell = _usd_cell if name in COST_CHARTS else _count_cell
    # Labels are escaped; cells are formatted numbers, so they need no escaping.
    header = "".join(
        f'<th scope="col" class="numeric">{escape(d["label"])}</th>'
        for d in data["datasets"]
    )
    rows = []
    for i, label in enumerate(data["labels"]):
        cells = "".join(
            f'<td class="numeric">{cell(d["data"][i])}</td>' for d in data["datasets"]
        )
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
    table = mark_safe(  # noqa: S308 - every label is escaped above
        f'<table class="table compact"><thead><tr><th scope="col">{first_header}</th>'
        f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return {
        "name": name,
        "title": title,
        "description": description,
        "kind": kind,
        "data": {**data, "kind": kind},
        # A range without usage still has its time buckets, all zero or None.
        "has_data": any(value for d in data["datasets"] for value in d["data"]),
        "table": table,
    }


def _key_names(project, key_ids=None):
    """Return {key id: (name, prefix, status)} for the project's keys, or those of key_ids."""
    keys = APIKey.objects.filter(project=project)
    if key_ids is not None:
        keys = keys.filter(pk__in=key_ids)
    now = timezone.now()
    return {
        key.pk: (key.name, key.prefix, key.status_at(now))
        for key in keys.only("pk", "name", "prefix", "revoked_at", "expires_at")
    }


def _application_names(project):
    return {
        pk: (name, deleted_at is not None)
        for pk, name, deleted_at in GenAIApplication.objects.filter(
            project=project
        ).values_list("pk", "name", "deleted_at")
    }


def _range_query(request, form, range_key, tz_name):
    """Return the query string of the range shown, for links to other pages.

    It has the range, the dates of a custom range and the timezone if the
    URL set one, and nothing else, because table sorting and pages belong to
    one page.
    """
    query = QueryDict(mutable=True)
    query["range"] = range_key
    if range_key == "custom":
        query["start"] = form.cleaned_data["start"].isoformat()
        query["end"] = form.cleaned_data["end"].isoformat()
    if request.GET.get("tz"):
        query["tz"] = tz_name
    return query


def _kept_parameters(request, *also_dropped):
    """Return [(name, value)] of this URL that a new range keeps: table sorting.

    The range, the dates of a custom range, table pages, empty values and
    also_dropped are left out.
    """
    dropped = {"range", "start", "end", "page", *also_dropped}
    return [
        (name, value)
        for name, values in request.GET.lists()
        if name not in dropped and not name.endswith("-page")
        for value in values
        if value
    ]


def _preset_query(request, range_key):
    """Return the query string of a preset link: this URL with another range."""
    query = QueryDict(mutable=True)
    query["range"] = range_key
    for name, value in _kept_parameters(request):
        query.appendlist(name, value)
    return query.urlencode()


def _range_context(request, form, range_key, tz_name, period, now):
    presets = []
    for key, label in RANGE_CHOICES[:-1]:
        presets.append(
            {
                "key": key,
                "label": label,
                "query": _preset_query(request, key),
                "active": key == range_key,
            }
        )
    ends_now = range_key != "custom"
    if ends_now:
        # A preset ends at the 15-minute bucket boundary after the current
        # time, which has not come yet, so the summary shows the current time.
        local_end = now.astimezone(period.tz)
    else:
        local_end = period.end.astimezone(period.tz)
        if local_end.time() == datetime.time():
            local_end -= datetime.timedelta(microseconds=1)
    return {
        "form": form,
        "range_key": range_key,
        "tz_name": tz_name,
        "tz_from_url": bool(request.GET.get("tz")),
        "timezone_cookie": TIMEZONE_COOKIE,
        "presets": presets,
        # Hidden in the form, so Apply keeps the sorting without JavaScript.
        "kept_parameters": _kept_parameters(request, "tz"),
        # Formatted here: the date filter would convert to the server's zone.
        "period_start": period.start.astimezone(period.tz).strftime("%Y-%m-%d %H:%M"),
        "period_end": local_end.strftime("%Y-%m-%d %H:%M"),
        "period_ends_now": ends_now,
        "granularity": period.granularity,
        "granularity_label": "hourly" if period.granularity == "hour" else "daily",
        "query_string": _range_query(request, form, range_key, tz_name).urlencode(),
    }


@require_GET
@login_required
def overview(request, project_slug):
    """Project overview: usage of every application, ranked, and unattached keys."""
    membership = get_membership(request, project_slug)
    project = membership.project

    form, range_key, tz_name = read_options(request)
    now = timezone.now()
    period = make_period(form, range_key, tz_name, now)

    report = reports.overview_report(project, period, _application_names(project))
    range_context = _range_context(request, form, range_key, tz_name, period, now)
    table = ApplicationTable(
        sortable(report.application_rows),
        project_slug=project.slug,
        query_string=range_context["query_string"],
        prefix="apps-",
    )
    RequestConfig(request, paginate=paginate_options(TABLE_ROWS_PER_PAGE)).configure(
        table
    )

    charts = [
        _chart(name, report.charts[name])
        for name in (
            "volume",
            "cost_by_application",
            "requests_by_application",
            "cost_ranking",
            "tokens",
            "latency",
            "errors_by_type",
            "errors_by_status",
        )
    ]
    context = {
        **range_context,
        "nav_section": "insights",
        "project": project,
        "can_edit": membership.can_edit,
        "report": report,
        "charts": charts,
        "application_table": table,
        "unattached_request_share": reports.share(
            report.unattached.requests, report.total.requests
        ),
        "unattached_cost_share": reports.share(
            report.unattached.cost, report.total.cost
        ),
    }
    return render(request, "insights/overview.html", context)


@require_GET
@login_required
def application(request, project_slug, application_id):
    """Show one application's usage: headline figures, charts, and tables by key and model."""
    membership = get_membership(request, project_slug)
    project = membership.project
    app = get_object_or_404(GenAIApplication, project=project, pk=application_id)

    form, range_key, tz_name = read_options(request)
    now = timezone.now()
    period = make_period(form, range_key, tz_name, now)

    report = reports.application_report(
        app, period, functools.partial(_key_names, project)
    )
    key_table = KeyTable(sortable(report.key_rows), prefix="keys-")
    model_table = ModelTable(sortable(report.model_rows), prefix="models-")
    config = RequestConfig(request, paginate=paginate_options(TABLE_ROWS_PER_PAGE))
    config.configure(key_table)
    config.configure(model_table)

    charts = [
        _chart(name, report.charts[name])
        for name in (
            "volume",
            "tokens",
            "latency",
            "cost_by_model",
            "errors_by_type",
            "errors_by_status",
        )
    ]
    context = {
        **_range_context(request, form, range_key, tz_name, period, now),
        "nav_section": "insights",
        "project": project,
        "application": app,
        "report": report,
        "charts": charts,
        "key_table": key_table,
        "model_table": model_table,
    }
    return render(request, "insights/application.html", context)


OVERVIEW_EXPORT_TABLES = ("series", "applications", "events")
APPLICATION_EXPORT_TABLES = ("series", "keys", "models", "events")


def _local_days(period):
    """Return the first and the last day of the period in its timezone, both inclusive."""
    first_day = period.start.astimezone(period.tz).date()
    # The end is exclusive, so a period that ends at midnight ends the day before.
    last_moment = period.end - datetime.timedelta(microseconds=1)
    return first_day, last_moment.astimezone(period.tz).date()


def _export_errors(kind, form, tables):
    """Return a line "parameter: message" for each invalid export option."""
    errors = []
    if kind not in tables:
        errors.append(
            f"table: Unknown table {describe_value(kind)}. "
            f"Use {', '.join(tables[:-1])} or {tables[-1]}."
        )
    for field, messages in form.errors.items():
        # The form's own errors concern the dates of a custom range.
        parameter = "start, end" if field == NON_FIELD_ERRORS else field
        errors.extend(f"{parameter}: {message}" for message in messages)
    return errors


def _export(request, project, app):
    tables = OVERVIEW_EXPORT_TABLES if app is None else APPLICATION_EXPORT_TABLES
    kind = request.GET.get("table") or "series"
    form, range_key, tz_name = read_options(request)
    errors = _export_errors(kind, form, tables)
    if errors:
        # A file of the default range, named like the requested one, would
        # pass for the requested data. A page shows these errors instead.
        return HttpResponseBadRequest(
            "Invalid export options:\n" + "".join(f"{line}\n" for line in errors),
            content_type="text/plain; charset=utf-8",
        )

    period = make_period(form, range_key, tz_name, timezone.now())
    stream_csv = functools.partial(
        export.stream_csv, asynchronous=isinstance(request, ASGIRequest)
    )
    subject = f"{slugify(app.name) or 'application'}-{app.pk}" if app else "overview"
    first_day, last_day = _local_days(period)
    stem = f"{project.slug}-{subject}-{kind}-{first_day:%Y%m%d}-{last_day:%Y%m%d}.csv"

    if kind == "events":
        rows = export.event_rows(
            period,
            project.pk,
            app.pk if app else None,
            _key_names(project),
            _application_names(project),
        )
        return stream_csv(stem, export.EVENT_HEADER, rows)
    if app is None:
        report = reports.overview_report(project, period, _application_names(project))
    else:
        report = reports.application_report(
            app, period, functools.partial(_key_names, project)
        )
    if kind == "series":
        header = [f"bucket ({tz_name})", *export.SERIES_HEADER[1:]]
        return stream_csv(stem, header, export.series_rows(report))
    if kind == "keys":
        return stream_csv(
            stem,
            export.KEY_BREAKDOWN_HEADER,
            export.breakdown_rows(_by_cost(report.key_rows), with_prefix=True),
        )
    if kind == "models":
        rows = _by_cost(report.model_rows)
    else:
        rows = _by_cost(report.application_rows)
        if report.unattached.requests:
            rows.append(reports.unattached_row(report.unattached, report.total))
    return stream_csv(stem, export.BREAKDOWN_HEADER, export.breakdown_rows(rows))


def _by_cost(rows):
    """Return rows in the tables' default order: highest cost first, unknown cost last."""
    return sorted(
        rows,
        key=lambda row: (
            row["cost"] is None,
            -(row["cost"] or 0),
            -row["requests"],
            row["name"],
        ),
    )


@require_GET
@login_required
def overview_export(request, project_slug):
    """CSV of the overview: ?table=series, applications or events."""
    membership = get_membership(request, project_slug)
    return _export(request, membership.project, None)


@require_GET
@login_required
def application_export(request, project_slug, application_id):
    """CSV of an application page: ?table=series, keys, models or events."""
    membership = get_membership(request, project_slug)
    app = get_object_or_404(
        GenAIApplication, project=membership.project, pk=application_id
    )
    return _export(request, membership.project, app)
