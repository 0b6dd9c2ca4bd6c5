import datetime
import html
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    ProviderFactory,
    UserFactory,
)
from tests.html import sort_links
from workspace.models import APIKey, Vendor, hash_secret


def create_key(client, project, provider, **data):
    url = reverse("workspace:key-create", args=[project.slug])
    return client.post(
        url, {"name": "ci-runner", "target": f"provider:{provider.pk}", **data}
    )


def test_key_create_shows_secret_once(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider, form_token="t1")

    secret = response.context["secret"]
    key = APIKey.objects.get(name="ci-runner")
    assert response.status_code == 200
    assert secret in response.text
    assert key.secret_hash == hash_secret(secret)
    assert key.created_by == owner
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]


def test_key_secret_absent_from_session_and_later_pages(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)
    secret = create_key(client, project, provider, form_token="t1").context["secret"]

    list_page = client.get(reverse("workspace:key-list", args=[project.slug]))

    assert secret not in list_page.text
    assert secret[:12] in list_page.text
    assert secret not in str(dict(client.session.items()))


def test_key_form_resubmission_does_not_create_second_key(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)
    create_key(client, project, provider, form_token="t1")

    response = create_key(client, project, provider, form_token="t1")

    assert response.status_code == 302
    assert APIKey.objects.filter(name="ci-runner").count() == 1
    follow = client.get(response["Location"])
    assert "shown only once" in follow.text


def test_key_create_for_proxy(client, project, owner):
    proxy = AppProxyFactory(project=project)
    client.force_login(owner)

    client.post(
        reverse("workspace:key-create", args=[project.slug]),
        {"name": "proxy-key", "target": f"proxy:{proxy.pk}"},
    )

    key = APIKey.objects.get(name="proxy-key")
    assert key.proxy == proxy
    assert key.provider is None


def test_key_create_rejects_provider_of_other_project(
    client, project, other_project, owner
):
    ProviderFactory(project=project)
    foreign_provider = ProviderFactory(project=other_project)
    client.force_login(owner)

    response = create_key(client, project, foreign_provider)

    assert response.status_code == 200
    assert "Choose a provider or proxy of this project" in response.text
    assert not APIKey.objects.exists()


def test_key_create_rejects_expiry_in_past(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider, expires_at="2020-01-01T00:00")

    assert "The expiry must be in the future" in response.text
    assert not APIKey.objects.exists()


def test_key_create_stores_expiry(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)
    expiry = (timezone.now() + datetime.timedelta(days=30)).replace(
        second=0, microsecond=0
    )

    create_key(client, project, provider, expires_at=expiry.strftime("%Y-%m-%dT%H:%M"))

    assert APIKey.objects.get().expires_at == expiry


def test_key_list_shows_status_and_application(client, project, owner):
    KeyMappingFactory(
        application=GenAIApplicationFactory(project=project, name="Support Bot"),
        key__name="attached-key",
    )
    APIKeyFactory(project=project, name="old-key", revoked=True)
    APIKeyFactory(project=project, name="stale-key", expired=True)
    client.force_login(owner)

    response = client.get(reverse("workspace:key-list", args=[project.slug]))

    assert "Support Bot" in response.text
    assert '<span class="badge revoked">Revoked</span>' in response.text
    assert '<span class="badge expired">Expired</span>' in response.text
    assert '<span class="badge active">Active</span>' in response.text


def test_key_list_filters_by_status(client, project, owner):
    APIKeyFactory(project=project, name="live-key")
    APIKeyFactory(project=project, name="old-key", revoked=True)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"status": "revoked"}
    )

    assert "old-key" in response.text
    assert "live-key" not in response.text


def test_key_list_filters_by_proxy(client, project, owner):
    proxy = AppProxyFactory(project=project)
    APIKeyFactory(project=project, name="proxy-key", provider=None, proxy=proxy)
    APIKeyFactory(project=project, name="provider-key")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]),
        {"target": f"proxy:{proxy.pk}"},
    )

    assert "proxy-key" in response.text
    assert "provider-key" not in response.text


def test_key_list_search_fragment_for_htmx(client, project, owner):
    APIKeyFactory(project=project, name="billing-worker")
    APIKeyFactory(project=project, name="search-worker")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]),
        {"q": "billing"},
        headers={"HX-Request": "true", "HX-Target": "key-table"},
    )

    assert response.text.lstrip().startswith('<div id="key-table">')
    assert "<html" not in response.text
    assert "billing-worker" in response.text
    assert "search-worker" not in response.text


