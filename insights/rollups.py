"""Rollups: usage summed per time bucket, written with the events.

Each metric is declared once in METRICS; the recording path, the rebuild and
the queries all take their columns from it. Counts are kept at three levels
(15 minutes, 1 hour, 1 day, all in UTC). 15-minute buckets make a day exact in
every real timezone, including UTC+05:30, +05:45 and 23- or 25-hour DST days;
the coarser levels exist only to read fewer rows where a range is aligned to
them (see insights.queries).

Increments use INSERT ... ON CONFLICT DO UPDATE, which PostgreSQL and SQLite
(3.24+) both support, so concurrent writers add to a bucket without a lost
update. Histograms cannot be added in SQL, so their rows are locked and
rewritten (see _write_histograms).
"""

import dataclasses
import datetime
import itertools
from collections.abc import Callable

from django.db import connection, transaction

from insights import histograms
from insights.models import (
    HistogramMetric,
    RollupLevel,
    UsageEvent,
    UsageHistogram,
    UsageRollup,
)

LEVELS = (RollupLevel.QUARTER_HOUR, RollupLevel.HOUR, RollupLevel.DAY)
FINEST = RollupLevel.QUARTER_HOUR

# The event columns that the rollups read, in the order aggregate() expects.
EVENT_COLUMNS = (
    "occurred_at",
    "project_id",
    "application_id",
    "key_id",
    "model",
    "status_code",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "cost_nanousd",
    "latency_ms",
    "ttft_ms",
)
_COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    # The metric's contribution of one event row (a tuple in EVENT_COLUMNS order).
    value: Callable[[tuple], int]


def _column(name):
    index = _COL[name]
    return lambda row: row[index]


def is_error(status_code, error_type):
    return bool(error_type) or status_code >= 400


METRICS = (
    Metric("requests", lambda row: 1),
    Metric(
        "errors",
        lambda row: int(is_error(row[_COL["status_code"]], row[_COL["error_type"]])),
    ),
    Metric("prompt_tokens", _column("prompt_tokens")),
    Metric("completion_tokens", _column("completion_tokens")),
    Metric("cached_tokens", _column("cached_tokens")),
    Metric("reasoning_tokens", _column("reasoning_tokens")),
    Metric("cache_write_tokens", _column("cache_write_tokens")),
    Metric("cost_nanousd", lambda row: row[_COL["cost_nanousd"]] or 0),
    Metric("unpriced_requests", lambda row: int(row[_COL["cost_nanousd"]] is None)),
)
METRIC_NAMES = tuple(metric.name for metric in METRICS)
DIMENSIONS = (
    "level",
    "bucket_start",
    "project_id",
    "application_id",
    "key_id",
    "model",
    "status_code",
    "error_type",
)
HISTOGRAM_DIMENSIONS = (
    "level",
    "bucket_start",
    "project_id",
    "application_id",
    "metric",
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def bucket_start(moment, level):
    """Return the start of the UTC bucket of `level` minutes containing moment."""
    seconds = int((moment - _EPOCH).total_seconds()) // (level * 60) * (level * 60)
    return _EPOCH + datetime.timedelta(seconds=seconds)


@dataclasses.dataclass
class Increments:
    """Rollup and histogram increments, keyed by their dimensions."""

    counts: dict = dataclasses.field(default_factory=dict)
    histograms: dict = dataclasses.field(default_factory=dict)

    def __bool__(self):
        return bool(self.counts)


def aggregate(rows):
    """Sum event rows (tuples in EVENT_COLUMNS order) at every level.

    Events are summed into 15-minute buckets first and those sums into the
    coarser levels, so the per-event work is one dictionary update.
    """
    values = [metric.value for metric in METRICS]
    width = len(values)
    fine_counts = {}
    fine_histograms = {}
    bucket_cache = {}
    step = FINEST * 60
    for row in rows:
        occurred_at = row[0]
        number = int((occurred_at - _EPOCH).total_seconds()) // step
        start = bucket_cache.get(number)
        if start is None:
            start = bucket_cache[number] = _EPOCH + datetime.timedelta(
                seconds=number * step
            )
        key = (start, row[1], row[2] or 0, row[3] or 0, row[4], row[5], row[6])
        sums = fine_counts.get(key)
        if sums is None:
            sums = fine_counts[key] = [0] * width
        for i in range(width):
            sums[i] += values[i](row)
        for metric, value in (
            (HistogramMetric.LATENCY, row[13]),
            (HistogramMetric.TTFT, row[14]),
        ):
            if value is None:
                continue
            hist_key = (start, row[1], row[2] or 0, metric)
            bins = fine_histograms.setdefault(hist_key, {})
            b = histograms.bin_of(value)
            bins[b] = bins.get(b, 0) + 1

    increments = Increments()
    for level in LEVELS:
        for key, sums in fine_counts.items():
            start = key[0] if level == FINEST else bucket_start(key[0], level)
            full_key = (int(level), start, *key[1:])
            target = increments.counts.get(full_key)
            if target is None:
                increments.counts[full_key] = list(sums)
            else:
                for i in range(width):
                    target[i] += sums[i]
        for key, bins in fine_histograms.items():
            start = key[0] if level == FINEST else bucket_start(key[0], level)
            full_key = (int(level), start, *key[1:])
            target = increments.histograms.setdefault(full_key, {})
            for b, count in bins.items():
                target[b] = target.get(b, 0) + count
    return increments


def _chunks(items, size):
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def write(increments):
    """Add the increments to the rollup tables; call inside a transaction."""
    _write_counts(increments.counts)
    _write_histograms(increments.histograms)


def _write_counts(counts):
    table = UsageRollup._meta.db_table
    columns = DIMENSIONS + METRIC_NAMES
    conflict = ", ".join(
        (
            "project_id",
            "application_id",
            "level",
            "bucket_start",
            "key_id",
            "model",
            "status_code",
            "error_type",
        )
    )
    updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in METRIC_NAMES)
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    adapt = connection.ops.adapt_datetimefield_value
    # Sorted, so two writers lock shared rows in the same order and cannot
    # deadlock; chunked to stay under SQLite's limit of bound parameters.
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(counts.items()), 500):
            params = []
            for key, sums in chunk:
                params.extend((key[0], adapt(key[1]), *key[2:], *sums))
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([row_sql] * len(chunk))
                + f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                params,
            )


