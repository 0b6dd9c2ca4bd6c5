from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.html import strip_tags

from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    ProviderFactory,
    ProviderModelFactory,
)
from tests.html import sort_links
from workspace.models import Provider, ProviderModel, Vendor


def provider_data(**overrides):
    data = {
        "name": "OpenAI production",
        "context_path": "openai-prod",
        "vendor": Vendor.OPENAI,
        "base_url": "https://api.openai.com/v1",
        "api_version": "",
        "credential": "sk-upstream-secret-123",
        "models-TOTAL_FORMS": "1",
        "models-INITIAL_FORMS": "0",
        "models-0-name": "gpt-4o-mini",
        "models-0-input_price": "",
        "models-0-cached_input_price": "",
        "models-0-output_price": "",
        "models-0-cache_write_price": "",
    }
    data.update(overrides)
    return data


def create_url(project):
    return reverse("workspace:provider-create", args=[project.slug])


def test_provider_create_encrypts_credential(client, project, owner):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data())

    assert response.status_code == 302
    provider = Provider.objects.get(project=project)
    assert provider.get_credential() == "sk-upstream-secret-123"
    assert "sk-upstream-secret-123" not in provider.credential_encrypted


def test_provider_create_fills_prices_from_catalogue(client, project, owner):
    client.force_login(owner)

    client.post(create_url(project), provider_data())

    model = ProviderModel.objects.get(name="gpt-4o-mini")
    assert model.input_price == Decimal("0.15")
    assert model.output_price == Decimal("0.6")


def test_provider_create_leaves_unknown_model_unpriced(client, project, owner):
    client.force_login(owner)

    client.post(create_url(project), provider_data(**{"models-0-name": "my-model"}))

    model = ProviderModel.objects.get(name="my-model")
    assert model.input_price is None
    assert model.output_price is None


def test_provider_edit_never_renders_credential(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk])
    )

    assert response.status_code == 200
    assert b"sk-upstream-test" not in response.content
    assert provider.credential_encrypted.encode() not in response.content


def test_provider_edit_keeps_credential_when_left_empty(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai-prod")
    client.force_login(owner)

    client.post(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk]),
        provider_data(credential="", **{"models-TOTAL_FORMS": "0"}),
    )

    provider.refresh_from_db()
    assert provider.name == "OpenAI production"
    assert provider.get_credential() == "sk-upstream-test"


def test_provider_edit_updates_model_price(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai-prod")
    model = ProviderModelFactory(provider=provider, name="gpt-4o")
    client.force_login(owner)

    client.post(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk]),
        provider_data(
            **{
                "models-INITIAL_FORMS": "1",
                "models-0-id": str(model.pk),
                "models-0-name": "gpt-4o",
                "models-0-input_price": "2.25",
                "models-0-output_price": "",
            }
        ),
    )

    model.refresh_from_db()
    assert model.input_price == Decimal("2.25")
    assert model.output_price is None


def test_provider_rejects_context_path_used_by_proxy(client, project, owner):
    AppProxyFactory(project=project, name="Support proxy", context_path="openai-prod")
    client.force_login(owner)

    response = client.post(create_url(project), provider_data())

    assert response.status_code == 200
    assert "already used by the App LLM Proxy “Support proxy”" in response.text
    assert not Provider.objects.filter(name="OpenAI production").exists()


def test_provider_rejects_duplicate_model_names(client, project, owner):
    client.force_login(owner)
    data = provider_data(
        **{
            "models-TOTAL_FORMS": "2",
            "models-1-name": "gpt-4o-mini",
        }
    )

    response = client.post(create_url(project), data)

    assert response.status_code == 200
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("vendor", "base_url", "message"),
    [
        (Vendor.OPENAI, "https://api.openai.com", "ends with /v1"),
        (Vendor.ANTHROPIC, "https://api.anthropic.com/v1", "without /v1"),
        (
            Vendor.AZURE_OPENAI,
            "https://acme.openai.azure.com/openai/deployments/gpt-4o",
            "resource endpoint only",
        ),
    ],
)
def test_provider_rejects_base_url_against_vendor_convention(
    client, project, owner, vendor, base_url, message
):
    client.force_login(owner)

    response = client.post(
        create_url(project),
        provider_data(vendor=vendor, base_url=base_url, api_version="2024-10-21"),
    )

    assert response.status_code == 200
    assert message in response.text
    assert not Provider.objects.exists()


