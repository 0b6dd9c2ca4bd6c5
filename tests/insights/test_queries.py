import datetime
import random

import pytest

from insights import queries
from insights.models import HistogramMetric
from insights.recording import record_usage
from tests.factories import APIKeyFactory, KeyMappingFactory, UsageRecordFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def hourly_records(key, start, hours, per_hour=4):
    """One record every 60 / per_hour minutes, with tokens equal to the minute index."""
    records = []
    for minute in range(0, hours * 60, 60 // per_hour):
        records.append(
            UsageRecordFactory(
                key=key,
                occurred_at=start + datetime.timedelta(minutes=minute),
                prompt_tokens=minute + 1,
                completion_tokens=1,
            )
        )
    return records


def exact_day_totals(records, tz):
    totals = {}
    for record in records:
        day = record.occurred_at.astimezone(tz).date().isoformat()
        totals[day] = totals.get(day, 0) + record.prompt_tokens
    return totals


@pytest.mark.parametrize(
    "zone",
    ["Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Europe/Berlin", "UTC"],
)
def test_daily_totals_are_exact_in_timezone(project, zone):
    tz = queries.get_timezone(zone)
    key = APIKeyFactory(project=project)
    # 2026-03-06 to 2026-03-11 covers the US spring-forward day (23 hours).
    start = datetime.datetime(2026, 3, 6, tzinfo=UTC)
    records = hourly_records(key, start, hours=6 * 24)
    record_usage(records)
    range_start = datetime.datetime(2026, 3, 7, tzinfo=tz).astimezone(UTC)
    range_end = datetime.datetime(2026, 3, 10, tzinfo=tz).astimezone(UTC)
    buckets = queries.make_buckets(range_start, range_end, tz, queries.Granularity.DAY)

    result = queries.series(project.pk, buckets)[()]

    expected = exact_day_totals(records, tz)
    assert [b.label for b in buckets] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    assert [t.prompt_tokens for t in result] == [expected[b.label] for b in buckets]


def test_spring_forward_day_lasts_23_hours(project):
    tz = queries.get_timezone("America/New_York")
    start = datetime.datetime(2026, 3, 8, tzinfo=tz).astimezone(UTC)
    end = datetime.datetime(2026, 3, 9, tzinfo=tz).astimezone(UTC)

    buckets = queries.make_buckets(start, end, tz, queries.Granularity.DAY)

    assert len(buckets) == 1
    assert buckets[0].end - buckets[0].start == datetime.timedelta(hours=23)


def test_fall_back_day_sums_25_hours(project):
    tz = queries.get_timezone("Europe/Berlin")
    key = APIKeyFactory(project=project)
    records = hourly_records(
        key, datetime.datetime(2026, 10, 24, tzinfo=UTC), hours=72, per_hour=1
    )
    record_usage(records)
    start = datetime.datetime(2026, 10, 25, tzinfo=tz).astimezone(UTC)
    end = datetime.datetime(2026, 10, 26, tzinfo=tz).astimezone(UTC)

    total = queries.totals(project.pk, start, end)[()]

    assert total.requests == 25


def test_quarter_hour_edges_split_into_levels():
    start = datetime.datetime(2026, 1, 1, 18, 30, tzinfo=UTC)
    end = datetime.datetime(2026, 1, 3, 18, 30, tzinfo=UTC)

    pieces = queries.split_by_level(start, end)

    assert [(int(level), a.isoformat(), b.isoformat()) for level, a, b in pieces] == [
        (15, "2026-01-01T18:30:00+00:00", "2026-01-01T19:00:00+00:00"),
        (60, "2026-01-01T19:00:00+00:00", "2026-01-02T00:00:00+00:00"),
        (1440, "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"),
        (60, "2026-01-03T00:00:00+00:00", "2026-01-03T18:00:00+00:00"),
        (15, "2026-01-03T18:00:00+00:00", "2026-01-03T18:30:00+00:00"),
    ]


def test_totals_reject_range_not_on_quarter_hours(project):
    start = datetime.datetime(2026, 1, 1, 0, 7, tzinfo=UTC)

    with pytest.raises(ValueError, match="15-minute"):
        queries.totals(project.pk, start, start + datetime.timedelta(hours=1))


def test_totals_are_scoped_to_the_project(project, other_project):
    mine = APIKeyFactory(project=project)
    theirs = APIKeyFactory(project=other_project)
    when = datetime.datetime(2026, 1, 1, 10, tzinfo=UTC)
    record_usage(
        [
            UsageRecordFactory(key=mine, occurred_at=when),
            UsageRecordFactory(key=theirs, occurred_at=when),
        ]
    )

    total = queries.totals(
        project.pk,
        when - datetime.timedelta(hours=1),
        when + datetime.timedelta(hours=1),
    )[()]

    assert total.requests == 1


def test_totals_group_unattached_keys_under_application_zero(project):
    mapping = KeyMappingFactory(application__project=project)
    loose = APIKeyFactory(project=project)
    when = datetime.datetime(2026, 1, 1, 10, tzinfo=UTC)
    record_usage(
        [
            UsageRecordFactory(key=mapping.key, occurred_at=when),
            UsageRecordFactory(key=loose, occurred_at=when),
            UsageRecordFactory(key=loose, occurred_at=when),
        ]
    )

    by_app = queries.totals(
        project.pk,
        when,
        when + datetime.timedelta(minutes=15),
        group_by=("application_id",),
    )

    assert by_app[(mapping.application_id,)].requests == 1
    assert by_app[(0,)].requests == 2


def test_empty_range_gives_zeros_and_no_rates(project):
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)

    total = queries.totals(project.pk, start, start + datetime.timedelta(days=1))[()]

    assert total.requests == 0
    assert total.error_rate is None
    assert total.cost == 0


