"""Page data for the insights pages, composed from insights.queries.

A Report contains what one page shows for a range: headline figures with the
previous period, chart series and table rows. Views turn it into context;
the CSV export reads the same Report, so the file matches the screen.
"""

import dataclasses
import datetime
from decimal import Decimal

from insights import histograms, queries
from insights.models import ErrorType, HistogramMetric, KeyRollup

LATENCY = HistogramMetric.LATENCY
TTFT = HistogramMetric.TTFT
ERROR_LABELS = dict(ErrorType.choices)
# The overview's charts show the largest applications by name, the rest summed.
CHART_APPLICATIONS = 6


@dataclasses.dataclass(frozen=True)
class Period:
    start: datetime.datetime
    end: datetime.datetime
    tz: datetime.tzinfo
    granularity: str

    @property
    def previous(self):
        length = self.end - self.start
        return Period(self.start - length, self.start, self.tz, self.granularity)


@dataclasses.dataclass
class Figure:
    """A headline number and its change against the previous period."""

    label: str
    value: object
    previous: object
    kind: str = "count"
    # True when a rise is bad (errors, latency, cost), for the colour of the change.
    rise_is_bad: bool = False
    note: str = ""

    @property
    def change(self):
        """The change against the previous period, or None when it has no meaning.

        For rates (kind "percent") it is the difference in percentage points
        as a fraction (0.004 is +0.4 pp), because a relative change of a rate
        reads as points. For everything else it is the relative change, None
        when either side is missing or the previous value is zero.
        """
        if self.kind == "percent":
            if self.value is None or self.previous is None:
                return None
            return float(self.value) - float(self.previous)
        if self.value is None or self.previous in (None, 0):
            return None
        return (float(self.value) - float(self.previous)) / float(self.previous)


def _percentile(distribution, q):
    return distribution.percentile(q) if distribution.count else None


def headline(current, previous, current_dist, previous_dist):
    cost_note = ""
    if current.cost_is_partial:
        count = current.unpriced_requests
        cost_note = (
            f"{count:,} {'request has' if count == 1 else 'requests have'} no price"
        )
    elif current.requests and current.cost is None:
        cost_note = "No price for these models"
    return [
        Figure("Requests", current.requests, previous.requests),
        Figure("Prompt tokens", current.prompt_tokens, previous.prompt_tokens),
        Figure("Cached tokens", current.cached_tokens, previous.cached_tokens),
        Figure(
            "Completion tokens", current.completion_tokens, previous.completion_tokens
        ),
        Figure("Reasoning tokens", current.reasoning_tokens, previous.reasoning_tokens),
        Figure(
            "Cost",
            current.cost,
            previous.cost,
            kind="cost",
            rise_is_bad=True,
            note=cost_note,
        ),
        Figure(
            "Error rate",
            current.error_rate,
            previous.error_rate,
            kind="percent",
            rise_is_bad=True,
        ),
        Figure(
            "p50 latency",
            _percentile(current_dist[LATENCY], 0.5),
            _percentile(previous_dist[LATENCY], 0.5),
            kind="ms",
            rise_is_bad=True,
        ),
        Figure(
            "p95 latency",
            _percentile(current_dist[LATENCY], 0.95),
            _percentile(previous_dist[LATENCY], 0.95),
            kind="ms",
            rise_is_bad=True,
        ),
        Figure(
            "p50 TTFT",
            _percentile(current_dist[TTFT], 0.5),
            _percentile(previous_dist[TTFT], 0.5),
            kind="ms",
            rise_is_bad=True,
        ),
    ]


def _usd(totals):
    """Known cost as a float for charts (display only), or None when unknown."""
    cost = totals.cost
    return None if cost is None else float(cost)


def _dataset(label, values):
    return {"label": label, "data": values}


@dataclasses.dataclass
class Report:
    period: Period
    buckets: list
    total: queries.Totals
    previous_total: queries.Totals
    figures: list
    charts: dict
    series_rows: list
    key_rows: list = dataclasses.field(default_factory=list)
    model_rows: list = dataclasses.field(default_factory=list)
    application_rows: list = dataclasses.field(default_factory=list)
    status_rows: list = dataclasses.field(default_factory=list)
    unattached: queries.Totals | None = None


# The page's one read of the rollup series is grouped by these, and the
# request, error and model charts are sums of its groups.
ERROR_DIMENSIONS = ("error_type", "status_code")


def _fold(by_group, buckets, key):
    """Sum {group: [Totals per bucket]} into {key(group): [Totals per bucket]}."""
    folded = {}
    for group, per_bucket in by_group.items():
        target = folded.get(key(group))
        if target is None:
            target = folded[key(group)] = [queries.Totals() for _ in buckets]
        for total, item in zip(target, per_bucket, strict=True):
            total.merge(item)
    return folded


