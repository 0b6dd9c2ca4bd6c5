import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from insights.models import RollupLevel, UsageEvent, UsageHistogram, UsageRollup
from tests.factories import UsageEventFactory

DAY = datetime.timedelta(days=1)


def run_purge(*args):
    stdout = io.StringIO()
    call_command("purge_usage", *args, stdout=stdout)
    return stdout.getvalue()


@pytest.fixture
def events(project, other_project):
    now = timezone.now()
    return {
        "old": UsageEventFactory(key__project=project, occurred_at=now - 100 * DAY),
        "older": UsageEventFactory(key__project=project, occurred_at=now - 200 * DAY),
        "recent": UsageEventFactory(key__project=project, occurred_at=now - 10 * DAY),
        "foreign_old": UsageEventFactory(
            key__project=other_project, occurred_at=now - 100 * DAY
        ),
    }


def remaining():
    return set(UsageEvent.objects.values_list("pk", flat=True))


def test_purge_deletes_events_before_cutoff(events):
    stdout = run_purge("--older-than-days", "90")

    assert remaining() == {events["recent"].pk}
    assert stdout.splitlines()[-1].startswith("Deleted 3 usage events from before ")
    assert stdout.splitlines()[-1].endswith("UTC; rollups kept.")


def test_purge_dry_run_deletes_nothing(events):
    stdout = run_purge("--older-than-days", "90", "--dry-run")

    assert len(remaining()) == 4
    assert stdout.startswith("Would delete 3 usage events from before ")
    assert stdout.endswith("(dry run, nothing was deleted).\n")


def test_purge_limits_to_project(events):
    run_purge("--older-than-days", "90", "--project", "globex")

    assert events["foreign_old"].pk not in remaining()
    assert events["old"].pk in remaining()


def test_purge_works_in_batches(events):
    stdout = run_purge("--older-than-days", "90", "--batch-size", "2")

    assert stdout.splitlines()[:2] == [
        "Deleted 2 of 3 usage events…",
        "Deleted 3 of 3 usage events…",
    ]
    assert remaining() == {events["recent"].pk}


def test_purge_with_nothing_old(project):
    UsageEventFactory(key__project=project)

    stdout = run_purge("--older-than-days", "30")

    assert stdout.startswith("Deleted 0 usage events")
    assert UsageEvent.objects.count() == 1


def rollup_buckets():
    return sorted(
        UsageRollup.objects.filter(level=RollupLevel.DAY).values_list(
            "bucket_start", flat=True
        )
    )


def test_purge_keeps_rollups_by_default(events):
    before = rollup_buckets()

    run_purge("--older-than-days", "90")

    assert rollup_buckets() == before
    assert len(before) == 4


def test_purge_rollups_option_deletes_old_buckets(events):
    stdout = run_purge("--older-than-days", "90", "--rollups")

    assert len(rollup_buckets()) == 1
    assert not UsageHistogram.objects.filter(
        bucket_start__lt=timezone.now() - 90 * DAY
    ).exists()
    assert "usage rollups" in stdout.splitlines()[-1]
    assert "rollups kept" not in stdout


def test_purge_accepts_largest_day_count(events):
    stdout = run_purge("--older-than-days", "36500", "--dry-run")

    assert stdout.startswith("Would delete 0 usage events")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--older-than-days", "0"],
            "--older-than-days must be between 1 and 36,500 days, got 0",
        ),
        (
            ["--older-than-days", "-5"],
            "--older-than-days must be between 1 and 36,500 days, got -5",
        ),
        (
            ["--older-than-days", "99999999", "--dry-run"],
            "--older-than-days must be between 1 and 36,500 days, got 99,999,999",
        ),
        (
            ["--older-than-days", "5", "--batch-size", "0"],
            "--batch-size must be 1 or more, got 0",
        ),
        (["--older-than-days", "5", "--project", "nope"], "Project 'nope' not found"),
    ],
)
def test_purge_rejects_bad_option(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_purge(*args)
