import datetime
from decimal import Decimal

import pytest

from insights.recording import record_usage
from insights.review_usage import application_last_traffic, key_usage_since
from tests.factories import (
    APIKeyFactory,
    KeyMappingFactory,
    ProviderModelFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 4, 10, 12, 7, tzinfo=datetime.UTC)


def test_key_usage_since_counts_requests_and_cost(project, django_assert_num_queries):
    key = APIKeyFactory(project=project)
    ProviderModelFactory(
        provider=key.provider,
        name="m",
        input_price=Decimal("1"),
        output_price=Decimal("2"),
    )
    record_usage(
        [
            UsageRecordFactory(
                key=key,
                model="m",
                occurred_at=NOW,
                prompt_tokens=1000,
                completion_tokens=0,
            ),
            UsageRecordFactory(
                key=key, model="m", occurred_at=NOW - datetime.timedelta(days=40)
            ),
        ]
    )

    with django_assert_num_queries(1):
        usage = key_usage_since([project.pk], NOW - datetime.timedelta(days=30))

    assert usage == {key.pk: (1, Decimal("0.001"))}


def test_key_usage_since_reports_unknown_cost(project):
    key = APIKeyFactory(project=project)
    record_usage([UsageRecordFactory(key=key, model="unpriced", occurred_at=NOW)])

    assert key_usage_since([project.pk], NOW - datetime.timedelta(days=1)) == {
        key.pk: (1, None)
    }


def test_application_last_traffic(project, other_project, django_assert_num_queries):
    mapping = KeyMappingFactory(application__project=project)
    foreign = KeyMappingFactory(application__project=other_project)
    record_usage(
        [
            UsageRecordFactory(
                key=mapping.key, occurred_at=NOW - datetime.timedelta(days=3)
            ),
            UsageRecordFactory(key=mapping.key, occurred_at=NOW),
            UsageRecordFactory(key=foreign.key, occurred_at=NOW),
        ]
    )

    with django_assert_num_queries(1):
        last = application_last_traffic([project.pk])

    assert last == {
        mapping.application_id: datetime.datetime(
            2026, 4, 10, 12, 0, tzinfo=datetime.UTC
        )
    }
