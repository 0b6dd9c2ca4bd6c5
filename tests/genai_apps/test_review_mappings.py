import csv
import datetime
import io
import json

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from genai_apps.models import KeyMapping, KeyMappingEvent, MappingReview
from genai_apps.review import REVOKED_KEY, plural
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    MembershipFactory,
    ProjectFactory,
    UsageEventFactory,
    UserFactory,
)

DAY = datetime.timedelta(days=1)


def run_review(*args):
    """Run review_mappings; return (stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("review_mappings", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def review_json(*args):
    stdout, _ = run_review("--format", "json", *args)
    return json.loads(stdout)


def kinds(payload):
    return [
        finding["kind"]
        for project in payload["projects"]
        for finding in project["findings"]
    ]


def old_key(project, **fields):
    """A key created 90 days ago that was used an hour ago."""
    now = timezone.now()
    fields.setdefault("last_used_at", now - datetime.timedelta(hours=1))
    return APIKeyFactory(project=project, created_at=now - 90 * DAY, **fields)


def mapped_key(application, **fields):
    key = old_key(application.project, **fields)
    KeyMappingFactory(application=application, key=key)
    return key


@pytest.fixture
def application(project):
    return GenAIApplicationFactory(
        project=project, name="Support bot", created_at=timezone.now() - 90 * DAY
    )


@pytest.fixture
def busy_key(application):
    """A mapped key with traffic today, so the application is not idle."""
    key = mapped_key(application, name="busy")
    UsageEventFactory(key=key)
    return key


def test_review_reports_revoked_mapped_key(application, busy_key):
    mapped_key(application, name="old", revoked_at=timezone.now() - 3 * DAY)

    payload = review_json()

    assert kinds(payload) == ["revoked_key"]


def test_review_reports_expired_mapped_key(application, busy_key):
    mapped_key(application, expires_at=timezone.now() - DAY)

    payload = review_json()

    assert kinds(payload) == ["expired_key"]


def test_review_reports_key_expiring_within_days(application, busy_key):
    mapped_key(application, expires_at=timezone.now() + 5 * DAY)
    mapped_key(application, expires_at=timezone.now() + 20 * DAY)

    payload = review_json("--expiring-days", "7")

    assert kinds(payload) == ["expiring_key"]


def test_review_reports_key_unused_for_stale_days(application, busy_key):
    mapped_key(application, last_used_at=timezone.now() - 40 * DAY)

    payload = review_json()

    assert kinds(payload) == ["unused_key"]


def test_review_counts_never_used_key_as_unused(application, busy_key):
    mapped_key(application, last_used_at=None)

    payload = review_json()

    [finding] = payload["projects"][0]["findings"]
    assert finding["kind"] == "unused_key"
    assert finding["at"] is None
    assert "Never used" in finding["message"]


def test_review_skips_new_key_not_used_yet(application, busy_key):
    key = APIKeyFactory(project=application.project, created_at=timezone.now() - DAY)
    KeyMappingFactory(application=application, key=key)

    payload = review_json()

    assert kinds(payload) == []


def test_review_counts_recent_event_as_use(application, busy_key):
    key = mapped_key(application, last_used_at=None)
    UsageEventFactory(key=key, occurred_at=timezone.now() - 2 * DAY)

    payload = review_json()

    assert kinds(payload) == []


def test_review_stale_days_option_moves_the_window(application, busy_key):
    mapped_key(application, last_used_at=timezone.now() - 10 * DAY)

    payload = review_json("--stale-days", "7")

    assert kinds(payload) == ["unused_key"]


def test_review_reports_application_without_keys(project, application, busy_key):
    GenAIApplicationFactory(project=project, name="Empty")

    payload = review_json()

    [finding] = payload["projects"][0]["findings"]
    assert finding["kind"] == "application_without_keys"
    assert finding["application"]["name"] == "Empty"


def test_review_reports_application_without_traffic(project):
    idle = GenAIApplicationFactory(
        project=project, name="Idle", created_at=timezone.now() - 90 * DAY
    )
    key = mapped_key(idle, last_used_at=None)
    UsageEventFactory(key=key, occurred_at=timezone.now() - 60 * DAY)

    payload = review_json()

    assert kinds(payload) == ["unused_key", "application_without_traffic"]
    finding = payload["projects"][0]["findings"][1]
    assert finding["at"].startswith(f"{(timezone.now() - 60 * DAY):%Y-%m-%d}")


def test_review_skips_deleted_application(project):
    GenAIApplicationFactory(project=project, deleted_at=timezone.now())

    payload = review_json()

    assert kinds(payload) == []


def test_review_reports_unmapped_key_with_share(project, application, busy_key):
    stray = old_key(project, name="stray")
    UsageEventFactory.create_batch(3, key=stray, cost_nanousd=2_000_000)

    payload = review_json()

    [finding] = payload["projects"][0]["findings"]
    assert finding["kind"] == "unmapped_key_with_traffic"
    assert finding["application"] is None
    assert finding["usage"] == {
        "requests": 3,
        "cost_usd": "0.006000000",
        "request_share": 0.75,
        "cost_share": 0.8571,
    }


def test_review_reports_unknown_cost_as_null(project, application, busy_key):
    stray = old_key(project, name="stray")
    UsageEventFactory(key=stray, cost_nanousd=None)

    payload = review_json()

    [finding] = payload["projects"][0]["findings"]
    assert finding["usage"] == {
        "requests": 1,
        "cost_usd": None,
        "request_share": 0.5,
        "cost_share": None,
    }


def test_review_ignores_old_traffic_of_unmapped_key(project, application, busy_key):
    stray = old_key(project)
    UsageEventFactory(key=stray, occurred_at=timezone.now() - 45 * DAY)

    payload = review_json()

    assert kinds(payload) == []


def test_review_reports_key_whose_creator_left(project, application, busy_key):
    former = UserFactory(username="fiona")
    mapped_key(application, name="legacy", created_by=former)

    payload = review_json()

    [finding] = payload["projects"][0]["findings"]
    assert finding["kind"] == "creator_not_member"
    assert finding["key"]["created_by"] == "fiona"


def test_review_skips_creator_who_is_member(project, owner, application, busy_key):
    mapped_key(application, created_by=owner)

    payload = review_json()

    assert kinds(payload) == []


def test_review_skips_revoked_key_of_former_member(project):
    former = UserFactory(username="fiona")
    old_key(project, created_by=former, revoked_at=timezone.now())

    payload = review_json()

    assert kinds(payload) == []


def test_review_says_nothing_to_report(project, application, busy_key):
    stdout, _ = run_review()

    assert stdout == "Reviewed 1 project, 1 key and 1 application: nothing to report.\n"


def test_review_table_ends_with_summary_line(application, busy_key):
    mapped_key(application, name="old", revoked_at=timezone.now())

    stdout, _ = run_review()

    lines = stdout.splitlines()
    assert lines[0].split() == ["PROJECT", "APPLICATION", "KEY", "FINDING", "DETAIL"]
    assert "Support bot" in lines[1]
    assert "revoked key" in lines[1]
    assert lines[-1] == (
        "Reviewed 1 project, 2 keys and 1 application: 1 finding (1 revoked key)."
    )


def test_review_project_option_limits_scope(project, other_project, busy_key):
    GenAIApplicationFactory(project=other_project)

    payload = review_json("--project", "acme")

    assert [p["slug"] for p in payload["projects"]] == ["acme"]
    assert kinds(payload) == []


def test_review_covers_every_project_by_default(project, other_project, busy_key):
    GenAIApplicationFactory(project=other_project)

    payload = review_json()

    assert [p["slug"] for p in payload["projects"]] == ["acme", "globex"]
    assert kinds(payload) == ["application_without_keys"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope"], "Project 'nope' not found"),
        (
            ["--stale-days", "-1"],
            "--stale-days must be between 1 and 36,500 days, got -1",
        ),
        (
            ["--stale-days", "0"],
            "--stale-days must be between 1 and 36,500 days, got 0",
        ),
        (
            ["--stale-days", "1000000"],
            "--stale-days must be between 1 and 36,500 days, got 1,000,000",
        ),
        (
            ["--stale-days", "99999999999"],
            "--stale-days must be between 1 and 36,500 days, got 99,999,999,999",
        ),
        (
            ["--expiring-days", "-3"],
            "--expiring-days must be between 0 and 36,500 days, got -3",
        ),
        (
            ["--expiring-days", "3000000"],
            "--expiring-days must be between 0 and 36,500 days, got 3,000,000",
        ),
        (["--apply"], "--apply only works with --detach"),
        (["--email", "not-an-address"], "'not-an-address' is not a valid email"),
    ],
)
def test_review_rejects_bad_option(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_review(*args)


def test_review_rejects_bad_option_without_recording(db):
    with pytest.raises(CommandError):
        run_review("--stale-days", "-1")

    assert not MappingReview.objects.exists()


def test_detach_dry_run_changes_nothing(application, busy_key):
    mapped_key(application, name="old", revoked_at=timezone.now())

    stdout, _ = run_review("--detach")

    assert "Would detach revoked key “old”" in stdout
    assert "from “Support bot” in acme" in stdout
    assert stdout.splitlines()[-1].endswith(
        "; would detach 1 key (dry run, add --apply to detach)."
    )
    assert KeyMapping.objects.count() == 2
    assert not KeyMappingEvent.objects.exists()


def test_detach_apply_detaches_through_audit_trail(application, busy_key):
    revoked = mapped_key(application, revoked_at=timezone.now())
    expired = mapped_key(application, expires_at=timezone.now() - DAY)
    unused = mapped_key(application, last_used_at=timezone.now() - 50 * DAY)
    expiring = mapped_key(application, expires_at=timezone.now() + DAY)

    stdout, _ = run_review("--detach", "--apply")

    remaining = set(KeyMapping.objects.values_list("key_id", flat=True))
    assert remaining == {busy_key.pk, expiring.pk}
    events = KeyMappingEvent.objects.all()
    assert {event.key_id for event in events} == {revoked.pk, expired.pk, unused.pk}
    assert {event.source for event in events} == {"review"}
    assert {event.action for event in events} == {"detach"}
    assert {event.actor for event in events} == {None}
    assert stdout.splitlines()[-1].endswith("; detached 3 keys.")


def test_detach_apply_keeps_the_keys(application, busy_key):
    revoked = mapped_key(application, revoked_at=timezone.now())

    run_review("--detach", "--apply")

    revoked.refresh_from_db()
    assert revoked.revoked_at is not None


def test_detach_skips_unmapped_findings(project, application, busy_key):
    stray = old_key(project)
    UsageEventFactory(key=stray)

    stdout, _ = run_review("--detach", "--apply")

    assert not KeyMappingEvent.objects.exists()
    assert "detached 0 keys" in stdout


def test_fail_on_findings_exits_with_status_1(application, busy_key):
    mapped_key(application, revoked_at=timezone.now())

    with pytest.raises(CommandError) as raised:
        run_review("--fail-on-findings")

    assert raised.value.returncode == 1
    assert "Found 1 finding(s)" in str(raised.value)


def test_fail_on_findings_passes_when_clean(application, busy_key):
    stdout, _ = run_review("--fail-on-findings")

    assert stdout.endswith("nothing to report.\n")


def test_fail_on_findings_still_records_run(application, busy_key):
    mapped_key(application, revoked_at=timezone.now())

    with pytest.raises(CommandError):
        run_review("--fail-on-findings")

    assert MappingReview.objects.get().finding_count == 1


def test_summary_counts_use_thousands_separators():
    assert plural(4000, REVOKED_KEY) == "4,000 revoked keys"


def test_email_sends_report(settings, application, busy_key):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mapped_key(application, name="old", revoked_at=timezone.now())

    stdout, _ = run_review(
        "--email", "platform@example.com", "--email", "b@example.com"
    )

    [message] = mail.outbox
    assert message.to == ["platform@example.com", "b@example.com"]
    assert message.subject == "Mapping review: 1 finding"
    assert "revoked key" in message.body
    assert message.body.rstrip().endswith("1 finding (1 revoked key).")
    [(filename, content, mimetype)] = message.attachments
    assert filename == "mapping-review.json"
    assert json.loads(content)["finding_count"] == 1
    assert mimetype == "application/json"
    assert "Sent the report to platform@example.com, b@example.com." in stdout


def test_review_accepts_largest_day_counts(application, busy_key):
    payload = review_json("--stale-days", "36500", "--expiring-days", "36500")

    assert payload["options"]["stale_days"] == 36500


def test_email_json_format_keeps_status_off_stdout(settings, application, busy_key):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    stdout, stderr = run_review("--format", "json", "--email", "x@example.com")

    assert json.loads(stdout)["finding_count"] == 0
    assert "Sent the report to x@example.com." in stderr


def test_email_to_console_backend_keeps_stdout_json(
    settings, capsys, application, busy_key
):
    # No stdout or stderr arguments, so the command and the console backend
    # write to the process streams, as on the command line.
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    call_command("review_mappings", "--format", "json", "--email", "x@example.com")

    assert json.loads(capsys.readouterr().out)["finding_count"] == 0


def test_email_to_console_backend_warns_nothing_was_sent(
    settings, capsys, application, busy_key
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    call_command("review_mappings", "--email", "x@example.com")
    stdout, stderr = capsys.readouterr()

    assert "Subject: Mapping review: nothing to report" in stderr
    assert "Warning: the report for x@example.com was written to the console" in (
        stderr
    )
    assert "Sent the report" not in stdout + stderr


def test_email_says_nothing_to_report(settings, application, busy_key):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    run_review("--email", "platform@example.com")

    assert mail.outbox[0].subject == "Mapping review: nothing to report"


def test_run_is_recorded_with_options_and_counts(project, application, busy_key):
    mapped_key(application, revoked_at=timezone.now())

    run_review("--project", "acme", "--stale-days", "10", "--detach", "--apply")

    review = MappingReview.objects.get()
    assert review.project == project
    assert review.options == {
        "project": "acme",
        "stale_days": 10,
        "expiring_days": 14,
        "detach": True,
        "apply": True,
    }
    assert review.finding_count == 1
    assert review.counts["revoked_key"] == 1
    assert review.counts["unused_key"] == 0
    assert review.detached_count == 1


def test_json_payload_shape(project, owner, application, busy_key):
    revoked_at = timezone.now() - 2 * DAY
    old = mapped_key(application, name="old", revoked_at=revoked_at, created_by=owner)
    stray = old_key(project, name="stray")
    UsageEventFactory(key=stray, cost_nanousd=3_000_000)

    payload = review_json("--detach")

    assert payload == {
        "version": 1,
        "generated_at": payload["generated_at"],
        "options": {
            "project": None,
            "stale_days": 30,
            "expiring_days": 14,
            "detach": True,
            "apply": False,
        },
        "finding_count": 2,
        "counts": {
            "revoked_key": 1,
            "expired_key": 0,
            "expiring_key": 0,
            "unused_key": 0,
            "application_without_keys": 0,
            "application_without_traffic": 0,
            "unmapped_key_with_traffic": 1,
            "creator_not_member": 0,
        },
        "projects": [
            {
                "slug": "acme",
                "name": "Acme",
                "findings": [
                    {
                        "kind": "revoked_key",
                        "application": {"id": application.pk, "name": "Support bot"},
                        "key": {
                            "id": old.pk,
                            "name": "old",
                            "prefix": old.prefix,
                            "created_by": "olivia",
                        },
                        "at": revoked_at.isoformat().replace("+00:00", "Z"),
                        "usage": None,
                        "message": f"Revoked on {revoked_at:%Y-%m-%d} but still "
                        "attached.",
                    },
                    {
                        "kind": "unmapped_key_with_traffic",
                        "application": None,
                        "key": {
                            "id": stray.pk,
                            "name": "stray",
                            "prefix": stray.prefix,
                            "created_by": None,
                        },
                        "at": None,
                        "usage": {
                            "requests": 1,
                            "cost_usd": "0.003000000",
                            "request_share": 0.5,
                            "cost_share": 0.75,
                        },
                        "message": "Made 1 request (50.0% of the project's) in "
                        "the last 30 days but belongs to no application.",
                    },
                ],
            }
        ],
        "detach": {
            "requested": True,
            "applied": False,
            "keys": [
                {
                    "project": "acme",
                    "application": {"id": application.pk, "name": "Support bot"},
                    "key": {
                        "id": old.pk,
                        "name": "old",
                        "prefix": old.prefix,
                        "created_by": "olivia",
                    },
                    "reason": "revoked_key",
                }
            ],
        },
    }


def test_json_keeps_stdout_parseable(application, busy_key):
    mapped_key(application, revoked_at=timezone.now())

    stdout, stderr = run_review("--format", "json", "--detach")

    assert json.loads(stdout)["finding_count"] == 1
    assert stderr.splitlines()[0].startswith("Would detach")
    assert stderr.splitlines()[-1].startswith("Reviewed 1 project")


def test_csv_rows_and_formula_cells(project, application, busy_key):
    mapped_key(application, name="=HYPERLINK(1)", revoked_at=timezone.now())

    stdout, stderr = run_review("--format", "csv")

    rows = list(csv.DictReader(io.StringIO(stdout)))
    [row] = rows
    assert row["project"] == "acme"
    assert row["application"] == "Support bot"
    assert row["kind"] == "revoked_key"
    assert row["key_name"] == "'=HYPERLINK(1)"
    assert row["requests"] == ""
    assert stderr.startswith("Reviewed 1 project")


def test_csv_has_header_when_nothing_found(application, busy_key):
    stdout, _ = run_review("--format", "csv")

    assert stdout.splitlines() == [
        "project,application_id,application,key_id,key_name,key_prefix,kind,at,"
        "requests,cost_usd,request_share,cost_share,message"
    ]


def make_project_with_findings(size):
    """A project with `size` applications, each with one key of every state."""
    project = ProjectFactory()
    former = UserFactory()
    MembershipFactory(project=project)
    for _ in range(size):
        app = GenAIApplicationFactory(
            project=project, created_at=timezone.now() - 90 * DAY
        )
        mapped_key(app, revoked_at=timezone.now())
        mapped_key(app, expires_at=timezone.now() + DAY, created_by=former)
        mapped_key(app, last_used_at=None)
        UsageEventFactory(key=old_key(project))
        GenAIApplicationFactory(project=project)
    return project


def count_review_queries():
    with CaptureQueriesContext(connection) as captured:
        run_review("--format", "json")
    return len(captured.captured_queries)


def test_review_query_count_does_not_grow_with_keys(db):
    make_project_with_findings(2)
    small = count_review_queries()
    make_project_with_findings(20)

    large = count_review_queries()

    assert large == small