def exact_percentile(values, q):
    ordered = sorted(values)
    import math

    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_latency_percentile_within_two_percent(project, q):
    rng = random.Random(7)
    key = APIKeyFactory(project=project)
    start = datetime.datetime(2026, 2, 1, tzinfo=UTC)
    latencies = [int(rng.lognormvariate(7, 1.1)) + 1 for _ in range(3000)]
    records = [
        UsageRecordFactory(
            key=key,
            occurred_at=start + datetime.timedelta(seconds=97 * i),
            latency_ms=latency,
        )
        for i, latency in enumerate(latencies)
    ]
    record_usage(records)
    tz = queries.get_timezone("Asia/Kathmandu")
    range_start = datetime.datetime(2026, 2, 1, 12, tzinfo=tz).astimezone(UTC)
    range_end = start + datetime.timedelta(seconds=97 * 3000)
    range_end = queries.ceil_to_quarter(range_end)
    in_range = [
        r.latency_ms for r in records if range_start <= r.occurred_at < range_end
    ]

    estimate = queries.range_distribution(project.pk, range_start, range_end)[
        HistogramMetric.LATENCY
    ].percentile(q)

    exact = exact_percentile(in_range, q)
    assert abs(estimate - exact) / exact <= 0.02


def test_repeated_hour_labels_carry_offset():
    tz = queries.get_timezone("America/New_York")
    start = datetime.datetime(2026, 11, 1, 4, tzinfo=UTC)  # 00:00 EDT
    end = datetime.datetime(2026, 11, 1, 8, tzinfo=UTC)  # 03:00 EST

    buckets = queries.make_buckets(start, end, tz, queries.Granularity.HOUR)

    assert [b.label for b in buckets] == [
        "2026-11-01 00:00",
        "2026-11-01 01:00 UTC-04:00",
        "2026-11-01 01:00 UTC-05:00",
        "2026-11-01 02:00",
    ]


def test_series_and_totals_match_separate_reads(project):
    first = KeyMappingFactory(application__project=project)
    second = KeyMappingFactory(application__project=project)
    loose = APIKeyFactory(project=project)
    tz = queries.get_timezone("Asia/Kolkata")
    start = datetime.datetime(2026, 3, 1, tzinfo=tz).astimezone(UTC)
    end = datetime.datetime(2026, 3, 4, tzinfo=tz).astimezone(UTC)
    rng = random.Random(7)
    records = []
    for key in (first.key, second.key, loose):
        for _ in range(60):
            failed = rng.random() < 0.3
            records.append(
                UsageRecordFactory(
                    key=key,
                    occurred_at=start + datetime.timedelta(minutes=rng.randrange(4320)),
                    prompt_tokens=rng.randrange(1, 500),
                    status_code=rng.choice([429, 503]) if failed else 200,
                    error_type=("rate_limit" if rng.random() < 0.5 else "upstream_5xx")
                    if failed
                    else "",
                )
            )
    record_usage(records)
    buckets = queries.make_buckets(start, end, tz, queries.Granularity.DAY)
    group_by = ("error_type", "status_code")

    by_group, by_app = queries.series_and_totals(
        project.pk, buckets, group_by, "application_id"
    )

    expected_series = queries.series(project.pk, buckets, group_by=group_by)
    expected_totals = queries.totals(
        project.pk, start, end, group_by=("application_id",)
    )
    assert {k: [t.values for t in v] for k, v in by_group.items()} == {
        k: [t.values for t in v] for k, v in expected_series.items()
    }
    assert {k: t.values for k, t in by_app.items()} == {
        k: t.values for k, t in expected_totals.items()
    }
    assert sum(t.requests for t in by_app.values()) == 180