def _error_charts(by_group, buckets, labels):
    """Return the error charts from series grouped by (..., error_type, status_code)."""
    by_error = _fold(by_group, buckets, lambda group: group[-2:])
    by_type = {}
    by_status = {}
    for (error_type, status_code), per_bucket in by_error.items():
        if not any(t.errors for t in per_bucket):
            continue
        name = ERROR_LABELS.get(error_type) or f"HTTP {status_code}"
        counts = by_type.setdefault(name, [0] * len(buckets))
        for i, t in enumerate(per_bucket):
            counts[i] += t.errors
        by_status[status_code] = by_status.get(status_code, 0) + sum(
            t.errors for t in per_bucket
        )
    type_chart = {
        "labels": labels,
        "datasets": [
            _dataset(name, values) for name, values in sorted(by_type.items())
        ],
    }
    status_rows = [
        {"status_code": code, "errors": count}
        for code, count in sorted(by_status.items())
    ]
    status_chart = {
        "labels": [str(row["status_code"]) for row in status_rows],
        "datasets": [_dataset("Errors", [row["errors"] for row in status_rows])],
    }
    return type_chart, status_chart, status_rows


def _common(project_id, period, application_id, by_group, buckets):
    """Build the Report parts shared by both pages.

    by_group is the series of the range grouped by columns that end with
    ERROR_DIMENSIONS.
    """
    labels = [b.label for b in buckets]
    per_bucket = _fold(by_group, buckets, lambda group: ()).get(())
    if per_bucket is None:
        per_bucket = [queries.Totals() for _ in buckets]
    total = queries.Totals()
    for t in per_bucket:
        total.merge(t)
    previous = queries.totals(
        project_id, period.previous.start, period.previous.end, application_id
    )[()]
    overall, dist_per_bucket = queries.distributions(
        project_id, buckets, application_id
    )
    previous_dist = queries.range_distribution(
        project_id, period.previous.start, period.previous.end, application_id
    )
    latency = [
        histograms.percentiles(d.counts, (0.5, 0.95)) for d in dist_per_bucket[LATENCY]
    ]
    latency_p50 = [p50 for p50, _ in latency]
    latency_p95 = [p95 for _, p95 in latency]
    ttft_p50 = [histograms.percentile(d.counts, 0.5) for d in dist_per_bucket[TTFT]]

    charts = {
        "volume": {
            "labels": labels,
            "datasets": [
                _dataset("Successful", [t.successes for t in per_bucket]),
                _dataset("Errors", [t.errors for t in per_bucket]),
            ],
        },
        "tokens": {
            "labels": labels,
            "datasets": [
                _dataset(
                    "Uncached prompt", [t.uncached_prompt_tokens for t in per_bucket]
                ),
                _dataset("Cached prompt", [t.cached_tokens for t in per_bucket]),
                _dataset("Cache write", [t.cache_write_tokens for t in per_bucket]),
                _dataset(
                    "Completion",
                    [t.output_tokens_excluding_reasoning for t in per_bucket],
                ),
                _dataset("Reasoning", [t.reasoning_tokens for t in per_bucket]),
            ],
        },
        "latency": {
            "labels": labels,
            "datasets": [
                _dataset("p50 latency (ms)", _rounded(latency_p50)),
                _dataset("p95 latency (ms)", _rounded(latency_p95)),
                _dataset("p50 TTFT (ms)", _rounded(ttft_p50)),
            ],
        },
    }
    type_chart, status_chart, status_rows = _error_charts(by_group, buckets, labels)
    charts["errors_by_type"] = type_chart
    charts["errors_by_status"] = status_chart

    series_rows = [
        {
            "bucket": b.label,
            "totals": t,
            "latency_p50": latency_p50[i],
            "latency_p95": latency_p95[i],
            "ttft_p50": ttft_p50[i],
        }
        for i, (b, t) in enumerate(zip(buckets, per_bucket, strict=True))
    ]
    report = Report(
        period=period,
        buckets=buckets,
        total=total,
        previous_total=previous,
        figures=headline(total, previous, overall, previous_dist),
        charts=charts,
        series_rows=series_rows,
        status_rows=status_rows,
    )
    return report, labels


def _buckets(period):
    return queries.make_buckets(period.start, period.end, period.tz, period.granularity)


def _rounded(values):
    return [None if v is None else round(v, 1) for v in values]


def _cost_by(series_by_group, labels, name_of, limit=None):
    """Return a stacked cost chart: one dataset per group, largest first."""
    ranked = sorted(
        series_by_group.items(),
        key=lambda item: -sum(t.cost_nanousd for t in item[1]),
    )
    datasets = []
    other = None
    for index, (group, per_bucket) in enumerate(ranked):
        if limit is not None and index >= limit:
            if other is None:
                other = [queries.Totals() for _ in labels]
            for i, t in enumerate(per_bucket):
                other[i].merge(t)
            continue
        datasets.append(_dataset(name_of(group), [_usd(t) for t in per_bucket]))
    if other is not None:
        datasets.append(_dataset("Other", [_usd(t) for t in other]))
    return {"labels": labels, "datasets": datasets}


