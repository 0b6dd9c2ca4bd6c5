"""Rollups: usage summed per time bucket, written with the events.

Each metric is declared once in METRICS; the recording path, the rebuild and
the queries all take their columns from it. Counts are kept at three levels
(15 minutes, 1 hour, 1 day, all in UTC). 15-minute buckets make a day exact in
every real timezone, including UTC+05:30, +05:45 and 23- or 25-hour DST days;
the coarser levels exist only to read fewer rows where a range is aligned to
them (see insights.queries).

Two tables, as zulip's analytics keeps one count table per kind of
dimension: UsageRollup (application, model, status, error type) for charts
and figures, and KeyRollup (application, key) for the tables by key.

Increments use INSERT ... ON CONFLICT DO UPDATE, which PostgreSQL and SQLite
(3.24+) both support, so concurrent writers add to a bucket without a lost
update. Histograms cannot be added in SQL, so their rows are locked and
rewritten (see _write_histograms). On PostgreSQL, record_usage sums each
batch in SQL instead of with aggregate() (see insights.rollups_postgresql).
"""

import dataclasses
import datetime
import itertools
from collections.abc import Callable

from django.db import connection, transaction

from insights import bulk, histograms
from insights.models import (
    ALL_APPLICATIONS,
    HistogramMetric,
    KeyRollup,
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
    # The same contribution as SQL over insights_usageevent, for the rebuild.
    sql: str


def _column(name):
    index = _COL[name]
    return lambda row: row[index]


def is_error(status_code, error_type):
    return bool(error_type) or status_code >= 400


METRICS = (
    Metric("requests", lambda row: 1, "1"),
    Metric(
        "errors",
        lambda row: int(is_error(row[_COL["status_code"]], row[_COL["error_type"]])),
        "CASE WHEN error_type <> '' OR status_code >= 400 THEN 1 ELSE 0 END",
    ),
    Metric("prompt_tokens", _column("prompt_tokens"), "prompt_tokens"),
    Metric("completion_tokens", _column("completion_tokens"), "completion_tokens"),
    Metric("cached_tokens", _column("cached_tokens"), "cached_tokens"),
    Metric("reasoning_tokens", _column("reasoning_tokens"), "reasoning_tokens"),
    Metric("cache_write_tokens", _column("cache_write_tokens"), "cache_write_tokens"),
    Metric(
        "cost_nanousd",
        lambda row: row[_COL["cost_nanousd"]] or 0,
        "COALESCE(cost_nanousd, 0)",
    ),
    Metric(
        "unpriced_requests",
        lambda row: int(row[_COL["cost_nanousd"]] is None),
        "CASE WHEN cost_nanousd IS NULL THEN 1 ELSE 0 END",
    ),
)
METRIC_NAMES = tuple(metric.name for metric in METRICS)


@dataclasses.dataclass(frozen=True)
class RollupTable:
    model: type
    # Dimension columns after (level, bucket_start, project_id, application_id).
    dimensions: tuple
    # The dimension values of one event row, in the order of `dimensions`.
    values: Callable[[tuple], tuple]
    # The same values as SQL over insights_usageevent.
    sql: tuple

    @property
    def conflict_columns(self):
        return (
            "project_id",
            "application_id",
            "level",
            "bucket_start",
            *self.dimensions,
        )


TABLES = (
    RollupTable(
        UsageRollup,
        ("model", "status_code", "error_type"),
        lambda row: (row[4], row[5], row[6]),
        ("model", "status_code", "error_type"),
    ),
    RollupTable(
        KeyRollup, ("key_id",), lambda row: (row[3] or 0,), ("COALESCE(key_id, 0)",)
    ),
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
    """Rollup and histogram increments, keyed by their dimensions.

    counts maps each RollupTable to {(level, bucket, project, application,
    *dimensions): [metric sums]}; histograms maps (level, bucket, project,
    application, metric) to {bin: count}.
    """

    counts: dict = dataclasses.field(default_factory=dict)
    histograms: dict = dataclasses.field(default_factory=dict)


def aggregate(rows):
    """Sum event rows (tuples in EVENT_COLUMNS order) at every level.

    Events are summed into 15-minute buckets first and those sums into the
    coarser levels, so the per-event work is one dictionary update per table.
    """
    values = [metric.value for metric in METRICS]
    width = len(values)
    fine_counts = {table: {} for table in TABLES}
    fine_histograms = {}
    bucket_cache = {}
    step = FINEST * 60
    for row in rows:
        number = int((row[0] - _EPOCH).total_seconds()) // step
        start = bucket_cache.get(number)
        if start is None:
            start = bucket_cache[number] = _EPOCH + datetime.timedelta(
                seconds=number * step
            )
        contribution = [value(row) for value in values]
        for table, counts in fine_counts.items():
            key = (start, row[1], row[2] or 0, *table.values(row))
            sums = counts.get(key)
            if sums is None:
                counts[key] = list(contribution)
            else:
                for i in range(width):
                    sums[i] += contribution[i]
        for metric, value in (
            (HistogramMetric.LATENCY, row[13]),
            (HistogramMetric.TTFT, row[14]),
        ):
            if value is None:
                continue
            b = histograms.bin_of(value)
            for application_id in (row[2] or 0, ALL_APPLICATIONS):
                bins = fine_histograms.setdefault(
                    (start, row[1], application_id, metric), {}
                )
                bins[b] = bins.get(b, 0) + 1

    increments = Increments()
    for table, counts in fine_counts.items():
        increments.counts[table] = _roll_up_counts(counts, width)
    for level in LEVELS:
        for key, bins in fine_histograms.items():
            start = key[0] if level == FINEST else bucket_start(key[0], level)
            target = increments.histograms.setdefault((int(level), start, *key[1:]), {})
            for b, count in bins.items():
                target[b] = target.get(b, 0) + count
    return increments


def _roll_up_counts(fine, width):
    """Return {(level, bucket, ...): sums} at every level from 15-minute sums."""
    result = {}
    for level in LEVELS:
        for key, sums in fine.items():
            start = key[0] if level == FINEST else bucket_start(key[0], level)
            full_key = (int(level), start, *key[1:])
            target = result.get(full_key)
            if target is None:
                result[full_key] = list(sums)
            else:
                for i in range(width):
                    target[i] += sums[i]
    return result


def _chunks(items, size):
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def write(increments):
    """Add the increments to the rollup tables; call inside a transaction."""
    for table, counts in increments.counts.items():
        _write_counts(table, counts)
    _write_histograms(increments.histograms)


def _write_counts(table, counts):
    name = table.model._meta.db_table
    columns = (
        "level",
        "bucket_start",
        "project_id",
        "application_id",
        *table.dimensions,
        *METRIC_NAMES,
    )
    updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in METRIC_NAMES)
    conflict = ", ".join(table.conflict_columns)
    # Sorted, so two writers lock shared rows in the same order and cannot
    # deadlock.
    rows = [(*key, *sums) for key, sums in sorted(counts.items())]
    bulk.insert(
        name,
        columns,
        rows,
        suffix=f"ORDER BY {conflict} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
        if connection.vendor == "postgresql"
        else f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
    )


# Keeps the parsed histogram rows of each thread's last write.
_row_merger = histograms.RowMerger()


def _write_histograms(increments):
    """Merge histogram increments into their rows.

    Each row is created empty if missing, then locked (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite serialises writers), merged in Python and rewritten.
    """
    if not increments:
        return
    table = UsageHistogram._meta.db_table
    if connection.vendor == "postgresql":
        _write_histograms_postgresql(table, increments)
        return
    with connection.cursor() as cursor:
        merges = []
        for row_id, *dimensions, text in _create_and_select_histograms(
            cursor, table, increments
        ):
            level, start, project_id, application_id, metric = dimensions
            bins = increments.get(
                (level, _as_aware(start), project_id, application_id, metric)
            )
            if bins is not None:
                merges.append((row_id, text, bins))
        _update_histograms(cursor, table, _row_merger.merge_all(merges))


def _write_histograms_postgresql(table, increments):
    """Merge histogram increments into their rows on PostgreSQL.

    Missing rows are inserted in the order of the unique constraint, then
    all rows are locked in id order, one statement each, so concurrent
    writers cannot deadlock. The keys travel as arrays: unnest() keeps the
    planner on the unique index, and the lock returns each key's position
    in them instead of the key.
    """
    keys = list(increments)
    dims = ", ".join(HISTOGRAM_DIMENSIONS)
    # %b sends a parameter in binary, which spares escaping every element.
    unnest = (
        "unnest(%b::smallint[], %b::timestamptz[], %b::bigint[], %b::bigint[], "
        "%b::smallint[])"
    )
    columns = [list(column) for column in zip(*keys, strict=True)]
    same_row = " AND ".join(f"h.{d} = k.{d}" for d in HISTOGRAM_DIMENSIONS)
    with bulk.binary_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({dims}, counts) SELECT {dims}, '' "
            f"FROM {unnest} AS k ({dims}) "
            "ORDER BY project_id, application_id, metric, level, bucket_start "
            "ON CONFLICT (project_id, application_id, metric, level, bucket_start) DO NOTHING",
            columns,
        )
        cursor.execute(
            f"SELECT h.id, h.counts, k.position FROM {table} AS h "
            f"JOIN {unnest} WITH ORDINALITY AS k ({dims}, position) ON {same_row} "
            "ORDER BY h.id FOR UPDATE OF h",
            columns,
        )
        merges = [
            (row_id, text, increments[keys[position - 1]])
            for row_id, text, position in cursor.fetchall()
        ]
        merged = _row_merger.merge_all(merges)
        cursor.execute(
            f"UPDATE {table} SET counts = merged.counts "
            "FROM unnest(%b::bigint[], %b::text[]) AS merged (id, counts) "
            f"WHERE {table}.id = merged.id",
            [[row_id for row_id, _ in merged], [text for _, text in merged]],
        )


