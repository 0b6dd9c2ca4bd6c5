"""Read usage for the insights pages, the CSV export and other apps.

Every read of usage goes through this module, and every function takes a
project and a time range, so another event store could stand behind it.
Reads use the rollups only. A range is split into pieces aligned to the
coarsest rollup level that fits (whole UTC days, then whole hours, then
15-minute buckets), so a 90-day UTC range reads 90 daily buckets, while a
day in UTC+05:30 reads 23 hourly and 4 quarter-hour buckets and still sums
exactly. Range edges must fall on 15-minute boundaries (see align_range).
"""

import bisect
import dataclasses
import datetime
import operator
import zoneinfo
from decimal import Decimal

from django.db import connection

from insights import histograms
from insights.models import (
    ALL_APPLICATIONS,
    HistogramMetric,
    RollupLevel,
    UsageHistogram,
    UsageRollup,
    nanousd_to_usd,
)
from insights.rollups import METRIC_NAMES, bucket_start

UTC = datetime.UTC
QUARTER = datetime.timedelta(minutes=15)
_LEVEL_STEPS = (
    (RollupLevel.DAY, datetime.timedelta(days=1)),
    (RollupLevel.HOUR, datetime.timedelta(hours=1)),
)


class Granularity:
    HOUR = "hour"
    DAY = "day"


class Totals:
    """Summed rollup metrics, with the figures the pages derive from them.

    The sums live in one list in METRIC_NAMES order, because pages add up
    thousands of rollup rows and list arithmetic is several times faster than
    attribute updates. Each metric is readable as an attribute.
    """

    __slots__ = ("values",)

    def __init__(self, values=None):
        self.values = [v or 0 for v in values] if values else [0] * len(METRIC_NAMES)

    def __repr__(self):
        return f"Totals({dict(zip(METRIC_NAMES, self.values, strict=True))})"

    def add(self, values):
        """Add metric sums in METRIC_NAMES order. None of them may be None."""
        self.values = list(map(operator.add, self.values, values))
        return self

    def merge(self, other):
        return self.add(other.values)

    @property
    def successes(self):
        return self.requests - self.errors

    @property
    def error_rate(self):
        """Errors per request as a fraction, or None when there were no requests."""
        if not self.requests:
            return None
        return self.errors / self.requests

    @property
    def cost(self):
        """Known cost in USD; None when nothing with a price cost anything.

        Requests without tokens (failed attempts) cost $0 whatever the price,
        so a range of unpriced requests and failures is unknown, not $0.
        """
        if self.unpriced_requests and not self.cost_nanousd:
            return None
        return nanousd_to_usd(self.cost_nanousd)

    @property
    def cost_is_partial(self):
        return self.unpriced_requests > 0 and self.cost_nanousd > 0

    @property
    def uncached_prompt_tokens(self):
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens

    @property
    def output_tokens_excluding_reasoning(self):
        return self.completion_tokens - self.reasoning_tokens


@dataclasses.dataclass(frozen=True)
class Bucket:
    start: datetime.datetime
    end: datetime.datetime
    label: str


for _index, _name in enumerate(METRIC_NAMES):
    setattr(Totals, _name, property(lambda self, i=_index: self.values[i]))


