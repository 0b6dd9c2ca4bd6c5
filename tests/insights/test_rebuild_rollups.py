import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from insights.models import KeyRollup, UsageHistogram, UsageRollup
from insights.recording import record_usage
from tests.factories import APIKeyFactory, KeyMappingFactory, UsageRecordFactory

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 5, 1, 22, tzinfo=datetime.UTC)


def snapshot():
    keys = sorted(
        KeyRollup.objects.values_list(
            "level",
            "bucket_start",
            "application_id",
            "key_id",
            "requests",
            "prompt_tokens",
            "cost_nanousd",
        )
    )
    rollups = sorted(
        UsageRollup.objects.values_list(
            "level",
            "bucket_start",
            "application_id",
            "model",
            "status_code",
            "error_type",
            "requests",
            "errors",
            "prompt_tokens",
            "cost_nanousd",
        )
    )
    histograms = sorted(
        UsageHistogram.objects.values_list(
            "level", "bucket_start", "application_id", "metric", "counts"
        )
    )
    return rollups, keys, histograms


@pytest.fixture
def recorded(project):
    mapping = KeyMappingFactory(application__project=project)
    loose = APIKeyFactory(project=project)
    records = [
        UsageRecordFactory(
            key=mapping.key if i % 3 else loose,
            occurred_at=START + datetime.timedelta(minutes=7 * i),
            latency_ms=100 + i,
            status_code=429 if i % 10 == 0 else 200,
            error_type="rate_limit" if i % 10 == 0 else "",
        )
        for i in range(100)
    ]
    for i in range(0, 100, 25):
        record_usage(records[i : i + 25])
    return records


def test_rebuild_reproduces_rollups_written_by_recording(recorded):
    before = snapshot()

    call_command("rebuild_rollups", stdout=StringIO())

    assert snapshot() == before


def test_rebuild_twice_gives_the_same_tables(recorded):
    call_command("rebuild_rollups", stdout=StringIO())
    first = snapshot()

    call_command("rebuild_rollups", stdout=StringIO())

    assert snapshot() == first


def test_rebuild_restores_deleted_rollups(recorded):
    before = snapshot()
    UsageRollup.objects.all().delete()
    UsageHistogram.objects.all().delete()

    call_command("rebuild_rollups", "--since", "2026-05-02", stdout=StringIO())
    call_command("rebuild_rollups", stdout=StringIO())

    assert snapshot() == before


def test_dry_run_changes_nothing(recorded):
    UsageRollup.objects.all().delete()
    out = StringIO()

    call_command("rebuild_rollups", "--dry-run", stdout=out)

    assert "Would rebuild rollups from 100 events." in out.getvalue()
    assert UsageRollup.objects.count() == 0


def test_unknown_project_is_an_error(db):
    with pytest.raises(CommandError, match="Project not found: nope"):
        call_command("rebuild_rollups", "--project", "nope", stdout=StringIO())


def test_invalid_since_names_the_expected_format(db):
    with pytest.raises(
        CommandError, match="--since '2026-13-01' is not a date; use YYYY-MM-DD"
    ):
        call_command("rebuild_rollups", "--since", "2026-13-01", stdout=StringIO())
