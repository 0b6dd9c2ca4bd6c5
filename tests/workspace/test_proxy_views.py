import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.html import strip_tags

from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    ProviderFactory,
    ProviderModelFactory,
)
from workspace.models import AppProxy


def test_proxy_create_saves_allowed_models(client, project, owner):
    provider = ProviderFactory(project=project)
    ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    client.force_login(owner)

    response = client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {
            "name": "Support bot",
            "context_path": "support",
            "provider": provider.pk,
            "allowed_models": [f"{provider.pk}:gpt-4o-mini"],
            "max_tokens": "1024",
        },
    )

    assert response.status_code == 302
    proxy = AppProxy.objects.get()
    assert proxy.allowed_models == ["gpt-4o-mini"]
    assert proxy.max_tokens == 1024
    assert proxy.created_by == owner


def test_proxy_rejects_model_of_other_provider(client, project, owner):
    chosen = ProviderFactory(project=project, name="Chosen")
    other = ProviderFactory(project=project)
    ProviderModelFactory(provider=other, name="claude-haiku-4-5")
    client.force_login(owner)

    response = client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {
            "name": "Support bot",
            "context_path": "support",
            "provider": chosen.pk,
            "allowed_models": [f"{other.pk}:claude-haiku-4-5"],
        },
    )

    assert response.status_code == 200
    assert "belongs to another provider" in response.text
    assert not AppProxy.objects.exists()


def test_proxy_rejects_provider_of_other_project(client, project, other_project, owner):
    foreign_provider = ProviderFactory(project=other_project)
    client.force_login(owner)

    response = client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"name": "Sneaky", "context_path": "sneaky", "provider": foreign_provider.pk},
    )

    assert response.status_code == 200
    assert not AppProxy.objects.exists()


def test_proxy_rejects_context_path_used_by_provider(client, project, owner):
    provider = ProviderFactory(project=project, name="OpenAI", context_path="openai")
    client.force_login(owner)

    response = client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"name": "Clash", "context_path": "openai", "provider": provider.pk},
    )

    assert "already used by the provider “OpenAI”" in response.text
    assert not AppProxy.objects.exists()


def test_proxy_rejects_zero_max_tokens(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {
            "name": "Zero",
            "context_path": "zero",
            "provider": provider.pk,
            "max_tokens": "0",
        },
    )

    assert response.status_code == 200
    assert not AppProxy.objects.exists()


def test_proxy_edit_shows_current_allowed_models(client, project, owner):
    proxy = AppProxyFactory(project=project, allowed_models=["gpt-4o-mini"])
    ProviderModelFactory(provider=proxy.provider, name="gpt-4o-mini")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:proxy-edit", args=[project.slug, proxy.pk])
    )

    assert f'value="{proxy.provider_id}:gpt-4o-mini"' in response.text
    assert "checked" in response.text


def test_proxy_list_query_count(client, project, owner, django_assert_max_num_queries):
    AppProxyFactory.create_batch(5, project=project)
    client.force_login(owner)

    with django_assert_max_num_queries(8):
        response = client.get(reverse("workspace:proxy-list", args=[project.slug]))

    assert strip_tags(response.text).count("/gateway/proxy-") == 5


def create_proxy(client, project, provider, **data):
    return client.post(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"name": "Support bot", "context_path": "support", "provider": provider.pk}
        | data,
    )


def test_proxy_rejects_name_taken_in_other_case(client, project, owner):
    provider = ProviderFactory(project=project)
    AppProxyFactory(project=project, provider=provider, name="Support bot")
    client.force_login(owner)

    response = create_proxy(client, project, provider, name="SUPPORT BOT")

    assert "An App LLM Proxy named “Support bot” already exists" in response.text
    assert AppProxy.objects.count() == 1


def test_proxy_name_constraint_ignores_case(project):
    AppProxyFactory(project=project, name="Support")

    with pytest.raises(IntegrityError), transaction.atomic():
        AppProxyFactory(project=project, name="support")


@pytest.mark.parametrize("max_tokens", ["-5", "0", "1000001", "9" * 30])
def test_proxy_max_tokens_out_of_range_gets_one_message(
    client, project, owner, max_tokens
):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_proxy(client, project, provider, max_tokens=max_tokens)

    assert response.status_code == 200
    assert "Enter a whole number from 1 to 1,000,000" in response.text
    assert not AppProxy.objects.exists()


