from decimal import Decimal

import pytest
from django.urls import reverse

from tests.admin.conftest import form_data
from tests.factories import ProviderFactory, ProviderModelFactory
from workspace import crypto
from workspace.models import Provider


@pytest.fixture
def provider(project):
    return ProviderFactory(
        project=project,
        name="Acme OpenAI",
        credential_encrypted=crypto.encrypt("sk-upstream-original"),
    )


def change_url(provider):
    return reverse("admin:workspace_provider_change", args=[provider.pk])


def test_change_page_never_shows_credential(super_client, provider):
    response = super_client.get(change_url(provider))

    assert response.status_code == 200
    assert "sk-upstream-original" not in response.text
    assert provider.credential_encrypted not in response.text
    assert "Stored, encrypted" in response.text


def test_empty_credential_field_keeps_stored_one(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data["name"] = "Acme OpenAI EU"

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.get_credential() == "sk-upstream-original"


def test_new_credential_replaces_stored_one(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data["new_credential"] = "sk-upstream-rotated"

    super_client.post(change_url(provider), data)

    provider.refresh_from_db()
    assert provider.get_credential() == "sk-upstream-rotated"
    assert "sk-upstream-rotated" not in provider.credential_encrypted


def test_new_credential_is_not_rendered_back(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data.update(new_credential="sk-upstream-rotated", base_url="not a url")

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 200
    assert "sk-upstream-rotated" not in response.text


def test_remove_credential_clears_it(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data["remove_credential"] = "on"

    super_client.post(change_url(provider), data)

    provider.refresh_from_db()
    assert not provider.has_credential


def test_new_and_remove_credential_conflict(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data.update(new_credential="sk-new", remove_credential="on")

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 200
    assert "not both" in response.text
    provider.refresh_from_db()
    assert provider.get_credential() == "sk-upstream-original"


def test_model_prices_are_editable_inline(super_client, provider):
    model = ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    data = form_data(super_client.get(change_url(provider)))
    data["models-0-input_price"] = "0.150000"

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 302
    model.refresh_from_db()
    assert model.input_price == Decimal("0.15")


def test_negative_price_is_rejected(super_client, provider):
    ProviderModelFactory(provider=provider)
    data = form_data(super_client.get(change_url(provider)))
    data["models-0-output_price"] = "-1"

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 200
    assert "greater than or equal to 0" in response.text


def test_add_provider_records_creator_and_credential(super_client, superuser, project):
    url = reverse("admin:workspace_provider_add")
    data = form_data(super_client.get(url))
    data.update(
        project=str(project.pk),
        name="Local vLLM",
        vendor="openai_compatible",
        context_path="vllm",
        base_url="http://127.0.0.1:8499/v1",
        new_credential="sk-local",
    )

    response = super_client.post(url, data)

    assert response.status_code == 302
    provider = Provider.objects.get(name="Local vLLM")
    assert provider.created_by == superuser
    assert provider.get_credential() == "sk-local"


def test_admin_rejects_metadata_base_url(super_client, provider):
    data = form_data(super_client.get(change_url(provider)))
    data["base_url"] = "http://169.254.169.254/v1"

    response = super_client.post(change_url(provider), data)

    assert response.status_code == 200
    assert "is a link-local or cloud metadata address" in response.text
    provider.refresh_from_db()
    assert provider.base_url == "http://127.0.0.1:9/v1"


def test_admin_rejects_provider_name_taken_in_other_case(
    super_client, project, provider
):
    other = ProviderFactory(project=project, name="Other")
    data = form_data(super_client.get(change_url(other)))
    data["name"] = "ACME openai"

    response = super_client.post(change_url(other), data)

    assert response.status_code == 200
    assert "A provider with this name already exists in the project." in response.text
