import datetime
import importlib
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from insights.models import UsageEvent, UsagePrice, UsageRollup
from insights.recording import compute_cost_nanousd, record_usage
from tests.factories import (
    APIKeyFactory,
    KeyMappingFactory,
    ProviderModelFactory,
    UsageRecordFactory,
)
from workspace.models import APIKey

pytestmark = pytest.mark.django_db

NOON = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def priced_key(project):
    key = APIKeyFactory(project=project)
    ProviderModelFactory(
        provider=key.provider,
        name="o4-mini",
        input_price=Decimal("1.10"),
        cached_input_price=Decimal("0.275"),
        output_price=Decimal("4.40"),
    )
    return key


def test_cost_counts_cached_and_reasoning_tokens_exactly(priced_key):
    # 307 uncached x 1.10 + 1536 cached x 0.275 + 912 output x 4.40 per 1M
    # tokens = $0.0047729; reasoning tokens are part of the 912 output tokens.
    record = UsageRecordFactory(
        key=priced_key,
        model="o4-mini",
        prompt_tokens=1843,
        cached_tokens=1536,
        completion_tokens=912,
        reasoning_tokens=640,
    )

    record_usage([record])

    event = UsageEvent.objects.get()
    assert event.cost == Decimal("0.0047729")
    assert event.cost_nanousd == 4_772_900


def test_tiny_cost_does_not_round_to_zero(project):
    key = APIKeyFactory(project=project)
    ProviderModelFactory(
        provider=key.provider,
        name="nano",
        input_price=Decimal("0.10"),
        cached_input_price=None,
        output_price=Decimal("0.40"),
    )
    # 10 prompt tokens x $0.10 / 1M + 5 completion tokens x $0.40 / 1M = $0.000003.
    record = UsageRecordFactory(
        key=key, model="nano", prompt_tokens=10, completion_tokens=5
    )

    record_usage([record])

    assert UsageEvent.objects.get().cost == Decimal("0.000003")


def test_cost_rounds_half_up_to_a_nanodollar():
    from insights.recording import Prices

    prices = Prices(Decimal("0.000001"), None, Decimal("0"), None)

    assert compute_cost_nanousd(prices, prompt=500, completion=0) == 1
    assert compute_cost_nanousd(prices, prompt=499, completion=0) == 0


def test_model_without_price_has_unknown_cost(project):
    key = APIKeyFactory(project=project)
    record = UsageRecordFactory(key=key, model="unlisted-model")

    record_usage([record])

    event = UsageEvent.objects.get()
    assert event.cost is None
    assert event.price is None
    rollup = UsageRollup.objects.get(level=15)
    assert rollup.unpriced_requests == 1
    assert rollup.cost_nanousd == 0


def test_missing_cached_price_makes_cost_unknown_only_when_needed(project):
    key = APIKeyFactory(project=project)
    ProviderModelFactory(provider=key.provider, name="m", cached_input_price=None)
    with_cache = UsageRecordFactory(
        key=key, model="m", prompt_tokens=100, cached_tokens=50
    )
    without_cache = UsageRecordFactory(key=key, model="m", prompt_tokens=100)

    record_usage([with_cache, without_cache])

    assert UsageEvent.objects.get(event_id=with_cache.event_id).cost is None
    assert UsageEvent.objects.get(event_id=without_cache.event_id).cost is not None


def test_cache_write_tokens_use_cache_write_price(project):
    key = APIKeyFactory(project=project)
    ProviderModelFactory(
        provider=key.provider,
        name="claude",
        input_price=Decimal("3"),
        cached_input_price=Decimal("0.30"),
        output_price=Decimal("15"),
        cache_write_price=Decimal("3.75"),
    )
    # 1000 prompt tokens: 200 read from cache, 300 written to it, 500 uncached.
    record = UsageRecordFactory(
        key=key,
        model="claude",
        prompt_tokens=1000,
        cached_tokens=200,
        cache_write_tokens=300,
        completion_tokens=100,
    )

    record_usage([record])

    expected = (
        Decimal("500") * 3 + 200 * Decimal("0.30") + 300 * Decimal("3.75") + 100 * 15
    )
    assert UsageEvent.objects.get().cost == expected / 1_000_000


def test_prices_used_are_stored_with_the_event(priced_key):
    record_usage([UsageRecordFactory(key=priced_key, model="o4-mini")])

    price = UsageEvent.objects.get().price
    assert price.input_price == Decimal("1.10")
    assert price.output_price == Decimal("4.40")


def test_identical_prices_share_one_price_row(priced_key):
    record_usage(
        [UsageRecordFactory(key=priced_key, model="o4-mini") for _ in range(3)]
    )
    record_usage([UsageRecordFactory(key=priced_key, model="o4-mini")])

    assert UsagePrice.objects.count() == 1


def test_duplicate_event_is_stored_and_counted_once(priced_key):
    record = UsageRecordFactory(key=priced_key, occurred_at=NOON)

    first = record_usage([record])
    second = record_usage([record])

    assert first.inserted == 1
    assert second.inserted == 0
    assert second.duplicate_ids == {record.event_id}
    assert UsageEvent.objects.count() == 1
    assert UsageRollup.objects.get(level=1440).requests == 1


