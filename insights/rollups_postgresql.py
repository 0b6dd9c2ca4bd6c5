"""Rollups of a batch of new events, summed in SQL on PostgreSQL.

record_usage copies a batch into a temporary table (insights.bulk) and
write_staged adds it to the rollups there, so Python never loops over the
events: counts go in with one INSERT ... ON CONFLICT DO UPDATE per table,
and histogram bins are counted in SQL, then merged into their text rows by
insights.rollups._write_histograms. The SQL mirrors insights.rollups.aggregate,
the Python implementation that SQLite uses.
"""

from insights import histograms
from insights.models import ALL_APPLICATIONS, HistogramMetric
from insights.rollups import (
    _BIN_SQL,
    _EPOCH_SQL,
    FINEST,
    LEVELS,
    METRIC_NAMES,
    METRICS,
    TABLES,
    _bucket_sql,
    _write_histograms,
    bucket_start,
)

# The levels as a relation, to sum 15-minute sums into every level in SQL.
_LEVELS_SQL = (
    "(VALUES "
    + ", ".join(f"({int(level)})" for level in LEVELS)
    + ") AS levels (level)"
)


def write_staged(cursor, stage):
    """Add the events of the temporary table `stage` to the rollups.

    `stage` has the event columns and contains only events that are new,
    stored in this transaction.
    """
    for table in TABLES:
        _upsert_counts(cursor, table, stage)
    _merge_histograms(cursor, stage)


def _upsert_counts(cursor, table, stage):
    """Add the staged events to one count table at every level.

    Rows are inserted in the order of the conflict columns, so two writers
    lock shared rows in the same order and cannot deadlock.
    """
    name = table.model._meta.db_table
    dims = table.dimensions
    columns = (
        "level",
        "bucket_start",
        "project_id",
        "application_id",
        *dims,
        *METRIC_NAMES,
    )
    fine_dims = ", ".join(
        f"{sql} AS {dim}" for sql, dim in zip(table.sql, dims, strict=True)
    )
    fine_sums = ", ".join(f"SUM({m.sql}) AS {m.name}" for m in METRICS)
    # Output positions: 1 level, 2 bucket_start, 3 project_id, 4 application_id,
    # then the dimensions.
    dim_positions = [str(5 + i) for i in range(len(dims))]
    fine_group = ", ".join(["1", "2", "3", *[str(4 + i) for i in range(len(dims))]])
    group = ", ".join(["1", "2", "3", "4", *dim_positions])
    order = ", ".join(["3", "4", "1", "2", *dim_positions])
    conflict = ", ".join(table.conflict_columns)
    updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in METRIC_NAMES)
    cursor.execute(
        f"INSERT INTO {name} ({', '.join(columns)}) "
        f"SELECT levels.level, {_level_bucket_sql('fine.bucket_start')} AS bucket_start, "
        f"fine.project_id, fine.application_id, "
        + ", ".join(f"fine.{dim}" for dim in dims)
        + ", "
        + ", ".join(f"SUM(fine.{m})" for m in METRIC_NAMES)
        + " FROM ("
        f"SELECT {_bucket_sql(FINEST, 'occurred_at')} AS bucket_start, project_id, "
        f"COALESCE(application_id, 0) AS application_id, {fine_dims}, {fine_sums} "
        f"FROM {stage} GROUP BY {fine_group}"
        f") AS fine CROSS JOIN {_LEVELS_SQL} "
        f"GROUP BY {group} ORDER BY {order} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )


def _merge_histograms(cursor, stage):
    """Add the staged events' latency and TTFT bins to the histogram rows.

    SQL counts the bins per 15-minute bucket, for each application and for
    the whole project (ALL_APPLICATIONS); Python adds those counts to the
    coarser levels and merges them into the rows.
    """
    cursor.execute(
        "SELECT bucket, project_id, "
        f"CASE WHEN scope = 1 THEN {ALL_APPLICATIONS} ELSE application_id END, "
        "metric, string_agg(bin::text || ' ' || n::text, ' ') FROM ("
        f"SELECT {_bucket_sql(FINEST, 'occurred_at')} AS bucket, project_id, "
        "COALESCE(application_id, 0) AS application_id, m.metric, "
        f"{_BIN_SQL.format(v='m.value')} AS bin, "
        "GROUPING(COALESCE(application_id, 0)) AS scope, count(*) AS n "
        f"FROM {stage} CROSS JOIN LATERAL (VALUES "
        f"({int(HistogramMetric.LATENCY)}, latency_ms), ({int(HistogramMetric.TTFT)}, ttft_ms)"
        ") AS m (metric, value) WHERE m.value IS NOT NULL "
        "GROUP BY GROUPING SETS ((1, 2, 3, 4, 5), (1, 2, 4, 5))"
        ") AS fine GROUP BY 1, 2, 3, 4"
    )
    _write_histograms(_histogram_levels(cursor.fetchall()))


def _histogram_levels(rows):
    """Return histogram increments at every level from 15-minute increments.

    rows are (bucket, project_id, application_id, metric, encoded bins). A
    coarse bucket with one 15-minute part shares that part's dict, which is
    then read only.
    """
    increments = {}
    shared = set()
    for bucket, project_id, application_id, metric, text in rows:
        fine = histograms.decode(text)
        for level in LEVELS:
            start = bucket if level == FINEST else bucket_start(bucket, level)
            key = (int(level), start, project_id, application_id, metric)
            bins = increments.get(key)
            if bins is None:
                increments[key] = fine
                shared.add(key)
                continue
            if key in shared:
                bins = increments[key] = dict(bins)
                shared.discard(key)
            for b, n in fine.items():
                bins[b] = bins.get(b, 0) + n
    return increments


def _level_bucket_sql(column):
    """Return SQL for the bucket of levels.level (see _LEVELS_SQL) containing column."""
    return f"date_bin(levels.level * INTERVAL '1 minute', {column}, {_EPOCH_SQL})"
