import json

from django.urls import reverse

from genai_apps.models import GenAIApplication, KeyMapping, KeyMappingEvent
from genai_apps.services import attach_keys
from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
)
from workspace.models import APIKey


def picker_url(application):
    return reverse(
        "genai_apps:application-attach-keys",
        args=[application.project.slug, application.pk],
    )


def remove_url(application, key):
    return reverse(
        "genai_apps:application-remove-key",
        args=[application.project.slug, application.pk, key.pk],
    )


def test_picker_lists_only_unattached_active_keys(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=project, name="free-key")
    KeyMappingFactory(
        application=GenAIApplicationFactory(project=project), key__name="taken-key"
    )
    APIKeyFactory(project=project, name="revoked-key", revoked=True)
    APIKeyFactory(project=project, name="expired-key", expired=True)
    client.force_login(owner)

    response = client.get(picker_url(application))

    assert "free-key" in response.text
    assert "taken-key" not in response.text
    assert "revoked-key" not in response.text
    assert "expired-key" not in response.text


def test_picker_never_lists_keys_of_other_project(
    client, project, other_project, owner
):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=other_project, name="foreign-key")
    client.force_login(owner)

    response = client.get(picker_url(application))

    assert "foreign-key" not in response.text


def test_picker_fragment_for_htmx(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=project, name="free-key")
    client.force_login(owner)

    response = client.get(
        picker_url(application), headers={"HX-Request": "true", "HX-Target": "modal"}
    )

    assert response.text.lstrip().startswith("<form")
    assert "<html" not in response.text
    assert 'id="key-picker"' in response.text
    assert "free-key" in response.text


