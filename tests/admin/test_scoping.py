"""The admin rule: a superuser sees all projects, other staff only the
projects where they are owner or admin."""

import json

import pytest
from django.urls import reverse

from genai_apps.models import GenAIApplication
from tests.admin.conftest import form_data
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    MembershipFactory,
    ProviderFactory,
    UserFactory,
)
from workspace.models import APIKey, AppProxy, Project, Provider, Role

CHANGELISTS = [
    "admin:workspace_project_changelist",
    "admin:workspace_membership_changelist",
    "admin:workspace_provider_changelist",
    "admin:workspace_providermodel_changelist",
    "admin:workspace_appproxy_changelist",
    "admin:workspace_apikey_changelist",
    "admin:genai_apps_genaiapplication_changelist",
    "admin:genai_apps_keymapping_changelist",
    "admin:genai_apps_keymappingevent_changelist",
    "admin:genai_apps_mappingreview_changelist",
    "admin:insights_usageevent_changelist",
    "admin:insights_usagerollup_changelist",
    "admin:insights_usagehistogram_changelist",
    "admin:insights_ingestiontoken_changelist",
]


@pytest.fixture
def foreign_key(other_project):
    return APIKeyFactory(project=other_project, name="globex-secret-key")


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_superuser_opens_every_changelist(super_client, url_name):
    response = super_client.get(reverse(url_name))

    assert response.status_code == 200


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_scoped_staff_opens_every_changelist(staff_client, url_name):
    response = staff_client.get(reverse(url_name))

    assert response.status_code == 200


def test_superuser_sees_keys_of_all_projects(super_client, project, foreign_key):
    APIKeyFactory(project=project, name="acme-key")

    response = super_client.get(reverse("admin:workspace_apikey_changelist"))

    assert "acme-key" in response.text
    assert "globex-secret-key" in response.text


def test_scoped_staff_sees_only_managed_projects(staff_client, project, foreign_key):
    APIKeyFactory(project=project, name="acme-key")

    response = staff_client.get(reverse("admin:workspace_apikey_changelist"))

    assert "acme-key" in response.text
    assert "globex-secret-key" not in response.text


def test_scoped_staff_project_list_hides_other_projects(staff_client, other_project):
    response = staff_client.get(reverse("admin:workspace_project_changelist"))

    assert "Acme" in response.text
    assert "Globex" not in response.text


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:workspace_apikey_change",
        "admin:workspace_apikey_history",
    ],
)
def test_forged_key_url_returns_404(staff_client, foreign_key, url_name):
    response = staff_client.get(reverse(url_name, args=[foreign_key.pk]))

    assert response.status_code == 404


def test_forged_project_url_returns_404(staff_client, other_project):
    url = reverse("admin:workspace_project_change", args=[other_project.pk])

    response = staff_client.get(url)

    assert response.status_code == 404


def test_forged_application_delete_returns_404(staff_client, other_project):
    application = GenAIApplicationFactory(project=other_project)
    url = reverse("admin:genai_apps_genaiapplication_delete", args=[application.pk])

    response = staff_client.post(url, {"post": "yes"})

    assert response.status_code == 404
    application.refresh_from_db()
    assert not application.is_deleted


def test_forged_provider_post_changes_nothing(staff_client, other_project):
    provider = ProviderFactory(project=other_project, name="Globex OpenAI")
    url = reverse("admin:workspace_provider_change", args=[provider.pk])

    response = staff_client.post(url, {"name": "Hijacked"})

    assert response.status_code == 404
    provider.refresh_from_db()
    assert provider.name == "Globex OpenAI"


def test_superuser_opens_any_project_key(super_client, foreign_key):
    response = super_client.get(
        reverse("admin:workspace_apikey_change", args=[foreign_key.pk])
    )

    assert response.status_code == 200


def test_developer_staff_sees_no_project_data(client, project):
    developer = UserFactory(username="dev", is_staff=True)
    MembershipFactory(project=project, user=developer, role=Role.DEVELOPER)
    client.force_login(developer)

    index = client.get(reverse("admin:index"))
    changelist = client.get(reverse("admin:workspace_apikey_changelist"))

    assert "API keys" not in index.text
    assert changelist.status_code == 403