def _create_and_select_histograms(cursor, table, increments):
    """Return the histogram rows of the increments' keys, created if missing.

    For databases other than PostgreSQL. SQLite serialises writers; where
    the database supports SELECT ... FOR UPDATE, the rows are locked. The
    result may hold a few rows of other keys.
    """
    adapt = connection.ops.adapt_datetimefield_value
    dims = ", ".join(HISTOGRAM_DIMENSIONS)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = []
    for chunk in _chunks(sorted(increments), 500):
        params = [p for key in chunk for p in (key[0], adapt(key[1]), *key[2:])]
        cursor.execute(
            f"INSERT INTO {table} ({dims}, counts) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s, '')"] * len(chunk))
            + " ON CONFLICT (project_id, application_id, metric, level, bucket_start)"
            " DO NOTHING",
            params,
        )
        rows.extend(_lock_histograms(cursor, table, chunk, lock))
    return rows


def _lock_histograms(cursor, table, keys, lock):
    """Return the histogram rows of `keys`, locked, plus possibly a few others.

    Rows are selected per project and level with IN lists, which the unique
    index serves; a row-value IN over VALUES made PostgreSQL scan the table.
    """
    adapt = connection.ops.adapt_datetimefield_value
    groups = {}
    for level, start, project_id, application_id, metric in keys:
        group = groups.setdefault((project_id, level), (set(), set(), set()))
        group[0].add(application_id)
        group[1].add(metric)
        group[2].add(adapt(start))
    rows = []
    for (project_id, level), (applications, metrics, starts) in sorted(groups.items()):
        cursor.execute(
            f"SELECT id, {', '.join(HISTOGRAM_DIMENSIONS)}, counts FROM {table} "
            f"WHERE project_id = %s AND level = %s AND application_id IN ({_marks(applications)}) "
            f"AND metric IN ({_marks(metrics)}) AND bucket_start IN ({_marks(starts)}) "
            f"ORDER BY id{lock}",
            [
                project_id,
                level,
                *sorted(applications),
                *sorted(metrics),
                *sorted(starts),
            ],
        )
        rows.extend(cursor.fetchall())
    return rows