def test_azure_provider_requires_api_version(client, project, owner):
    client.force_login(owner)

    response = client.post(
        create_url(project),
        provider_data(
            vendor=Vendor.AZURE_OPENAI, base_url="https://acme.openai.azure.com"
        ),
    )

    assert "Azure OpenAI needs an API version" in response.text
    assert not Provider.objects.exists()


def test_provider_rejects_negative_price(client, project, owner):
    client.force_login(owner)

    response = client.post(
        create_url(project), provider_data(**{"models-0-input_price": "-1"})
    )

    assert response.status_code == 200
    assert not Provider.objects.exists()


def test_provider_list_query_count(
    client, project, owner, django_assert_max_num_queries
):
    for _ in range(5):
        provider = ProviderFactory(project=project)
        ProviderModelFactory.create_batch(2, provider=provider)
    client.force_login(owner)

    with django_assert_max_num_queries(8):
        response = client.get(reverse("workspace:provider-list", args=[project.slug]))

    assert response.status_code == 200
    assert strip_tags(response.text).count("/gateway/provider-") == 5


def test_provider_keeps_model_a_proxy_allows(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai-prod")
    model = ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    AppProxyFactory(
        project=project,
        provider=provider,
        name="Support proxy",
        allowed_models=["gpt-4o-mini"],
    )
    client.force_login(owner)

    response = client.post(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk]),
        provider_data(
            **{
                "models-INITIAL_FORMS": "1",
                "models-0-id": str(model.pk),
                "models-0-DELETE": "on",
            }
        ),
    )

    assert response.status_code == 200
    assert "allowed by the App LLM Proxy “Support proxy”" in response.text
    assert ProviderModel.objects.filter(pk=model.pk).exists()


def test_provider_rename_of_allowed_model_is_rejected(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai-prod")
    model = ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    AppProxyFactory(project=project, provider=provider, allowed_models=["gpt-4o-mini"])
    client.force_login(owner)

    client.post(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk]),
        provider_data(
            **{
                "models-INITIAL_FORMS": "1",
                "models-0-id": str(model.pk),
                "models-0-name": "gpt-4o-mini-renamed",
            }
        ),
    )

    model.refresh_from_db()
    assert model.name == "gpt-4o-mini"


def test_provider_removes_model_no_proxy_allows(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai-prod")
    model = ProviderModelFactory(provider=provider, name="gpt-4o")
    AppProxyFactory(project=project, provider=provider, allowed_models=["o4-mini"])
    client.force_login(owner)

    response = client.post(
        reverse("workspace:provider-edit", args=[project.slug, provider.pk]),
        provider_data(
            **{
                "models-INITIAL_FORMS": "1",
                "models-0-id": str(model.pk),
                "models-0-name": "gpt-4o",
                "models-0-DELETE": "on",
            }
        ),
    )

    assert response.status_code == 302
    assert not ProviderModel.objects.filter(pk=model.pk).exists()


def test_provider_credential_hidden_from_error_reports(client, project, owner):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data())

    assert response.wsgi_request.sensitive_post_parameters == ("credential",)


def edit_url(provider):
    return reverse("workspace:provider-edit", args=[provider.project.slug, provider.pk])


def test_provider_rejects_name_taken_in_other_case(client, project, owner):
    ProviderFactory(project=project, name="OpenAI production")
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(name="openai PRODUCTION"))

    assert response.status_code == 200
    assert "A provider named “OpenAI production” already exists" in response.text
    assert Provider.objects.count() == 1


