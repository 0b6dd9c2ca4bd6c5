from django.urls import reverse

from tests.factories import IngestionTokenFactory


def test_token_hash_is_never_shown(super_client, project):
    token = IngestionTokenFactory(project=project)

    listing = super_client.get(reverse("admin:insights_ingestiontoken_changelist"))
    change = super_client.get(
        reverse("admin:insights_ingestiontoken_change", args=[token.pk])
    )

    assert token.prefix in listing.text
    assert token.token_hash not in listing.text
    assert token.token_hash not in change.text


def test_revoke_tokens_counts_what_changed(super_client, project):
    active = IngestionTokenFactory(project=project)
    revoked = IngestionTokenFactory(project=project, revoked_at="2026-01-01T00:00Z")

    response = super_client.post(
        reverse("admin:insights_ingestiontoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [active.pk, revoked.pk]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert messages == ["Revoked 1 ingestion token."]
    active.refresh_from_db()
    assert active.revoked_at is not None


def test_scoped_staff_cannot_open_other_project_token(staff_client, other_project):
    token = IngestionTokenFactory(project=other_project)

    response = staff_client.get(
        reverse("admin:insights_ingestiontoken_change", args=[token.pk])
    )

    assert response.status_code == 404