def _marks(values):
    return ", ".join(["%s"] * len(values))


def _update_histograms(cursor, table, updates):
    for chunk in _chunks(updates, 5000):
        cursor.execute(
            # VALUES names its columns column1, column2 in SQLite.
            f"UPDATE {table} SET counts = merged.column2 FROM (VALUES "
            + ", ".join(["(%s, %s)"] * len(chunk))
            + f") AS merged WHERE {table}.id = merged.column1",
            [value for pair in chunk for value in pair],
        )


def _as_aware(value):
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def event_rows(queryset):
    """Yield the rollup columns of the events in queryset, streamed."""
    return queryset.values_list(*EVENT_COLUMNS).iterator(chunk_size=20_000)


def rebuild(project_ids=None, since=None, stdout=None):
    """Recompute the rollups from the stored events, in one transaction.

    Rollups in scope are deleted and summed again, so running it twice gives
    the same tables. `since` is rounded down to the start of its UTC day,
    because a daily bucket can only be rebuilt from all of its events.
    PostgreSQL sums in SQL; other databases stream the events through
    aggregate(), holding the sums in memory. Returns the number of events.
    """
    events = UsageEvent.objects.all()
    deletions = [
        UsageRollup.objects.all(),
        KeyRollup.objects.all(),
        UsageHistogram.objects.all(),
    ]
    if project_ids is not None:
        events = events.filter(project_id__in=project_ids)
        deletions = [q.filter(project_id__in=project_ids) for q in deletions]
    if since is not None:
        since = bucket_start(since, RollupLevel.DAY)
        events = events.filter(occurred_at__gte=since)
        deletions = [q.filter(bucket_start__gte=since) for q in deletions]

    with transaction.atomic():
        for queryset in deletions:
            queryset._raw_delete(queryset.db)
        if connection.vendor == "postgresql":
            return _rebuild_in_sql(project_ids, since, stdout)
        total = 0
        increments = Increments()
        for chunk in _chunks(event_rows(events.order_by()), 100_000):
            _merge(increments, aggregate(chunk))
            total += len(chunk)
            if stdout is not None:
                stdout.write(f"  {total:,} events summed")
        write(increments)
        return total