def test_picker_without_htmx_renders_full_page(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.get(picker_url(application))

    assert "<html" in response.text
    assert 'id="key-picker"' in response.text


def test_picker_search_returns_rows_fragment(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=project, name="billing-worker")
    APIKeyFactory(project=project, name="search-worker")
    client.force_login(owner)

    response = client.get(
        picker_url(application),
        {"q": "billing"},
        headers={"HX-Request": "true", "HX-Target": "picker-rows"},
    )

    assert response.text.lstrip().startswith('<div id="picker-rows"')
    assert "billing-worker" in response.text
    assert "search-worker" not in response.text


def test_picker_filters_by_proxy(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    proxy = AppProxyFactory(project=project)
    APIKeyFactory(project=project, name="proxy-key", provider=None, proxy=proxy)
    APIKeyFactory(project=project, name="provider-key")
    client.force_login(owner)

    response = client.get(picker_url(application), {"target": f"proxy:{proxy.pk}"})

    assert "proxy-key" in response.text
    assert "provider-key" not in response.text


def test_picker_search_keeps_selected_keys_checked(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project, name="billing-worker")
    client.force_login(owner)

    response = client.get(
        picker_url(application),
        {"q": "billing", "keys": [str(key.pk)]},
        headers={"HX-Request": "true", "HX-Target": "picker-rows"},
    )

    assert f'value="{key.pk}" id="pick-key-{key.pk}" checked' in response.text


def test_attach_two_keys_without_htmx_redirects(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    keys = APIKeyFactory.create_batch(2, project=project)
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": [k.pk for k in keys]})

    assert response.status_code == 302
    assert KeyMapping.objects.filter(application=application).count() == 2
    assert KeyMappingEvent.objects.filter(action="attach", actor=owner).count() == 2


def test_attach_with_htmx_swaps_keys_section(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project, name="support-prod")
    client.force_login(owner)

    response = client.post(
        picker_url(application),
        {"keys": [key.pk]},
        headers={"HX-Request": "true", "HX-Target": "modal"},
    )

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#keys-and-history"
    assert json.loads(response["HX-Trigger"]) == {"close-modal": {}}
    assert response.text.lstrip().startswith('<div id="keys-and-history">')
    assert "Attached 1 API key." in response.text
    assert "support-prod" in response.text


def test_attach_rejects_forged_key_of_other_application(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    mapping = KeyMappingFactory(
        application=GenAIApplicationFactory(project=project, name="Docs Search")
    )
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": [mapping.key_id]})

    assert response.status_code == 200
    assert "already belongs to the application “Docs Search”" in response.text
    assert KeyMapping.objects.get(key=mapping.key).application == mapping.application


def test_attach_rejects_forged_key_of_other_project(
    client, project, other_project, owner
):
    application = GenAIApplicationFactory(project=project)
    foreign_key = APIKeyFactory(project=other_project)
    client.force_login(owner)

    response = client.post(
        picker_url(application),
        {"keys": [foreign_key.pk]},
        headers={"HX-Request": "true", "HX-Target": "modal"},
    )

    assert f"API key id {foreign_key.pk} was not found in this project." in (
        response.text
    )
    assert "<html" not in response.text
    assert not KeyMapping.objects.exists()


def test_attach_rejects_unknown_key_id(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": ["424242"]})

    assert "API key id 424242 was not found in this project." in response.text


def test_attach_rejects_revoked_key(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project, revoked=True)
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": [key.pk]})

    assert "is revoked; only active keys can be attached" in response.text
    assert not KeyMapping.objects.exists()


def test_attach_without_selection_shows_error(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.post(picker_url(application), {})

    assert "Select at least one API key to attach." in response.text


def test_remove_asks_for_confirmation(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(application, [key], owner)
    client.force_login(owner)

    response = client.get(remove_url(application, key), headers={"HX-Request": "true"})

    assert "Remove API key" in response.text
    assert "<html" not in response.text
    assert KeyMapping.objects.filter(key=key).exists()


def test_remove_confirmation_works_without_htmx(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(application, [key], owner)
    client.force_login(owner)

    response = client.get(remove_url(application, key))

    assert "<html" in response.text
    assert "Remove API key" in response.text


def test_remove_detaches_and_keeps_key_status(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(application, [key], owner)
    key.revoke(owner)
    client.force_login(owner)

    response = client.post(remove_url(application, key))

    assert response.status_code == 302
    assert not KeyMapping.objects.filter(key=key).exists()
    stored = APIKey.objects.get(pk=key.pk)
    assert stored.revoked_at == key.revoked_at
    assert KeyMappingEvent.objects.filter(
        action="detach", key=key, actor=owner
    ).exists()


def test_remove_rejects_key_of_other_application(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    mapping = KeyMappingFactory(application=GenAIApplicationFactory(project=project))
    client.force_login(owner)

    response = client.post(remove_url(application, mapping.key))

    assert response.status_code == 404
    assert KeyMapping.objects.filter(pk=mapping.pk).exists()


def test_picker_search_keeps_ticked_keys_listed(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    ticked = APIKeyFactory(project=project, name="search-worker")
    APIKeyFactory(project=project, name="billing-worker")
    client.force_login(owner)

    response = client.get(
        picker_url(application),
        {"q": "billing", "keys": [str(ticked.pk)]},
        headers={"HX-Request": "true", "HX-Target": "picker-rows"},
    )

    assert "billing-worker" in response.text
    assert f'id="pick-key-{ticked.pk}" checked' in response.text


def test_picker_never_lists_ticked_key_of_other_project(
    client, project, other_project, owner
):
    application = GenAIApplicationFactory(project=project)
    foreign_key = APIKeyFactory(project=other_project, name="foreign-key")
    client.force_login(owner)

    response = client.get(picker_url(application), {"keys": [str(foreign_key.pk)]})

    assert "foreign-key" not in response.text


TOO_LARGE_ID = "111111111111111111111111111111"


def test_attach_reports_key_id_beyond_column_range_as_not_found(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": TOO_LARGE_ID})

    assert response.status_code == 200
    assert f"API key id {TOO_LARGE_ID} was not found in this project." in response.text
    assert not KeyMapping.objects.exists()


def test_picker_ignores_ticked_key_id_beyond_column_range(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=project, name="free-key")
    client.force_login(owner)

    response = client.get(picker_url(application), {"keys": TOO_LARGE_ID})

    assert response.status_code == 200
    assert "free-key" in response.text


def test_attach_rejects_non_ascii_digits_as_key_id(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.post(picker_url(application), {"keys": "²"})

    assert response.status_code == 200
    assert "“²” is not a valid API key id" in response.text


def test_attach_with_htmx_replaces_earlier_messages(client, project, owner):
    client.force_login(owner)
    client.post(
        reverse("genai_apps:application-create", args=[project.slug]),
        {"name": "Support Bot", "description": ""},
        follow=True,
    )
    application = GenAIApplication.objects.get(name="Support Bot")
    first, second = APIKeyFactory.create_batch(2, project=project)

    response = client.post(
        picker_url(application),
        {"keys": [first.pk, second.pk]},
        headers={"HX-Request": "true", "HX-Target": "modal"},
    )

    assert '<div id="messages" hx-swap-oob="true">' in response.text
    assert "Attached 2 API keys." in response.text
    assert "created." not in response.text


def test_picker_page_posts_without_htmx(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    page = client.get(picker_url(application))
    dialog = client.get(
        picker_url(application), headers={"HX-Request": "true", "HX-Target": "modal"}
    )

    # On a page of its own, the htmx response (a swap into the details page)
    # would have no target, so the form posts normally and redirects.
    assert "hx-post" not in page.text
    assert f'hx-post="{picker_url(application)}"' in dialog.text


def test_picker_unknown_target_lists_no_keys(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    APIKeyFactory(project=project, name="provider-key")
    client.force_login(owner)

    for headers in ({}, {"HX-Request": "true", "HX-Target": "picker-rows"}):
        response = client.get(
            picker_url(application), {"target": "proxy:99999"}, headers=headers
        )

        assert "provider-key" not in response.text
        assert (
            "Provider or proxy filter: “proxy:99999” is not a provider or App LLM "
            "Proxy of this project." in response.text
        )