def test_key_list_search_without_htmx_renders_page(client, project, owner):
    APIKeyFactory(project=project, name="billing-worker")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"q": "billing"}
    )

    assert "<html" in response.text
    assert "billing-worker" in response.text


def test_key_list_query_count(client, project, owner, django_assert_max_num_queries):
    creators = UserFactory.create_batch(3)
    for index in range(30):
        key = APIKeyFactory(project=project, created_by=creators[index % 3])
        if index % 2:
            KeyMappingFactory(
                key=key, application=GenAIApplicationFactory(project=project)
            )
    client.force_login(owner)

    with django_assert_max_num_queries(12):
        response = client.get(reverse("workspace:key-list", args=[project.slug]))

    assert response.status_code == 200
    assert response.text.count('class="badge active"') == 25


def test_key_revoke_asks_for_confirmation(client, project, owner):
    key = APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-revoke", args=[project.slug, key.pk]),
        headers={"HX-Request": "true"},
    )

    assert "Revoke API key" in response.text
    assert "<html" not in response.text
    key.refresh_from_db()
    assert key.revoked_at is None


def test_key_revoke_marks_key_revoked(client, project, owner):
    key = APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.post(reverse("workspace:key-revoke", args=[project.slug, key.pk]))

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoked_by == owner


def test_key_revoke_rejects_key_of_other_project(client, project, other_project, owner):
    foreign_key = APIKeyFactory(project=other_project)
    client.force_login(owner)

    response = client.post(
        reverse("workspace:key-revoke", args=[project.slug, foreign_key.pk])
    )

    assert response.status_code == 404
    foreign_key.refresh_from_db()
    assert foreign_key.revoked_at is None


def test_key_revoke_ignores_offsite_next(client, project, owner):
    key = APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.post(
        reverse("workspace:key-revoke", args=[project.slug, key.pk]),
        {"next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("workspace:key-list", args=[project.slug])


def test_key_list_shows_never_for_empty_dates(client, project, owner):
    APIKeyFactory(project=project, name="fresh-key")
    client.force_login(owner)

    response = client.get(reverse("workspace:key-list", args=[project.slug]))

    row = response.text.split("fresh-key", 1)[1].split("</tr>", 1)[0]
    assert row.count(">Never<") == 2


def test_key_list_filters_keys_of_no_application(client, project, owner):
    APIKeyFactory(project=project, name="loose-key")
    KeyMappingFactory(
        application=GenAIApplicationFactory(project=project), key__name="mapped-key"
    )
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"application": "none"}
    )

    assert "loose-key" in response.text
    assert "mapped-key" not in response.text


def test_key_list_filters_by_application(client, project, owner):
    chatbot = GenAIApplicationFactory(project=project, name="Chatbot")
    KeyMappingFactory(application=chatbot, key__name="chatbot-key")
    KeyMappingFactory(
        application=GenAIApplicationFactory(project=project), key__name="other-key"
    )
    APIKeyFactory(project=project, name="loose-key")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]),
        {"application": str(chatbot.pk)},
    )

    assert "chatbot-key" in response.text
    assert "other-key" not in response.text
    assert "loose-key" not in response.text


def test_key_list_offers_only_own_applications_in_filter(
    client, project, other_project, owner
):
    GenAIApplicationFactory(project=other_project, name="Foreign app")
    APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.get(reverse("workspace:key-list", args=[project.slug]))

    assert "Foreign app" not in response.text


def test_key_list_ignores_target_id_beyond_column_range(client, project, owner):
    APIKeyFactory(project=project, name="some-key")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]),
        {"target": "provider:111111111111111111111111111111"},
    )

    assert response.status_code == 200


def test_key_list_pagination_labels_pages(client, project, owner):
    APIKeyFactory.create_batch(26, project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"page": 2}
    )

    assert ">Previous</a>" in response.text
    assert "Page 2 of 2" in response.text
    assert "does not exist" not in response.text


def test_key_list_says_which_page_is_shown_past_the_end(client, project, owner):
    APIKeyFactory.create_batch(26, project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"page": 7}
    )

    assert "The requested page does not exist; showing page 2 of 2." in response.text