def _merge(into, other):
    for table, counts in other.counts.items():
        target = into.counts.setdefault(table, {})
        for key, sums in counts.items():
            if key in target:
                target[key] = [a + b for a, b in zip(target[key], sums, strict=True)]
            else:
                target[key] = sums
    for key, bins in other.histograms.items():
        target = into.histograms.setdefault(key, {})
        for b, count in bins.items():
            target[b] = target.get(b, 0) + count


_EPOCH_SQL = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
# The same bins as histograms.bin_of, computed with the same double arithmetic.
_BIN_SQL = (
    "CASE WHEN {v} <= 0 THEN 0 "
    "ELSE (ceil(ln({v}::float8) / ln("
    + repr(histograms.GAMMA)
    + "::float8) - 1e-9))::int + 1 END"
)


def _bucket_sql(level, column):
    return f"date_bin('{int(level)} minutes', {column}, {_EPOCH_SQL})"


def _rebuild_in_sql(project_ids, since, stdout):
    """Rebuild with INSERT ... SELECT on PostgreSQL (14+ for date_bin)."""
    conditions = ["TRUE"]
    params = []
    if project_ids is not None:
        conditions.append("project_id = ANY(%s)")
        params.append(list(project_ids))
    if since is not None:
        conditions.append("occurred_at >= %s")
        params.append(since)
    where = " AND ".join(conditions)
    events = UsageEvent._meta.db_table
    sums = ", ".join(f"SUM({m.sql})" for m in METRICS)
    rolled = ", ".join(f"SUM({m})" for m in METRIC_NAMES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {events} WHERE {where}", params)
        total = cursor.fetchone()[0]
        for table in TABLES:
            name = table.model._meta.db_table
            dims = ", ".join(table.dimensions)
            columns = f"level, bucket_start, project_id, application_id, {dims}, {', '.join(METRIC_NAMES)}"
            cursor.execute(
                f"INSERT INTO {name} ({columns}) "
                f"SELECT {int(FINEST)}, {_bucket_sql(FINEST, 'occurred_at')}, project_id, "
                f"COALESCE(application_id, 0), {', '.join(table.sql)}, {sums} "
                f"FROM {events} WHERE {where} GROUP BY 2, 3, 4, {', '.join(table.sql)}",
                params,
            )
            for level in LEVELS[1:]:
                # Coarser levels add up the 15-minute rows, not the events.
                cursor.execute(
                    f"INSERT INTO {name} ({columns}) "
                    f"SELECT {int(level)}, {_bucket_sql(level, 'bucket_start')}, project_id, "
                    f"application_id, {dims}, {rolled} FROM {name} "
                    f"WHERE level = {int(FINEST)} "
                    + ("AND project_id = ANY(%s) " if project_ids is not None else "")
                    + ("AND bucket_start >= %s " if since is not None else "")
                    + f"GROUP BY 2, 3, 4, {dims}",
                    params,
                )
            if stdout is not None:
                stdout.write(f"  {name} rebuilt")
        _rebuild_histograms_in_sql(cursor, where, params)
        if stdout is not None:
            stdout.write(f"  {total:,} events summed")
    return total


def _rebuild_histograms_in_sql(cursor, where, params):
    events = UsageEvent._meta.db_table
    table = UsageHistogram._meta.db_table
    cursor.execute("DROP TABLE IF EXISTS rebuild_histogram_bins")
    cursor.execute(
        "CREATE TEMPORARY TABLE rebuild_histogram_bins ON COMMIT DROP AS "
        f"SELECT bucket, project_id, application_id, metric, bin, count(*) AS n FROM ("
        f"SELECT {_bucket_sql(FINEST, 'occurred_at')} AS bucket, project_id, "
        f"COALESCE(application_id, 0) AS application_id, {int(HistogramMetric.LATENCY)} AS metric, "
        f"{_BIN_SQL.format(v='latency_ms')} AS bin FROM {events} WHERE {where} AND latency_ms IS NOT NULL "
        "UNION ALL "
        f"SELECT {_bucket_sql(FINEST, 'occurred_at')}, project_id, COALESCE(application_id, 0), "
        f"{int(HistogramMetric.TTFT)}, {_BIN_SQL.format(v='ttft_ms')} FROM {events} "
        f"WHERE {where} AND ttft_ms IS NOT NULL"
        ") AS binned GROUP BY 1, 2, 3, 4, 5",
        params + params,
    )
    cursor.execute(
        f"INSERT INTO rebuild_histogram_bins SELECT bucket, project_id, {ALL_APPLICATIONS}, "
        "metric, bin, SUM(n) FROM rebuild_histogram_bins GROUP BY 1, 2, 4, 5"
    )
    for level in LEVELS:
        cursor.execute(
            f"INSERT INTO {table} (level, bucket_start, project_id, application_id, metric, counts) "
            f"SELECT {int(level)}, bucket, project_id, application_id, metric, "
            "string_agg(bin::text || ' ' || n::text, ' ' ORDER BY bin) FROM ("
            f"SELECT {_bucket_sql(level, 'bucket')} AS bucket, project_id, application_id, metric, bin, "
            "SUM(n) AS n FROM rebuild_histogram_bins GROUP BY 1, 2, 3, 4, 5"
            ") AS per_level GROUP BY 1, 2, 3, 4, 5"
        )