def test_provider_name_may_repeat_in_other_project(
    client, project, other_project, owner
):
    ProviderFactory(project=other_project, name="OpenAI production")
    client.force_login(owner)

    response = client.post(create_url(project), provider_data())

    assert response.status_code == 302


def test_provider_name_constraint_ignores_case(project):
    ProviderFactory(project=project, name="OpenAI")

    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderFactory(project=project, name="OPENAI")


def test_provider_requires_name(client, project, owner):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(name="  "))

    assert "Enter a name for the provider." in response.text
    assert not Provider.objects.exists()


def test_provider_duplicate_model_names_are_named(client, project, owner):
    client.force_login(owner)
    data = provider_data(**{"models-TOTAL_FORMS": "2", "models-1-name": "gpt-4o-mini"})

    response = client.post(create_url(project), data)

    assert "The model “gpt-4o-mini” is listed more than once" in response.text
    assert "Please correct the duplicate data" not in response.text


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/v1",
        "http://169.254.170.2/v1",
        "http://[fe80::1]/v1",
        "http://[fd00:ec2::254]/v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://metadata.google.internal/v1",
        "http://METADATA.google.internal./v1",
        "http://metadata/v1",
    ],
)
def test_provider_rejects_metadata_base_url(client, project, owner, base_url):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(base_url=base_url))

    assert response.status_code == 200
    assert "is a link-local or cloud metadata address" in response.text
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    "base_url",
    [
        "http://10.0.0.5:8000/v1",
        "http://192.168.1.20/v1",
        "http://127.0.0.1:11434/v1",
        "http://llm.internal.example/v1",
    ],
)
def test_provider_accepts_private_base_url(client, project, owner, base_url):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(base_url=base_url))

    assert response.status_code == 302


def test_developer_cannot_create_provider(client, project, teammate):
    client.force_login(teammate)

    response = client.post(create_url(project), provider_data())

    assert response.status_code == 403
    assert not Provider.objects.exists()


def test_developer_cannot_change_provider(client, project, teammate):
    provider = ProviderFactory(project=project, name="Before")
    client.force_login(teammate)

    response = client.post(edit_url(provider), provider_data(name="After"))

    assert response.status_code == 403
    provider.refresh_from_db()
    assert provider.name == "Before"


def test_developer_sees_read_only_provider_form(client, project, teammate):
    provider = ProviderFactory(project=project)
    client.force_login(teammate)

    response = client.get(edit_url(provider))

    assert response.status_code == 200
    assert "Only project owners and admins can add, change or delete" in response.text
    assert 'type="submit" class="primary"' not in response.text


def test_developer_sees_no_add_provider_button(client, project, teammate):
    client.force_login(teammate)

    response = client.get(reverse("workspace:provider-list", args=[project.slug]))

    assert "+ Add Provider" not in response.text


def test_read_only_provider_form_hides_editing_instructions(client, project, viewer):
    provider = ProviderFactory(project=project)
    ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    client.force_login(viewer)

    response = client.get(edit_url(provider))

    assert "Leave empty to keep it" not in response.text
    assert "A credential is stored; it is never shown." in response.text
    assert "models-0-DELETE" not in response.text


def test_provider_form_vendor_select_says_choose(client, project, owner):
    client.force_login(owner)

    response = client.get(create_url(project))

    assert '<option value="" selected>Choose…</option>' in response.text
    assert "---------" not in response.text


def delete_url(provider):
    return reverse(
        "workspace:provider-delete", args=[provider.project.slug, provider.pk]
    )