def test_proxy_accepts_max_tokens_at_limit(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_proxy(client, project, provider, max_tokens="1000000")

    assert response.status_code == 302
    assert AppProxy.objects.get().max_tokens == 1_000_000


def test_proxy_form_shows_only_chosen_provider_models(client, project, owner):
    chosen = ProviderFactory(project=project, name="Chosen")
    ProviderModelFactory(provider=chosen, name="gpt-4o-mini")
    other = ProviderFactory(project=project, name="Other")
    ProviderModelFactory(provider=other, name="claude-haiku-4-5")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"provider": chosen.pk},
        headers={"HX-Request": "true", "HX-Target": "allowed-models"},
    )

    assert response.text.lstrip().startswith('<div class="model-choices"')
    assert "gpt-4o-mini" in response.text
    assert "claude-haiku-4-5" not in response.text


def test_proxy_form_asks_for_provider_before_models(client, project, owner):
    ProviderModelFactory(provider=ProviderFactory(project=project), name="gpt-4o")
    client.force_login(owner)

    response = client.get(reverse("workspace:proxy-create", args=[project.slug]))

    assert "Choose a provider to pick which of its models" in response.text
    assert "gpt-4o" not in response.text
    assert '<option value="" selected>Choose…</option>' in response.text


def test_proxy_form_ignores_provider_of_other_project(
    client, project, other_project, owner
):
    foreign = ProviderFactory(project=other_project)
    ProviderModelFactory(provider=foreign, name="foreign-model")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"provider": foreign.pk},
    )

    assert "foreign-model" not in response.text


def test_proxy_form_ignores_provider_id_beyond_column_range(client, project, owner):
    client.force_login(owner)

    response = client.get(
        reverse("workspace:proxy-create", args=[project.slug]),
        {"provider": "111111111111111111111111111111"},
    )

    assert response.status_code == 200
    assert "Choose a provider to pick which of its models" in response.text


def test_read_only_proxy_form_hides_editing_instructions(client, project, viewer):
    proxy = AppProxyFactory(project=project, max_tokens=100)
    client.force_login(viewer)

    response = client.get(
        reverse("workspace:proxy-edit", args=[project.slug, proxy.pk])
    )

    assert response.status_code == 200
    assert "You have read-only access to this project." in response.text
    assert "Unique in the project" not in response.text
    assert "Largest max_tokens a request may ask for" not in response.text


def proxy_delete_url(proxy):
    return reverse("workspace:proxy-delete", args=[proxy.project.slug, proxy.pk])


def test_proxy_delete_asks_then_deletes(client, project, teammate):
    proxy = AppProxyFactory(project=project, name="Old proxy")
    client.force_login(teammate)

    page = client.get(proxy_delete_url(proxy))
    response = client.post(proxy_delete_url(proxy))

    assert "Delete App LLM Proxy “Old proxy”?" in page.text
    assert response.status_code == 302
    assert AppProxy.objects.filter(pk=proxy.pk).exists() is False


def test_proxy_with_key_is_not_deleted(client, project, owner):
    proxy = AppProxyFactory(project=project)
    APIKeyFactory(project=project, provider=None, proxy=proxy)
    client.force_login(owner)

    response = client.post(proxy_delete_url(proxy))

    assert response.status_code == 409
    assert "1 API key was generated for it, revoked ones included." in response.text
    assert AppProxy.objects.filter(pk=proxy.pk).exists()


def test_proxy_delete_forbidden_for_viewer(client, project, viewer):
    proxy = AppProxyFactory(project=project)
    client.force_login(viewer)

    response = client.post(proxy_delete_url(proxy))

    assert response.status_code == 403
    assert AppProxy.objects.filter(pk=proxy.pk).exists()


def test_proxy_delete_logs_its_id(client, project, teammate, caplog):
    proxy = AppProxyFactory(project=project)
    proxy_id = proxy.pk
    client.force_login(teammate)

    with caplog.at_level("INFO", logger="workspace.views"):
        client.post(proxy_delete_url(proxy))

    assert f"App LLM Proxy {proxy_id} deleted in project acme" in caplog.text


def test_proxy_list_page_below_one_shows_first(client, project, owner):
    AppProxyFactory.create_batch(26, project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:proxy-list", args=[project.slug]), {"page": "0"}
    )

    assert response.context["table"].page.number == 1