def _write_histograms(increments):
    """Merge histogram increments into their rows.

    Each row is created empty if missing, then locked (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite serialises writers), merged in Python and rewritten.
    """
    if not increments:
        return
    table = UsageHistogram._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    keys = sorted(increments)
    dims = ", ".join(HISTOGRAM_DIMENSIONS)
    row_sql = "(%s, %s, %s, %s, %s)"
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        for chunk in _chunks(keys, 500):
            params = [p for key in chunk for p in (key[0], adapt(key[1]), *key[2:])]
            values = ", ".join([row_sql] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({dims}, counts) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s, '')"] * len(chunk))
                + " ON CONFLICT (project_id, application_id, metric, level, bucket_start)"
                " DO NOTHING",
                params,
            )
            cursor.execute(
                f"SELECT id, {dims}, counts FROM {table} WHERE ({dims}) IN "
                f"(VALUES {values}) ORDER BY id{lock}",
                params,
            )
            updates = []
            for row_id, *dimensions, text in cursor.fetchall():
                level, start, project_id, application_id, metric = dimensions
                start = _as_aware(start)
                bins = increments[(level, start, project_id, application_id, metric)]
                merged = histograms.merge_text(dict(bins), text)
                updates.append((histograms.encode(merged), row_id))
            cursor.executemany(f"UPDATE {table} SET counts = %s WHERE id = %s", updates)


def _as_aware(value):
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def event_rows(queryset):
    """Yield the rollup columns of the events in queryset, streamed."""
    return queryset.values_list(*EVENT_COLUMNS).iterator(chunk_size=20_000)


def rebuild(project_ids=None, since=None, stdout=None, chunk_size=200_000):
    """Recompute the rollups from the stored events, in one transaction.

    Rollups in scope are deleted and summed again, so running it twice gives
    the same tables. `since` is rounded down to the start of its UTC day,
    because a daily bucket can only be rebuilt from all of its events.
    Returns the number of events read.
    """
    events = UsageEvent.objects.all()
    rollups = UsageRollup.objects.all()
    hists = UsageHistogram.objects.all()
    if project_ids is not None:
        events = events.filter(project_id__in=project_ids)
        rollups = rollups.filter(project_id__in=project_ids)
        hists = hists.filter(project_id__in=project_ids)
    if since is not None:
        since = bucket_start(since, RollupLevel.DAY)
        events = events.filter(occurred_at__gte=since)
        rollups = rollups.filter(bucket_start__gte=since)
        hists = hists.filter(bucket_start__gte=since)

    total = 0
    with transaction.atomic():
        rollups._raw_delete(rollups.db)
        hists._raw_delete(hists.db)
        for chunk in _chunks(event_rows(events.order_by()), chunk_size):
            write(aggregate(chunk))
            total += len(chunk)
            if stdout is not None:
                stdout.write(f"  {total:,} events summed")
    return total
