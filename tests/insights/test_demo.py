import datetime
from io import StringIO

import pytest
from django.utils import timezone

from genai_apps.demo import DemoWorkspace
from insights import queries
from insights.demo import load_demo_traffic
from insights.models import UsageEvent
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    ProviderModelFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(project):
    applications = [GenAIApplicationFactory(project=project) for _ in range(2)]
    keys = []
    for app in applications:
        for _ in range(2):
            keys.append(KeyMappingFactory(application=app).key)
    revoked = KeyMappingFactory(application=applications[0], key__revoked=True).key
    loose = APIKeyFactory(project=project)
    for key in [*keys, revoked, loose]:
        ProviderModelFactory(provider=key.provider, name="gpt-4o-mini")
    return DemoWorkspace(
        project=project,
        users={},
        providers=[],
        proxies=[],
        keys=[*keys, revoked, loose],
        applications=applications,
    )


def test_demo_loads_history_last_hour_and_unattached_traffic(demo):
    out = StringIO()

    load_demo_traffic(demo, out, volume=0.02)

    now = timezone.now()
    events = UsageEvent.objects.filter(project=demo.project)
    assert events.filter(occurred_at__lt=now - datetime.timedelta(days=10)).exists()
    assert (
        events.filter(occurred_at__gte=now - datetime.timedelta(hours=1)).count() > 20
    )
    assert events.filter(application__isnull=True).exists()
    assert events.filter(reasoning_tokens__gt=0).exists()
    assert "Loaded" in out.getvalue()


def test_demo_gives_revoked_key_no_traffic_after_revocation(demo):
    load_demo_traffic(demo, StringIO(), volume=0.02)

    revoked = next(k for k in demo.keys if k.revoked_at)
    events = UsageEvent.objects.filter(key=revoked)
    assert events.exists()
    assert not events.filter(occurred_at__gt=revoked.revoked_at).exists()


def test_demo_totals_match_rollups(demo):
    load_demo_traffic(demo, StringIO(), volume=0.02)
    end = queries.ceil_to_quarter(timezone.now())
    start = end - datetime.timedelta(days=20)

    total = queries.totals(demo.project.pk, start, end)[()]

    assert total.requests == UsageEvent.objects.count()