def application_report(application, period, key_names):
    """Return the Report of one application's page.

    key_names(key_ids) returns {key id: (name, prefix, status)} for the keys
    table. It is called with the ids that have usage in the range only.
    """
    project_id = application.project_id
    buckets = _buckets(period)
    by_group = queries.series(
        project_id, buckets, application.pk, group_by=("model", *ERROR_DIMENSIONS)
    )
    report, labels = _common(project_id, period, application.pk, by_group, buckets)
    by_model = _fold(by_group, buckets, lambda group: group[:1])
    report.charts["cost_by_model"] = _cost_by(
        by_model, labels, lambda g: g[0] or "(no model)"
    )
    report.model_rows = [
        _row(name or "(no model)", _sum(per_bucket), report.total)
        for (name,), per_bucket in by_model.items()
    ]
    by_key = queries.totals(
        project_id,
        period.start,
        period.end,
        application.pk,
        group_by=("key_id",),
        table=KeyRollup,
    )
    report.key_rows = []
    names = key_names([key_id for (key_id,) in by_key])
    for (key_id,), totals in by_key.items():
        name, prefix, status = names.get(key_id, ("(deleted key)", "", ""))
        row = _row(name, totals, report.total)
        row.update({"key_id": key_id, "prefix": prefix, "status": status})
        report.key_rows.append(row)
    return report


def overview_report(project, period, application_names):
    """Return the Report of the project overview.

    application_names maps application id to (name, deleted); id 0 is usage
    from keys attached to no application.
    """
    buckets = _buckets(period)
    by_group, by_app = queries.series_and_totals(
        project.pk, buckets, ERROR_DIMENSIONS, "application_id"
    )
    report, labels = _common(project.pk, period, None, by_group, buckets)
    report.application_rows = []
    for (application_id,), totals in by_app.items():
        if application_id == 0:
            report.unattached = totals
            continue
        row = _row(_app_name(application_names, application_id), totals, report.total)
        row["application_id"] = application_id
        row["deleted"] = application_names.get(application_id, ("", True))[1]
        report.application_rows.append(row)
    # Only the largest applications get their own series; "Other" is the
    # project total minus theirs, so the chart reads few rollup rows.
    top = sorted(by_app, key=lambda key: -by_app[key].cost_nanousd)[:CHART_APPLICATIONS]
    top_ids = [key[0] for key in top]
    by_app_series = queries.series(
        project.pk,
        report.buckets,
        group_by=("application_id",),
        filters={"application_id__in": top_ids},
    )
    if len(by_app) > len(top):
        other = []
        for i, bucket_total in enumerate(report.series_rows):
            remainder = queries.Totals(bucket_total["totals"].values)
            for per_bucket in by_app_series.values():
                remainder.add([-v for v in per_bucket[i].values])
            other.append(remainder)
        by_app_series[("other",)] = other
    report.charts["cost_by_application"] = _cost_by(
        by_app_series,
        labels,
        lambda g: "Other" if g[0] == "other" else _app_name(application_names, g[0]),
    )
    if report.unattached is None:
        report.unattached = queries.Totals()
    ranked = sorted(report.application_rows, key=lambda r: -r["requests"])[
        :CHART_APPLICATIONS
    ]
    report.charts["requests_by_application"] = {
        "labels": [r["name"] for r in ranked],
        "datasets": [_dataset("Requests", [r["requests"] for r in ranked])],
    }
    by_cost = sorted(report.application_rows, key=lambda r: -(r["cost"] or 0))[
        :CHART_APPLICATIONS
    ]
    report.charts["cost_ranking"] = {
        "labels": [r["name"] for r in by_cost],
        "datasets": [_dataset("Cost (USD)", [float(r["cost"] or 0) for r in by_cost])],
    }
    return report


def unattached_row(totals, grand_total):
    """The row of usage from keys attached to no application."""
    return _row(_app_name({}, 0), totals, grand_total)


def _app_name(names, application_id):
    if application_id == 0:
        return "No application"
    return names.get(application_id, (f"Application {application_id}", True))[0]


def _sum(per_bucket):
    total = queries.Totals()
    for t in per_bucket:
        total.merge(t)
    return total


def share(part, whole):
    """Return part / whole as a fraction, or None when whole is zero or unknown."""
    if part is None or not whole:
        return None
    return float(part) / float(whole)


def _row(name, totals, grand_total):
    return {
        "name": name,
        "requests": totals.requests,
        "errors": totals.errors,
        "error_rate": totals.error_rate,
        "prompt_tokens": totals.prompt_tokens,
        "cached_tokens": totals.cached_tokens,
        "completion_tokens": totals.completion_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "cost": totals.cost,
        "cost_is_partial": totals.cost_is_partial,
        "unpriced_requests": totals.unpriced_requests,
        "request_share": share(totals.requests, grand_total.requests),
        "cost_share": share(totals.cost, grand_total.cost or Decimal(0)),
    }