def test_provider_delete_asks_then_deletes(client, project, owner):
    provider = ProviderFactory(project=project, name="Old upstream")
    ProviderModelFactory(provider=provider, name="gpt-4o-mini")
    client.force_login(owner)

    page = client.get(delete_url(provider))
    response = client.post(delete_url(provider))

    assert page.status_code == 200
    assert "Delete Provider “Old upstream”?" in page.text
    assert Provider.objects.filter(pk=provider.pk).exists() is False
    assert ProviderModel.objects.filter(provider_id=provider.pk).exists() is False
    assert response.status_code == 302
    assert response.url == reverse("workspace:provider-list", args=[project.slug])


def test_provider_with_keys_is_not_deleted(client, project, owner):
    provider = ProviderFactory(project=project)
    APIKeyFactory(project=project, provider=provider)
    APIKeyFactory(project=project, provider=provider, revoked=True)
    client.force_login(owner)

    page = client.get(delete_url(provider))
    response = client.post(delete_url(provider))

    assert "cannot be deleted" in page.text
    assert "2 API keys were generated for it, revoked ones included." in page.text
    assert f"keys/?target=provider:{provider.pk}" in page.text
    assert 'class="danger">Delete</button>' not in page.text
    assert response.status_code == 409
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_provider_with_proxy_is_not_deleted(client, project, owner):
    provider = ProviderFactory(project=project)
    AppProxyFactory(project=project, provider=provider, name="Support proxy")
    client.force_login(owner)

    response = client.post(delete_url(provider))

    assert response.status_code == 409
    assert "1 App LLM Proxy forwards to it: “Support proxy”." in response.text
    assert "See its API keys" not in response.text
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_provider_delete_needs_manager(client, project, teammate, outsider):
    provider = ProviderFactory(project=project)

    client.force_login(teammate)
    developer_response = client.post(delete_url(provider))
    client.force_login(outsider)
    outsider_response = client.post(delete_url(provider))

    assert developer_response.status_code == 403
    assert outsider_response.status_code == 404
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_provider_edit_page_links_to_delete(client, project, owner, teammate):
    provider = ProviderFactory(project=project)

    client.force_login(owner)
    owner_page = client.get(edit_url(provider))
    client.force_login(teammate)
    developer_page = client.get(edit_url(provider))

    assert delete_url(provider) in owner_page.text
    assert delete_url(provider) not in developer_page.text


def test_provider_list_model_count_sorts_largest_first(client, project, owner):
    ProviderFactory(project=project)
    client.force_login(owner)

    response = client.get(reverse("workspace:provider-list", args=[project.slug]))

    links = sort_links(response.content)
    assert links["Context path"] == "context_path"
    assert links["Models"] == "-model_count"
    assert links["Updated"] == "-updated_at"


def test_provider_rejects_base_url_with_credentials(client, project, owner):
    client.force_login(owner)

    response = client.post(
        create_url(project),
        provider_data(base_url="http://user:pass@127.0.0.1:8501/v1"),
    )

    assert response.status_code == 200
    assert "The Base URL must not contain a user name or password" in response.text
    assert "Upstream credential field" in response.text
    assert not Provider.objects.exists()


def test_provider_rejects_name_in_unicode_other_case(client, project, owner):
    ProviderFactory(project=project, name="ÉCOLE")
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(name="école"))

    assert response.status_code == 200
    assert "A provider named “ÉCOLE” already exists" in response.text
    assert Provider.objects.count() == 1


def test_provider_rejects_invisible_name(client, project, owner):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(name="\u2060"))

    assert response.context["form"].errors["name"] == [
        "The name contains only spaces or invisible characters (U+2060). "
        "Enter a name with at least one visible letter, digit or symbol."
    ]
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://127.0.0.1:8501/v1", "must start with http:// or https://"),
        ("http://127.0.0.1:8501/v1?team=a", "must not contain a query string"),
        ("http://127.0.0.1:8501/v1#part", "must not contain a query string"),
    ],
)
def test_provider_rejects_unusable_base_url(client, project, owner, base_url, message):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(base_url=base_url))

    assert response.status_code == 200
    assert message in response.text
    assert not Provider.objects.exists()