def get_timezone(name):
    """Return the ZoneInfo for an IANA name; raise ValueError if unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"Unknown timezone {name!r}; use an IANA name such as Europe/Berlin."
        ) from error


def ceil_to_quarter(moment):
    start = bucket_start(moment, RollupLevel.QUARTER_HOUR)
    return start if start == moment else start + QUARTER


def align_range(start, end):
    """Widen [start, end) outwards to 15-minute boundaries."""
    return bucket_start(start, RollupLevel.QUARTER_HOUR), ceil_to_quarter(end)


def granularity_for(start, end):
    return (
        Granularity.HOUR
        if end - start <= datetime.timedelta(days=7)
        else Granularity.DAY
    )


def make_buckets(start, end, tz, granularity):
    """Return the display buckets covering [start, end), cut in timezone tz.

    Daily buckets run from local midnight to local midnight, so they last 23
    or 25 hours on DST days. The first and last bucket are clipped to the range.
    """
    buckets = []
    if granularity == Granularity.DAY:
        day = start.astimezone(tz).date()
        while True:
            edge = datetime.datetime.combine(
                day, datetime.time(), tzinfo=tz
            ).astimezone(UTC)
            following = datetime.datetime.combine(
                day + datetime.timedelta(days=1), datetime.time(), tzinfo=tz
            ).astimezone(UTC)
            if edge >= end:
                break
            buckets.append(
                Bucket(max(edge, start), min(following, end), day.isoformat())
            )
            day += datetime.timedelta(days=1)
        return buckets
    local = start.astimezone(tz)
    edge = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    while edge < end:
        following = edge + datetime.timedelta(hours=1)
        buckets.append(
            Bucket(max(edge, start), min(following, end), _hour_label(edge, tz))
        )
        edge = following
    return buckets


def _hour_label(moment, tz):
    """Return the local hour of moment, with its UTC offset when the hour repeats.

    On the day clocks go back, 01:00 comes twice in America/New_York, and
    the offset (UTC-04:00, then UTC-05:00) distinguishes the two buckets.
    """
    local = moment.astimezone(tz)
    label = local.strftime("%Y-%m-%d %H:%M")
    if local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset():
        return label
    offset = local.strftime("%z")
    return f"{label} UTC{offset[:3]}:{offset[3:]}"


def split_by_level(start, end):
    """Split [start, end) into (level, piece_start, piece_end) aligned pieces."""
    pieces = []

    def split(a, b, steps):
        if a >= b:
            return
        if not steps:
            pieces.append((RollupLevel.QUARTER_HOUR, a, b))
            return
        level, step = steps[0]
        inner_start = bucket_start(a, level)
        if inner_start < a:
            inner_start += step
        inner_end = bucket_start(b, level)
        if inner_start < inner_end:
            split(a, inner_start, steps[1:])
            pieces.append((level, inner_start, inner_end))
            split(inner_end, b, steps[1:])
        else:
            split(a, b, steps[1:])

    split(start, end, _LEVEL_STEPS)
    return pieces


def _ranges_by_level(intervals):
    """Return {level: [(start, end), ...]}: the rollup buckets covering intervals."""
    by_level = {}
    for a, b in intervals:
        for level, piece_start, piece_end in split_by_level(a, b):
            ranges = by_level.setdefault(level, [])
            if ranges and ranges[-1][1] == piece_start:
                ranges[-1] = (ranges[-1][0], piece_end)
            else:
                ranges.append((piece_start, piece_end))
    return by_level


def _bucket_condition(intervals):
    """Return (SQL, params) selecting the rollup rows that cover intervals.

    One condition ORs every level's ranges, so a read is one statement. A
    row's bucket lies in exactly one piece, so no row is counted twice.
    """
    adapt = _adapt_datetime()
    parts = []
    params = []
    for level, ranges in _ranges_by_level(intervals).items():
        spans = " OR ".join(
            ["(bucket_start >= %s AND bucket_start < %s)"] * len(ranges)
        )
        parts.append(f"(level = %s AND ({spans}))")
        params.append(int(level))
        for a, b in ranges:
            params.extend((adapt(a), adapt(b)))
    if not parts:
        return "1 = 0", []
    return "(" + " OR ".join(parts) + ")", params


def _adapt_datetime():
    if connection.vendor == "postgresql":
        return lambda value: value
    return connection.ops.adapt_datetimefield_value


def _bucket_index_sql(buckets):
    """Return (SQL, params) for the display bucket of a row, and whether it is an index.

    PostgreSQL numbers the display buckets itself (width_bucket, 1-based), so
    it sums a 90-day range in UTC+05:30 to 90 rows per group instead of
    returning 2,000 hourly rows. Elsewhere the SQL is bucket_start in whole
    seconds since 1970, which the caller places with bisect.
    """
    if connection.vendor == "postgresql":
        return (
            "width_bucket(bucket_start, %s::timestamptz[])",
            [[b.start for b in buckets]],
            True,
        )
    return "CAST(strftime('%%s', bucket_start) AS INTEGER)", [], False


def _bucket_positions(buckets, is_index):
    """Return a function from the bucket SQL value to a display bucket index."""
    if is_index:
        return lambda value: value - 1
    starts = [int(b.start.timestamp()) for b in buckets]
    return lambda value: bisect.bisect_right(starts, value) - 1


# Lookups that `filters` may use, as SQL operators with one parameter.
_FILTER_OPERATORS = {"": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _filter_sql(table, filters):
    """Return (SQL, params) for filters such as {"errors__gt": 0, "model__in": [...]}."""
    columns = {field.column for field in table._meta.concrete_fields}
    parts = []
    params = []
    for lookup, value in (filters or {}).items():
        column, _, lookup_type = lookup.partition("__")
        if column not in columns:
            raise ValueError(f"Unknown rollup column {column!r} in filters.")
        if lookup_type == "in":
            values = list(value)
            if not values:
                parts.append("1 = 0")
                continue
            parts.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
        elif lookup_type in _FILTER_OPERATORS:
            parts.append(f"{column} {_FILTER_OPERATORS[lookup_type]} %s")
            params.append(value)
        else:
            raise ValueError(f"Unsupported lookup {lookup!r} in filters.")
    return "".join(f" AND {part}" for part in parts), params


def _select_sums(
    table,
    project_id,
    application_id,
    intervals,
    columns,
    filters=None,
    column_params=(),
    grouping=None,
    grouping_params=(),
):
    """Return rows of (*columns, *metric sums) from one statement.

    columns are SQL expressions, with column_params for their placeholders.
    Rows are grouped by the columns, or by the SQL of `grouping` (with
    grouping_params) when it is given. Sums are cast back to integers
    because PostgreSQL returns SUM(bigint) as numeric, which loads as Decimal.
    """
    condition, params = _bucket_condition(intervals)
    where = f"project_id = %s AND {condition}"
    params = [*column_params, project_id, *params]
    if application_id is not None:
        where += " AND application_id = %s"
        params.append(application_id)
    extra, extra_params = _filter_sql(table, filters)
    sums = ", ".join(f"CAST(SUM({m}) AS BIGINT)" for m in METRIC_NAMES)
    select = ", ".join([*columns, sums])
    sql = f"SELECT {select} FROM {table._meta.db_table} WHERE {where}{extra}"
    if grouping is None and columns:
        grouping = ", ".join(str(i) for i in range(1, len(columns) + 1))
    if grouping:
        sql += f" GROUP BY {grouping}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *extra_params, *grouping_params])
        return cursor.fetchall()


def _check_range(start, end):
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("Range edges must be timezone-aware.")
    if align_range(start, end) != (start, end):
        raise ValueError(
            "Range edges must fall on 15-minute boundaries; see align_range."
        )


def totals(
    project_id,
    start,
    end,
    application_id=None,
    group_by=(),
    filters=None,
    table=UsageRollup,
):
    """Return {group values: Totals} for the range, grouped by rollup columns.

    With no group_by the result has one entry keyed by (). application_id 0
    selects usage from keys attached to no application. Group by key_id with
    table=KeyRollup.
    """
    _check_range(start, end)
    result = {}
    width = len(group_by)
    rows = _select_sums(
        table, project_id, application_id, [(start, end)], group_by, filters
    )
    for row in rows:
        if not width and row[0] is None:
            # An aggregate over no rows returns one row of NULLs.
            continue
        key = tuple(row[:width])
        result.setdefault(key, Totals()).add(row[width:])
    if not group_by and () not in result:
        result[()] = Totals()
    return result


def series(project_id, buckets, application_id=None, group_by=(), filters=None):
    """Return {group values: [Totals per display bucket]}."""
    if not buckets:
        return {}
    _check_range(buckets[0].start, buckets[-1].end)
    bucket_sql, bucket_params, is_index = _bucket_index_sql(buckets)
    position = _bucket_positions(buckets, is_index)
    result = {}
    width = len(group_by)
    rows = _select_sums(
        UsageRollup,
        project_id,
        application_id,
        [(b.start, b.end) for b in buckets],
        [bucket_sql, *group_by],
        filters,
        bucket_params,
    )
    for row in rows:
        key = tuple(row[1 : 1 + width])
        per_bucket = result.get(key)
        if per_bucket is None:
            per_bucket = result[key] = [Totals() for _ in buckets]
        per_bucket[position(row[0])].add(row[1 + width :])
    if not group_by and () not in result:
        result[()] = [Totals() for _ in buckets]
    return result


def series_and_totals(project_id, buckets, group_by, totals_by):
    """Return (series(group_by), totals grouped by the column totals_by) of buckets.

    On PostgreSQL one scan of the rollups serves both, with GROUPING SETS:
    the overview sums every application's rows twice otherwise, and that
    scan is most of its database time. The totals cover the buckets' range.
    """
    if not buckets:
        return {}, {}
    if connection.vendor != "postgresql":
        start, end = buckets[0].start, buckets[-1].end
        return (
            series(project_id, buckets, group_by=group_by),
            totals(project_id, start, end, group_by=(totals_by,)),
        )
    _check_range(buckets[0].start, buckets[-1].end)
    bucket_sql, bucket_params, _ = _bucket_index_sql(buckets)
    dimensions = ", ".join(group_by)
    rows = _select_sums(
        UsageRollup,
        project_id,
        None,
        [(b.start, b.end) for b in buckets],
        [f"GROUPING({totals_by})", bucket_sql, *group_by, totals_by],
        column_params=bucket_params,
        grouping=f"GROUPING SETS (({bucket_sql}, {dimensions}), ({totals_by}))",
        grouping_params=bucket_params,
    )
    width = len(group_by)
    by_group = {}
    by_total = {}
    for row in rows:
        values = row[3 + width :]
        if row[0] == 0:
            by_total.setdefault((row[2 + width],), Totals()).add(values)
            continue
        key = tuple(row[2 : 2 + width])
        per_bucket = by_group.get(key)
        if per_bucket is None:
            per_bucket = by_group[key] = [Totals() for _ in buckets]
        per_bucket[row[1] - 1].add(values)
    return by_group, by_total


@dataclasses.dataclass
class Distribution:
    """Merged latency or TTFT histogram bins."""

    counts: dict = dataclasses.field(default_factory=dict)

    def percentile(self, q):
        """Return the q-quantile in ms, or None without data."""
        return histograms.percentile(self.counts, q)

    @property
    def count(self):
        return sum(self.counts.values())


def distributions(project_id, buckets, application_id=None):
    """Return ({metric: Distribution over all buckets}, {metric: [per bucket]})."""
    overall = {m: Distribution() for m in HistogramMetric}
    per_bucket = {m: [Distribution() for _ in buckets] for m in HistogramMetric}
    if not buckets:
        return overall, per_bucket
    _check_range(buckets[0].start, buckets[-1].end)
    bucket_sql, bucket_params, is_index = _bucket_index_sql(buckets)
    position = _bucket_positions(buckets, is_index)
    condition, params = _bucket_condition([(b.start, b.end) for b in buckets])
    application = ALL_APPLICATIONS if application_id is None else application_id
    # PostgreSQL joins the texts of a display bucket, so Python parses one
    # string per bucket and metric. The bins merge the same either way.
    counts = "string_agg(counts, ' ')" if is_index else "counts"
    group = " GROUP BY 1, 2" if is_index else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {bucket_sql}, metric, {counts} FROM {UsageHistogram._meta.db_table} "
            f"WHERE project_id = %s AND application_id = %s AND {condition}{group}",
            [*bucket_params, project_id, application, *params],
        )
        rows = cursor.fetchall()
    for value, metric, text in rows:
        histograms.merge_text(per_bucket[metric][position(value)].counts, text)
    for metric, items in per_bucket.items():
        merged = overall[metric].counts
        get = merged.get
        for item in items:
            for b, c in item.counts.items():
                merged[b] = get(b, 0) + c
    return overall, per_bucket


def range_distribution(project_id, start, end, application_id=None):
    """Return {metric: Distribution} for the whole range."""
    overall, _ = distributions(project_id, [Bucket(start, end, "")], application_id)
    return overall


def dollars(nanousd):
    return Decimal(nanousd) / Decimal(1_000_000_000)
