"""Rollups written by record_usage, checked against the Python reference.

On PostgreSQL record_usage sums events in SQL; rollups.aggregate is the
Python implementation that SQLite, the rebuild on SQLite and the test
factories use. Both must give the same rows.
"""

import datetime
import random
import threading
from decimal import Decimal

import pytest
from django.db import ProgrammingError, connection

from insights import bulk, histograms, rollups
from insights.models import KeyRollup, UsageEvent, UsageHistogram, UsageRollup
from insights.recording import record_usage
from tests.factories import (
    APIKeyFactory,
    KeyMappingFactory,
    ProviderModelFactory,
    UsageRecordFactory,
)
from workspace.models import APIKey

# 22:50 UTC: a batch 26 hours long crosses two UTC days, hours and quarters.
START = datetime.datetime(2026, 5, 1, 22, 50, tzinfo=datetime.UTC)

# Latencies on and next to bin edges (powers of histograms.GAMMA), and 0.
EDGE_LATENCIES = sorted(
    {0, 1, 2}
    | {
        round(histograms.GAMMA**k) + offset
        for k in range(1, 560, 7)
        for offset in (-1, 0, 1)
    }
)


def mixed_records(project, count, seed):
    """Return `count` records of several keys, applications, models and errors."""
    mapped = [KeyMappingFactory(application__project=project).key for _ in range(3)]
    loose = APIKeyFactory(project=project)
    for key in [*mapped, loose]:
        ProviderModelFactory(
            provider=key.provider,
            name="priced",
            input_price=Decimal("1.10"),
            cached_input_price=Decimal("0.275"),
            output_price=Decimal("4.40"),
        )
    keys = [*mapped, loose]
    rng = random.Random(seed)
    records = []
    for i in range(count):
        failed = rng.random() < 0.15
        records.append(
            UsageRecordFactory(
                key=rng.choice(keys),
                occurred_at=START
                + datetime.timedelta(seconds=rng.randrange(26 * 3600)),
                # "unpriced" has no catalogue entry, so its cost is unknown.
                model=rng.choice(["priced", "priced", "unpriced"]),
                prompt_tokens=0 if failed else rng.randrange(1, 4000),
                cached_tokens=0 if failed else rng.randrange(0, 2),
                completion_tokens=0 if failed else rng.randrange(0, 900),
                status_code=rng.choice([429, 500]) if failed else 200,
                error_type="rate_limit" if failed else "",
                latency_ms=None
                if i % 17 == 0
                else EDGE_LATENCIES[i % len(EDGE_LATENCIES)],
                ttft_ms=None if i % 5 == 0 else rng.randrange(0, 3000),
            )
        )
    return records


def stored_counts(table):
    """Return {(level, bucket, project, application, *dimensions): [metrics]}."""
    columns = (
        "level",
        "bucket_start",
        "project_id",
        "application_id",
        *table.dimensions,
        *rollups.METRIC_NAMES,
    )
    width = 4 + len(table.dimensions)
    return {
        row[:width]: list(row[width:])
        for row in table.model.objects.values_list(*columns)
    }


def stored_histograms():
    return {
        (level, start, project_id, application_id, metric): histograms.decode(text)
        for level, start, project_id, application_id, metric, text in (
            UsageHistogram.objects.values_list(*rollups.HISTOGRAM_DIMENSIONS, "counts")
        )
    }


def snapshot():
    return (
        {table.model: stored_counts(table) for table in rollups.TABLES},
        sorted(
            UsageHistogram.objects.values_list(*rollups.HISTOGRAM_DIMENSIONS, "counts")
        ),
        sorted(APIKey.objects.values_list("pk", "last_used_at")),
    )


@pytest.mark.django_db
def test_recorded_rollups_match_python_aggregate(project):
    record_usage(mixed_records(project, 800, seed=1))

    reference = rollups.aggregate(rollups.event_rows(UsageEvent.objects.all()))

    for table in rollups.TABLES:
        assert stored_counts(table) == reference.counts[table]
    assert stored_histograms() == reference.histograms


@pytest.mark.django_db
def test_histogram_bins_at_edges_match_bin_of(project):
    key = APIKeyFactory(project=project)
    records = [
        UsageRecordFactory(key=key, occurred_at=START, latency_ms=v, ttft_ms=None)
        for v in EDGE_LATENCIES
    ]

    record_usage(records)

    expected = {}
    for value in EDGE_LATENCIES:
        b = histograms.bin_of(value)
        expected[b] = expected.get(b, 0) + 1
    row = UsageHistogram.objects.get(level=15, application_id=0, metric=1)
    assert histograms.decode(row.counts) == expected
    assert row.counts == histograms.encode(expected)


@pytest.mark.django_db
def test_one_batch_equals_events_recorded_one_by_one(project):
    records = mixed_records(project, 150, seed=2)
    record_usage(records)
    batched = snapshot()
    for model in (UsageEvent, UsageRollup, KeyRollup, UsageHistogram):
        model.objects.all().delete()
    APIKey.objects.update(last_used_at=None)

    for record in records:
        record_usage([record])

    assert snapshot() == batched


@pytest.mark.django_db
def test_batch_counts_only_new_events(project):
    records = mixed_records(project, 60, seed=3)
    record_usage(records[:20])

    result = record_usage([*records, records[30], records[40]])

    assert result.inserted == 40
    assert result.duplicate_ids == {r.event_id for r in records[:20]} | {
        records[30].event_id,
        records[40].event_id,
    }
    reference = rollups.aggregate(rollups.event_rows(UsageEvent.objects.all()))
    for table in rollups.TABLES:
        assert stored_counts(table) == reference.counts[table]
    assert stored_histograms() == reference.histograms


@pytest.mark.django_db
def test_batch_of_only_stored_events_changes_nothing(project):
    records = mixed_records(project, 30, seed=4)
    record_usage(records)
    before = snapshot()

    result = record_usage(records)

    assert result.inserted == 0
    assert result.duplicates == 30
    assert snapshot() == before


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises writers"
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_lose_no_update(project):
    # Both writers touch the same rollup, histogram and key rows in every
    # batch, in opposite orders, so they contend for the same row locks.
    records = mixed_records(project, 1200, seed=5)
    for i, record in enumerate(records):
        record.occurred_at = START + datetime.timedelta(minutes=i % 40)
    halves = [records[:600], list(reversed(records[600:]))]
    start = threading.Barrier(2)
    errors = []

    def write(half):
        try:
            start.wait()
            for i in range(0, len(half), 100):
                record_usage(half[i : i + 100])
        except Exception as error:  # reported by the assert below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert UsageEvent.objects.count() == 1200
    reference = rollups.aggregate(rollups.event_rows(UsageEvent.objects.all()))
    for table in rollups.TABLES:
        assert stored_counts(table) == reference.counts[table]
    assert stored_histograms() == reference.histograms


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.django_db
def test_binary_cursor_raises_django_errors():
    with pytest.raises(ProgrammingError):
        with bulk.binary_cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