def test_provider_full_clean_rejects_credentials(project):
    provider = ProviderFactory.build(
        project=project, base_url="http://user:pass@127.0.0.1:8501/v1"
    )

    with pytest.raises(ValidationError) as raised:
        provider.full_clean()

    assert "base_url" in raised.value.message_dict


def test_provider_rejects_invalid_azure_api_version(client, project, owner):
    client.force_login(owner)

    response = client.post(
        create_url(project),
        provider_data(
            vendor=Vendor.AZURE_OPENAI,
            base_url="https://acme.openai.azure.com",
            api_version="yesterday",
        ),
    )

    assert response.status_code == 200
    assert "The API version must be a date in the form YYYY-MM-DD" in response.text
    assert not Provider.objects.exists()


def test_provider_accepts_preview_api_version(client, project, owner):
    client.force_login(owner)

    response = client.post(
        create_url(project),
        provider_data(
            vendor=Vendor.AZURE_OPENAI,
            base_url="https://acme.openai.azure.com",
            api_version="2024-12-01-preview",
        ),
    )

    assert response.status_code == 302
    assert Provider.objects.get().api_version == "2024-12-01-preview"


def test_provider_full_clean_rejects_api_version(project):
    provider = ProviderFactory.build(
        project=project,
        vendor=Vendor.AZURE_OPENAI,
        base_url="https://acme.openai.azure.com",
        api_version="yesterday",
    )

    with pytest.raises(ValidationError) as raised:
        provider.full_clean()

    assert "api_version" in raised.value.message_dict


def test_provider_list_hides_url_password(client, project, viewer):
    ProviderFactory(project=project, base_url="http://user:pass@127.0.0.1:8501/v1")
    client.force_login(viewer)

    response = client.get(reverse("workspace:provider-list", args=[project.slug]))

    assert response.status_code == 200
    assert "http://***@127.0.0.1:8501/v1" in strip_tags(response.text)
    assert "user:pass" not in response.text


def test_read_only_form_hides_url_password(client, project, viewer):
    provider = ProviderFactory(
        project=project, base_url="http://user:pass@127.0.0.1:8501/v1"
    )
    client.force_login(viewer)

    response = client.get(edit_url(provider))

    assert response.status_code == 200
    assert "http://***@127.0.0.1:8501/v1" in response.text
    assert "user:pass" not in response.text


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (
            "-1",
            "The input price of “gpt-4o-mini” cannot be negative: enter 0 or more "
            "in US dollars per 1M tokens, like 2.50, or leave it empty if unknown.",
        ),
        (
            "two",
            "The input price of “gpt-4o-mini” is not a number: enter it in US "
            "dollars per 1M tokens, like 2.50, or leave it empty if unknown.",
        ),
        (
            "0.0000001",
            "The input price of “gpt-4o-mini” has too many digits: enter at most 8 "
            "digits before the decimal point and 6 after it, in US dollars per 1M "
            "tokens, like 2.50, or leave it empty if unknown.",
        ),
    ],
)
def test_provider_price_errors_name_model(client, project, owner, price, message):
    client.force_login(owner)

    response = client.post(
        create_url(project), provider_data(**{"models-0-input_price": price})
    )

    assert response.context["formset"].forms[0].errors["input_price"] == [message]
    assert not Provider.objects.exists()


def test_provider_names_field_of_too_long_api_version(client, project, owner):
    client.force_login(owner)

    response = client.post(create_url(project), provider_data(api_version="v" * 40))

    assert response.context["form"].errors["api_version"] == [
        "API version is too long: enter at most 32 characters (it has 40)."
    ]


def test_provider_list_page_below_one_shows_first(client, project, owner):
    for index in range(26):
        ProviderFactory(project=project, name=f"Provider {index:02d}")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:provider-list", args=[project.slug]), {"page": "-1"}
    )

    assert response.context["table"].page.number == 1