def test_key_list_rejects_target_id_in_other_digits(client, project, owner):
    APIKeyFactory(project=project, name="some-key")
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"target": "provider:²"}
    )

    assert response.status_code == 200
    assert "some-key" not in response.text
    assert "“provider:²” is not a provider or App LLM Proxy" in response.text


def test_key_list_dates_sort_latest_first(client, project, owner):
    APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.get(reverse("workspace:key-list", args=[project.slug]))

    links = sort_links(response.content)
    assert links["Name"] == "name"
    assert links["Application"] == "application"
    assert links["Updated"] == "-updated_at"
    assert links["Last used"] == "-last_used_at"
    # The list starts newest first, so its header turns the order around.
    assert links["Created"] == "created_at"


def test_key_created_shows_openai_base_url(client, project, owner):
    provider = ProviderFactory(project=project, context_path="openai")
    client.force_login(owner)

    response = create_key(client, project, provider)

    assert response.context["base_urls"] == [
        ("Gateway base URL", "http://testserver/gateway/openai/v1")
    ]
    assert "Anthropic SDK" not in response.text


def test_key_created_shows_both_anthropic_base_urls(client, project, owner):
    provider = ProviderFactory(
        project=project,
        context_path="claude",
        vendor=Vendor.ANTHROPIC,
        base_url="http://127.0.0.1:9",
    )
    client.force_login(owner)

    response = create_key(client, project, provider)

    assert response.context["base_urls"] == [
        ("Base URL for the Anthropic SDK", "http://testserver/gateway/claude"),
        ("Base URL for the OpenAI SDK", "http://testserver/gateway/claude/v1"),
    ]
    assert '">http://testserver/gateway/claude</code>' in response.text
    assert '">http://testserver/gateway/claude/v1</code>' in response.text


def test_key_created_anthropic_proxy_base_urls(client, project, owner):
    proxy = AppProxyFactory(
        project=project,
        context_path="docs-claude",
        provider__vendor=Vendor.ANTHROPIC,
        provider__base_url="http://127.0.0.1:9",
    )
    client.force_login(owner)

    response = client.post(
        reverse("workspace:key-create", args=[project.slug]),
        {"name": "proxy-key", "target": f"proxy:{proxy.pk}"},
    )

    labels = [label for label, _ in response.context["base_urls"]]
    assert labels == ["Base URL for the Anthropic SDK", "Base URL for the OpenAI SDK"]
    assert '">http://testserver/gateway/docs-claude</code>' in response.text


def test_key_list_revoke_link_keeps_filters(client, project, owner):
    key = APIKeyFactory(project=project, name="ci-runner")
    client.force_login(owner)
    list_url = reverse("workspace:key-list", args=[project.slug])
    query = {"q": "ci", "status": "active", "sort": "name"}

    pages = [
        client.get(list_url, query),
        client.get(list_url, query, headers={"HX-Request": "true"}),
    ]

    revoke_url = reverse("workspace:key-revoke", args=[project.slug, key.pk])
    expected = revoke_url + "?" + urlencode({"next": f"{list_url}?{urlencode(query)}"})
    for response in pages:
        assert f'href="{html.escape(expected)}"' in response.text


def test_key_revoke_returns_to_filtered_list(client, project, owner):
    key = APIKeyFactory(project=project)
    client.force_login(owner)
    filtered = (
        reverse("workspace:key-list", args=[project.slug]) + "?q=ci&status=active"
    )

    response = client.post(
        reverse("workspace:key-revoke", args=[project.slug, key.pk]),
        {"next": filtered},
    )

    assert response["Location"] == filtered


def test_key_revoke_cancel_returns_to_filtered_list(client, project, owner):
    key = APIKeyFactory(project=project)
    client.force_login(owner)
    filtered = (
        reverse("workspace:key-list", args=[project.slug]) + "?q=ci&status=active"
    )
    revoke_url = reverse("workspace:key-revoke", args=[project.slug, key.pk])

    response = client.get(revoke_url, {"next": filtered})
    offsite = client.get(revoke_url, {"next": "https://evil.example/"})

    assert response.context["cancel_url"] == filtered
    assert f'value="{html.escape(filtered)}"' in response.text
    assert offsite.context["cancel_url"] == reverse(
        "workspace:key-list", args=[project.slug]
    )


