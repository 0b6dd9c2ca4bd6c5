"""Bulk statements for the recording path, fast on PostgreSQL.

On PostgreSQL, rows are copied (COPY, psycopg's C writer) into a temporary
staging table and moved with one INSERT ... SELECT, because a multi-row
VALUES statement with tens of thousands of placeholders spends more time
in the driver than in the database. Other databases get the VALUES form.
"""

import itertools

from django.db import connection

# SQLite allows 32,766 bound parameters per statement.
_VALUES_PARAMETERS = 30_000


def _chunks(items, size):
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def insert(table, columns, rows, suffix="", returning=None):
    """INSERT rows into table, with `suffix` (e.g. ON CONFLICT ...) appended.

    rows are tuples in `columns` order, with datetimes aware and UUIDs as
    uuid.UUID. Returns the RETURNING column values when `returning` is set.
    """
    if not rows:
        return []
    column_list = ", ".join(columns)
    tail = f" {suffix}" if suffix else ""
    if returning:
        tail += f" RETURNING {returning}"
    results = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            stage = f"stage_{table}"
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} AS "
                f"SELECT {column_list} FROM {table} WITH NO DATA"
            )
            cursor.execute(f"TRUNCATE {stage}")
            with cursor.cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}{tail}"
            )
            if returning:
                results = [row[0] for row in cursor.fetchall()]
            return results

        adapt = connection.ops.adapt_datetimefield_value
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for chunk in _chunks(rows, max(1, _VALUES_PARAMETERS // len(columns))):
            params = []
            for row in chunk:
                params.extend(_adapt_sqlite(value, adapt) for value in row)
            cursor.execute(
                f"INSERT INTO {table} ({column_list}) VALUES "
                + ", ".join([row_sql] * len(chunk))
                + tail,
                params,
            )
            if returning:
                results.extend(row[0] for row in cursor.fetchall())
    return results


def _adapt_sqlite(value, adapt):
    import datetime
    import uuid

    if isinstance(value, datetime.datetime):
        return adapt(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    return value
