import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from genai_apps.models import KeyMapping, KeyMappingEvent
from tests.factories import APIKeyFactory, GenAIApplicationFactory, KeyMappingFactory
from workspace.models import APIKey

CHANGELIST = "admin:workspace_apikey_changelist"


def post_action(client, action, keys, confirmed=True):
    data = {"action": action, "_selected_action": [key.pk for key in keys]}
    if confirmed:
        data["post"] = "yes"
    return client.post(reverse(CHANGELIST), data, follow=confirmed)


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def test_changelist_never_shows_secret_hash(super_client, project):
    key = APIKeyFactory(project=project)

    response = super_client.get(reverse(CHANGELIST))

    assert key.prefix in response.text
    assert key.secret_hash not in response.text


def test_change_page_never_shows_secret_hash(super_client, project):
    key = APIKeyFactory(project=project)

    response = super_client.get(reverse("admin:workspace_apikey_change", args=[key.pk]))

    assert response.status_code == 200
    assert key.secret_hash not in response.text
    assert key.secret not in response.text


def test_keys_cannot_be_added_or_deleted(super_client, project):
    key = APIKeyFactory(project=project)

    add = super_client.get(reverse("admin:workspace_apikey_add"))
    delete = super_client.get(reverse("admin:workspace_apikey_delete", args=[key.pk]))

    assert add.status_code == 403
    assert delete.status_code == 403


def test_change_page_edits_name_and_expiry_only(super_client, project):
    key = APIKeyFactory(project=project, name="old name")
    url = reverse("admin:workspace_apikey_change", args=[key.pk])

    response = super_client.post(
        url,
        {
            "name": "new name",
            "expires_at_0": "2030-01-01",
            "expires_at_1": "00:00:00",
            "prefix": "aiw-forged",
        },
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "new name"
    assert key.expires_at.year == 2030
    assert key.prefix != "aiw-forged"


def test_revoke_asks_for_confirmation_first(super_client, project):
    key = APIKeyFactory(project=project, name="prod-key")

    response = post_action(super_client, "revoke_keys", [key], confirmed=False)

    assert response.status_code == 200
    assert "Revoke API keys" in response.text
    assert "prod-key" in response.text
    assert 'name="post" value="yes"' in response.text
    key.refresh_from_db()
    assert key.revoked_at is None


def test_revoke_counts_what_changed(super_client, superuser, project):
    keys = APIKeyFactory.create_batch(2, project=project)
    already = APIKeyFactory(project=project, revoked=True)

    response = post_action(super_client, "revoke_keys", [*keys, already])

    assert messages_of(response) == [
        "Revoked 2 API keys. 1 API key was already revoked."
    ]
    for key in keys:
        key.refresh_from_db()
        assert key.revoked_at is not None
        assert key.revoked_by == superuser


def test_revoke_sends_post_save_per_key(super_client, project):
    keys = APIKeyFactory.create_batch(2, project=project)
    saved = []

    def receiver(sender, instance, **kwargs):
        saved.append(instance.pk)

    post_save.connect(receiver, sender=APIKey)
    try:
        post_action(super_client, "revoke_keys", keys)
    finally:
        post_save.disconnect(receiver, sender=APIKey)

    assert sorted(saved) == sorted(key.pk for key in keys)


def test_detach_asks_for_confirmation_first(super_client, project):
    mapping = KeyMappingFactory(application__project=project)

    response = post_action(super_client, "detach_keys", [mapping.key], confirmed=False)

    assert "Detach API keys from their application" in response.text
    assert KeyMapping.objects.filter(pk=mapping.pk).exists()


def test_detach_goes_through_audit_trail(super_client, superuser, project):
    mapping = KeyMappingFactory(application__project=project)
    unmapped = APIKeyFactory(project=project)

    response = post_action(super_client, "detach_keys", [mapping.key, unmapped])

    assert messages_of(response) == [
        "Detached 1 API key from its application. 1 API key had no application."
    ]
    assert not KeyMapping.objects.exists()
    event = KeyMappingEvent.objects.get()
    assert event.action == "detach"
    assert event.source == "admin"
    assert event.actor == superuser
    assert event.key == mapping.key


def test_detach_keeps_the_key(super_client, project):
    mapping = KeyMappingFactory(application__project=project)

    post_action(super_client, "detach_keys", [mapping.key])

    assert APIKey.objects.filter(pk=mapping.key.pk).exists()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=active", {"active"}),
        ("status=revoked", {"revoked"}),
        ("status=expired", {"expired"}),
        ("expiry=past", {"expired"}),
        ("expiry=none", {"active", "revoked"}),
        ("application=none", {"revoked", "expired"}),
    ],
)
def test_key_filters(super_client, project, query, expected):
    application = GenAIApplicationFactory(project=project)
    KeyMappingFactory(application=application, key__name="active")
    APIKeyFactory(project=project, name="revoked", revoked=True)
    APIKeyFactory(project=project, name="expired", expired=True)

    response = super_client.get(reverse(CHANGELIST) + "?" + query)

    names = {key.name for key in response.context["cl"].result_list}
    assert names == expected


def test_key_filter_ignores_malformed_application(super_client, project):
    APIKeyFactory(project=project)

    response = super_client.get(reverse(CHANGELIST) + "?application=abc")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def count_changelist_queries(client):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_changelist_queries_do_not_grow_per_row(super_client, project):
    KeyMappingFactory.create_batch(2, application__project=project)
    small = count_changelist_queries(super_client)
    KeyMappingFactory.create_batch(20, application__project=project)

    large = count_changelist_queries(super_client)

    assert large == small


def test_revoke_is_logged_in_key_history(super_client, project):
    key = APIKeyFactory(project=project)

    post_action(super_client, "revoke_keys", [key])

    entry = LogEntry.objects.get(object_id=str(key.pk))
    assert entry.get_change_message() == "Revoked with the admin action."


def test_detach_message_counts_keys_in_plural(super_client, project):
    first = KeyMappingFactory(application__project=project)
    second = KeyMappingFactory(application__project=project)

    response = post_action(super_client, "detach_keys", [first.key, second.key])

    assert messages_of(response) == ["Detached 2 API keys from their applications."]