def test_key_created_links_to_attach_choice(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider)

    key = APIKey.objects.get(name="ci-runner")
    attach = reverse("genai_apps:application-list", args=[project.slug])
    assert f'href="{attach}?attach_key={key.pk}"' in response.text


def test_key_list_times_name_their_zone(client, project, owner):
    APIKeyFactory(
        project=project,
        created_at=datetime.datetime(2026, 3, 1, 18, 45, tzinfo=datetime.UTC),
    )
    client.force_login(owner)

    response = client.get(reverse("workspace:key-list", args=[project.slug]))

    assert '2026-03-01<br><span class="muted">18:45 UTC</span>' in response.text


def test_key_create_rejects_invisible_name(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider, name="\u200b\u200c")

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "The name contains only spaces or invisible characters (U+200B, U+200C). "
        "Enter a name with at least one visible letter, digit or symbol."
    ]
    assert not APIKey.objects.exists()


def test_key_create_names_field_of_too_long_name(client, project, owner):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider, name="k" * 300)

    assert response.context["form"].errors["name"] == [
        "Name is too long: enter at most 255 characters (it has 300)."
    ]


@pytest.mark.parametrize("expires_at", ["2026-02-30T10:00", "next week"])
def test_key_create_names_invalid_expiry(client, project, owner, expires_at):
    provider = ProviderFactory(project=project)
    client.force_login(owner)

    response = create_key(client, project, provider, expires_at=expires_at)

    assert response.context["form"].errors["expires_at"] == [
        f"Expires at: “{expires_at}” is not a valid date and time. Enter one like "
        "2026-03-31 18:00 (UTC), or leave the field empty for a key that does not "
        "expire."
    ]
    assert not APIKey.objects.exists()


def unknown_filter_cases(project):
    deleted = GenAIApplicationFactory(project=project, name="Gone")
    deleted_id = deleted.pk
    deleted.delete()
    return [
        (
            {"application": str(deleted_id)},
            f"Application filter: “{deleted_id}” is not an application of this "
            "project; it may have been deleted.",
        ),
        (
            {"application": "99999"},
            "Application filter: “99999” is not an application of this project; "
            "it may have been deleted.",
        ),
        (
            {"status": "bogus"},
            "Status filter: “bogus” is not a key status; choose active, revoked "
            "or expired.",
        ),
        (
            {"target": "provider:99999"},
            "Provider or proxy filter: “provider:99999” is not a provider or App "
            "LLM Proxy of this project.",
        ),
    ]


def test_key_list_unknown_filter_shows_no_keys(client, project, owner):
    APIKeyFactory.create_batch(3, project=project)
    client.force_login(owner)

    for query, message in unknown_filter_cases(project):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(
                reverse("workspace:key-list", args=[project.slug]),
                query,
                headers=headers,
            )

            assert response.status_code == 200
            assert len(response.context["table"].rows) == 0, query
            assert html.escape(message) in response.text, query
            assert "No keys are shown until you change the filter" in response.text


def test_key_list_keeps_unknown_filter_selected(client, project, owner):
    APIKeyFactory(project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"status": "bogus"}
    )

    assert '<option value="bogus" selected>Unknown: bogus</option>' in response.text


def test_key_list_known_filters_show_no_message(client, project, owner):
    key = KeyMappingFactory(application__project=project).key
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]),
        {
            "status": "active",
            "target": f"provider:{key.provider_id}",
            "application": str(key.mapping.application_id),
        },
    )

    assert len(response.context["table"].rows) == 1
    assert "No keys are shown" not in response.text


@pytest.mark.parametrize("page", ["0", "-1"])
def test_key_list_page_below_one_shows_first(client, project, owner, page):
    APIKeyFactory.create_batch(26, project=project)
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=[project.slug]), {"page": page}
    )

    assert response.context["table"].page.number == 1
    assert "The requested page does not exist; showing page 1 of 2." in response.text


def test_key_form_labels_targets_with_context_path(client, project, owner):
    ProviderFactory(project=project, name="OpenAI", context_path="openai")
    AppProxyFactory(project=project, name="Support proxy", context_path="support")
    client.force_login(owner)

    response = client.get(reverse("workspace:key-create", args=[project.slug]))

    assert ">OpenAI (/openai)</option>" in response.text
    assert ">Support proxy (/support)</option>" in response.text