def test_duplicate_within_one_batch_is_counted_once(priced_key):
    record = UsageRecordFactory(key=priced_key, occurred_at=NOON)

    result = record_usage([record, record])

    assert result.inserted == 1
    assert result.duplicates == 1
    assert UsageRollup.objects.get(level=60).requests == 1


def test_application_is_resolved_from_the_key_mapping(project):
    mapping = KeyMappingFactory(application__project=project)
    record = UsageRecordFactory(key=mapping.key)

    record_usage([record])

    assert UsageEvent.objects.get().application_id == mapping.application_id


def test_application_passed_by_the_gateway_wins(project):
    mapping = KeyMappingFactory(application__project=project)
    other = KeyMappingFactory(application__project=project).application
    record = UsageRecordFactory(key=mapping.key, application_id=other.pk)

    record_usage([record])

    assert UsageEvent.objects.get().application_id == other.pk


def test_provider_is_taken_from_the_key(priced_key):
    record_usage([UsageRecordFactory(key=priced_key)])

    assert UsageEvent.objects.get().provider_id == priced_key.provider_id


def test_rollups_sum_every_level(priced_key):
    records = [
        UsageRecordFactory(
            key=priced_key,
            occurred_at=NOON + datetime.timedelta(minutes=20 * i),
            prompt_tokens=100,
            completion_tokens=10,
            status_code=500 if i == 0 else 200,
            error_type="upstream_5xx" if i == 0 else "",
        )
        for i in range(4)
    ]

    record_usage(records)

    for level in (15, 60, 1440):
        rows = UsageRollup.objects.filter(level=level)
        assert sum(r.requests for r in rows) == 4
        assert sum(r.errors for r in rows) == 1
        assert sum(r.prompt_tokens for r in rows) == 400
    assert (
        UsageRollup.objects.filter(level=15).values("bucket_start").distinct().count()
        == 4
    )


def test_record_usage_rolls_back_everything_on_error(priced_key):
    good = UsageRecordFactory(key=priced_key)
    bad = UsageRecordFactory(key=priced_key, prompt_tokens=-1)

    with pytest.raises(IntegrityError):
        record_usage([good, bad])

    assert UsageEvent.objects.count() == 0
    assert UsageRollup.objects.count() == 0


def test_event_ids_are_time_ordered():
    from insights.recording import new_event_id

    first = new_event_id()
    second = new_event_id()

    assert first.version == 7
    assert first.int >> 80 <= second.int >> 80
    assert isinstance(first, uuid.UUID)


def test_request_without_tokens_costs_zero_whatever_the_model(project):
    key = APIKeyFactory(project=project)
    refused = UsageRecordFactory(
        key=key,
        model="unlisted-model",
        prompt_tokens=0,
        completion_tokens=0,
        status_code=400,
        error_type="invalid_request",
    )

    record_usage([refused])

    assert UsageEvent.objects.get().cost_nanousd == 0
    rollup = UsageRollup.objects.get(level=15)
    assert rollup.unpriced_requests == 0
    assert rollup.cost_nanousd == 0


def test_request_without_model_or_tokens_costs_zero():
    assert compute_cost_nanousd(None, prompt=0, completion=0) == 0


def test_recording_sets_last_used_at_to_newest_event_of_the_batch(priced_key):
    records = [
        UsageRecordFactory(key=priced_key, occurred_at=NOON + datetime.timedelta(m))
        for m in (3, 9, 1)
    ]

    record_usage(records)

    priced_key.refresh_from_db()
    assert priced_key.last_used_at == NOON + datetime.timedelta(9)


def test_recording_older_events_does_not_move_last_used_at_back(priced_key):
    record_usage([UsageRecordFactory(key=priced_key, occurred_at=NOON)])

    record_usage(
        [UsageRecordFactory(key=priced_key, occurred_at=NOON - datetime.timedelta(1))]
    )

    priced_key.refresh_from_db()
    assert priced_key.last_used_at == NOON


def test_recording_updates_last_used_at_of_all_keys_in_one_statement(project):
    keys = APIKeyFactory.create_batch(3, project=project)
    records = [UsageRecordFactory(key=key, occurred_at=NOON) for key in keys]

    with CaptureQueriesContext(connection) as context:
        record_usage(records)

    key_updates = [
        q for q in context.captured_queries if 'UPDATE "workspace_apikey"' in q["sql"]
    ]
    assert len(key_updates) == 1
    used = APIKey.objects.filter(pk__in=[k.pk for k in keys])
    assert set(used.values_list("last_used_at", flat=True)) == {NOON}


def test_migration_frees_stored_events_without_tokens(project):
    from django.apps import apps

    free_migration = importlib.import_module(
        "insights.migrations.0004_free_requests_without_tokens"
    )
    key = APIKeyFactory(project=project)
    record_usage(
        [UsageRecordFactory(key=key, model="m", prompt_tokens=0, completion_tokens=0)]
    )
    UsageEvent.objects.update(cost_nanousd=None)

    free_migration.price_requests_without_tokens(apps, None)

    assert UsageEvent.objects.get().cost_nanousd == 0


def test_usage_price_reads_as_dollars():
    price = UsagePrice(
        signature="x",
        input_price=Decimal("2.500000"),
        cached_input_price=Decimal("0.075000"),
        output_price=Decimal("10"),
        cache_write_price=None,
    )

    assert str(price) == (
        "input $2.50, cached input $0.075, cache write unknown, "
        "output $10.00 per 1M tokens"
    )
