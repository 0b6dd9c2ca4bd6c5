"""The audit trail, usage events and review runs are read-only in the admin."""

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from genai_apps.models import KeyMappingEvent, MappingReview
from genai_apps.services import attach_keys
from insights.models import UsageEvent
from tests.factories import APIKeyFactory, GenAIApplicationFactory, UsageEventFactory


@pytest.fixture
def mapping_event(project, owner):
    application = GenAIApplicationFactory(project=project)
    attach_keys(application, [APIKeyFactory(project=project)], owner)
    return KeyMappingEvent.objects.get()


@pytest.fixture
def usage_event(project):
    return UsageEventFactory(key__project=project, cost_nanousd=1_234_567)


@pytest.fixture
def review_run(project):
    call_command("review_mappings", "--project", project.slug, stdout=None)
    return MappingReview.objects.get()


READ_ONLY = [
    ("genai_apps", "keymappingevent", "mapping_event"),
    ("insights", "usageevent", "usage_event"),
    ("genai_apps", "mappingreview", "review_run"),
]


@pytest.mark.parametrize(("app_label", "model_name", "fixture"), READ_ONLY)
def test_read_only_model_cannot_be_added(super_client, app_label, model_name, fixture):
    response = super_client.get(reverse(f"admin:{app_label}_{model_name}_add"))

    assert response.status_code == 403


@pytest.mark.parametrize(("app_label", "model_name", "fixture"), READ_ONLY)
def test_read_only_model_is_viewable_not_changeable(
    request, super_client, app_label, model_name, fixture
):
    obj = request.getfixturevalue(fixture)
    url = reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk])

    view = super_client.get(url)
    change = super_client.post(url, {})
    delete = super_client.post(
        reverse(f"admin:{app_label}_{model_name}_delete", args=[obj.pk]),
        {"post": "yes"},
    )

    assert view.status_code == 200
    assert "Close" in view.text
    assert change.status_code == 403
    assert delete.status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize(("app_label", "model_name", "fixture"), READ_ONLY)
def test_scoped_staff_sees_own_project_rows(
    request, staff_client, app_label, model_name, fixture
):
    obj = request.getfixturevalue(fixture)

    response = staff_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))

    assert [row.pk for row in response.context["cl"].result_list] == [obj.pk]


def test_scoped_staff_cannot_open_other_project_event(staff_client, other_project):
    event = UsageEventFactory(key__project=other_project)

    response = staff_client.get(
        reverse("admin:insights_usageevent_change", args=[event.pk])
    )

    assert response.status_code == 404


def test_review_over_all_projects_is_for_superusers(staff_client, project):
    call_command("review_mappings", stdout=None)

    response = staff_client.get(reverse("admin:genai_apps_mappingreview_changelist"))

    assert list(response.context["cl"].result_list) == []


def test_usage_event_list_shows_cost_in_usd(super_client, usage_event):
    response = super_client.get(reverse("admin:insights_usageevent_changelist"))

    assert "0.001235" in response.text


def test_usage_event_list_has_date_hierarchy(super_client, usage_event):
    response = super_client.get(reverse("admin:insights_usageevent_changelist"))

    assert response.context["cl"].date_hierarchy == "occurred_at"
    assert f"occurred_at__year={usage_event.occurred_at.year}" in response.text


def count_event_list_queries(client):
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("admin:insights_usageevent_changelist"))
    return len(captured.captured_queries)


def test_usage_event_list_queries_do_not_grow(super_client, project):
    UsageEventFactory.create_batch(2, key__project=project)
    small = count_event_list_queries(super_client)
    UsageEventFactory.create_batch(20, key__project=project)

    large = count_event_list_queries(super_client)

    assert large == small
    assert UsageEvent.objects.count() == 22


def test_mapping_event_list_filters_by_source(super_client, mapping_event):
    response = super_client.get(
        reverse("admin:genai_apps_keymappingevent_changelist") + "?source=admin"
    )

    assert list(response.context["cl"].result_list) == []


@pytest.fixture
def old_and_new_events(project):
    old = UsageEventFactory(
        key__project=project, occurred_at=timezone.now() - datetime.timedelta(days=3)
    )
    new = UsageEventFactory(key__project=project)
    return old, new


def listed_events(client, query=""):
    response = client.get(reverse("admin:insights_usageevent_changelist") + query)
    return [event.pk for event in response.context["cl"].result_list]


def test_event_list_opens_on_last_24_hours(super_client, old_and_new_events):
    old, new = old_and_new_events

    assert listed_events(super_client) == [new.pk]


def test_event_list_all_time_choice(super_client, old_and_new_events):
    old, new = old_and_new_events

    assert listed_events(super_client, "?recent=all") == [new.pk, old.pk]


def test_event_list_date_hierarchy_replaces_window(super_client, old_and_new_events):
    old, _ = old_and_new_events
    day = old.occurred_at

    listed = listed_events(
        super_client,
        f"?occurred_at__year={day.year}&occurred_at__month={day.month}"
        f"&occurred_at__day={day.day}",
    )

    assert listed == [old.pk]