def test_forged_project_choice_is_rejected(staff_client, other_project):
    url = reverse("admin:genai_apps_genaiapplication_add")
    data = form_data(staff_client.get(url))
    data.update(project=str(other_project.pk), name="Smuggled")

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not GenAIApplication.objects.filter(name="Smuggled").exists()


def test_project_choices_list_managed_projects_only(staff_client, other_project):
    response = staff_client.get(reverse("admin:workspace_provider_add"))

    choices = response.context["adminform"].form.fields["project"].queryset
    assert list(choices) == list(Project.objects.filter(slug="acme"))


def test_proxy_rejects_provider_of_other_project(super_client, project, other_project):
    foreign_provider = ProviderFactory(project=other_project, name="Globex OpenAI")
    url = reverse("admin:workspace_appproxy_add")
    data = form_data(super_client.get(url))
    data.update(
        project=str(project.pk),
        name="Support proxy",
        context_path="support",
        provider=str(foreign_provider.pk),
        allowed_models="[]",
    )

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert "belongs to the project “Globex”" in response.text
    assert not AppProxy.objects.exists()


def test_autocomplete_lists_managed_keys_only(staff_client, project, foreign_key):
    APIKeyFactory(project=project, name="acme-key")

    response = staff_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "genai_apps",
            "model_name": "keymapping",
            "field_name": "key",
            "term": "key",
        },
    )

    names = [result["text"] for result in json.loads(response.content)["results"]]
    assert len(names) == 1
    assert names[0].startswith("acme-key")


def test_list_filter_hides_other_projects(staff_client, other_project):
    response = staff_client.get(reverse("admin:workspace_apikey_changelist"))

    assert "?project=" in response.text
    assert f"?project={other_project.pk}" not in response.text


def test_revoke_ignores_forged_selection(staff_client, foreign_key):
    response = staff_client.post(
        reverse("admin:workspace_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [foreign_key.pk], "post": "yes"},
    )

    foreign_key.refresh_from_db()
    assert foreign_key.revoked_at is None
    assert response.status_code == 302


def test_scoped_staff_cannot_add_project(staff_client):
    response = staff_client.get(reverse("admin:workspace_project_add"))

    assert response.status_code == 403


def test_scoped_staff_edits_managed_provider(staff_client, project):
    provider = ProviderFactory(project=project, name="Acme OpenAI")
    url = reverse("admin:workspace_provider_change", args=[provider.pk])
    data = form_data(staff_client.get(url))
    data["name"] = "Acme OpenAI EU"

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert Provider.objects.get(pk=provider.pk).name == "Acme OpenAI EU"


def test_membership_user_is_chosen_by_username(staff_client, project):
    UserFactory(username="newbie")
    url = reverse("admin:workspace_project_change", args=[project.pk])
    data = form_data(staff_client.get(url))
    total = int(data["memberships-TOTAL_FORMS"])
    data.update(
        {
            "memberships-TOTAL_FORMS": str(total + 1),
            f"memberships-{total}-user": "newbie",
            f"memberships-{total}-role": "viewer",
            f"memberships-{total}-project": str(project.pk),
        }
    )

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert project.memberships.filter(user__username="newbie").exists()


def test_membership_unknown_username_is_rejected(staff_client, project):
    url = reverse("admin:workspace_project_change", args=[project.pk])
    data = form_data(staff_client.get(url))
    total = int(data["memberships-TOTAL_FORMS"])
    data.update(
        {
            "memberships-TOTAL_FORMS": str(total + 1),
            f"memberships-{total}-user": "ghost",
            f"memberships-{total}-role": "viewer",
        }
    )

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "No active user has this username" in response.text


def test_key_queryset_counts_match_scope(staff_client, project, foreign_key):
    APIKeyFactory.create_batch(2, project=project)

    response = staff_client.get(reverse("admin:workspace_apikey_changelist"))

    assert response.context["cl"].result_count == 2
    assert APIKey.objects.count() == 3


def test_price_sets_are_for_superusers(super_client, staff_client_other):
    superuser_view = super_client.get(reverse("admin:insights_usageprice_changelist"))
    staff_view = staff_client_other.get(reverse("admin:insights_usageprice_changelist"))

    assert superuser_view.status_code == 200
    assert staff_view.status_code == 403
