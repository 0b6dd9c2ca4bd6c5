"""Attach and remove keys in Chromium, through the htmx picker."""

import pytest
from django.urls import reverse

from genai_apps.models import GenAIApplication, KeyMapping
from tests.factories import (
    PASSWORD,
    APIKeyFactory,
    GenAIApplicationFactory,
    ProviderFactory,
)
from workspace.models import APIKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, user):
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/p/**")


def test_attach_two_keys_and_remove_one(page, live_server, project, owner):
    provider = ProviderFactory(project=project, name="OpenAI")
    first = APIKeyFactory(project=project, provider=provider, name="support-prod")
    second = APIKeyFactory(project=project, provider=provider, name="support-staging")
    APIKeyFactory(project=project, provider=provider, name="unrelated-key")
    sign_in(page, live_server, owner)

    page.click("text=+ Create Application")
    page.fill("#id_name", "  Support Bot  ")
    page.fill("#id_description", "Answers tickets.")
    page.click("button:has-text('Create')")
    page.wait_for_selector("h1:has-text('Support Bot')")
    application = GenAIApplication.objects.get(project=project, name="Support Bot")

    # A marker on window survives only if the page is not reloaded.
    page.evaluate("window.pageMarker = 'kept'")
    page.click("text=Attach API Keys")
    page.wait_for_selector("dialog#modal[open] #key-picker")
    page.check(f"#pick-key-{first.pk}")
    page.check(f"#pick-key-{second.pk}")
    page.click("dialog#modal button:has-text('Attach selected keys')")
    page.wait_for_selector("#mapped-keys:has-text('support-staging')")

    assert page.evaluate("window.pageMarker") == "kept"
    assert not page.is_visible("dialog#modal")
    assert set(
        KeyMapping.objects.filter(application=application).values_list(
            "key__name", flat=True
        )
    ) == {"support-prod", "support-staging"}

    page.click("#mapped-keys tr:has-text('support-prod') >> text=Remove")
    page.wait_for_selector("dialog#modal[open] form.confirm")
    page.click("dialog#modal button:has-text('Remove')")
    page.wait_for_selector("text=removed from “Support Bot”")

    mapped = page.inner_text("#mapped-keys")
    assert "support-staging" in mapped
    assert "support-prod" not in mapped

    page.goto(live_server.url + reverse("workspace:key-list", args=[project.slug]))
    row = page.inner_text("tr:has-text('support-prod')")
    assert "Active" in row
    assert "Support Bot" not in row

    key = APIKey.objects.get(pk=first.pk)
    assert key.revoked_at is None
    assert not KeyMapping.objects.filter(key=key).exists()


def test_picker_counts_ticked_keys_and_attach_replaces_messages(
    page, live_server, project, owner
):
    provider = ProviderFactory(project=project, name="OpenAI")
    first = APIKeyFactory(project=project, provider=provider, name="support-prod")
    second = APIKeyFactory(project=project, provider=provider, name="billing-prod")
    sign_in(page, live_server, owner)
    page.click("text=+ Create Application")
    page.fill("#id_name", "Support Bot")
    page.click("button:has-text('Create')")
    page.wait_for_selector("#messages:has-text('Application “Support Bot” created.')")

    page.click("text=Attach API Keys")
    page.wait_for_selector("dialog#modal[open] #key-picker")
    page.check(f"#pick-key-{first.pk}")
    page.check(f"#pick-key-{second.pk}")
    selection = page.locator("#picker-selection")
    assert selection.inner_text() == "2 keys selected (kept when you search or filter)"
    # The search swaps in new rows; the ticked keys and the count stay.
    with page.expect_response(lambda response: "q=billing" in response.url):
        page.fill("#picker-search", "billing")
    page.wait_for_function("!document.querySelector('#picker-rows.htmx-settling')")
    assert page.is_checked(f"#pick-key-{first.pk}")
    assert selection.inner_text() == "2 keys selected (kept when you search or filter)"

    page.click("dialog#modal button:has-text('Attach selected keys')")
    page.wait_for_selector("#messages:has-text('Attached 2 API keys.')")

    assert "created." not in page.inner_text("#messages")


def test_new_key_attaches_from_its_page(page, live_server, project, owner):
    provider = ProviderFactory(project=project, name="OpenAI")
    application = GenAIApplicationFactory(project=project, name="Docs Search")
    GenAIApplicationFactory(project=project, name="Support Bot")
    APIKeyFactory(project=project, provider=provider, name="other-free-key")
    sign_in(page, live_server, owner)

    page.goto(live_server.url + reverse("workspace:key-create", args=[project.slug]))
    page.fill("#id_name", "docs-prod")
    page.select_option("#id_target", f"provider:{provider.pk}")
    page.click("form button.primary[type=submit]")
    page.click("text=Attach it to an application")
    page.click("#application-table tr:has-text('Docs Search') >> text=Attach here")
    page.wait_for_selector("#key-picker")

    assert page.inner_text("#picker-rows tbody").count("\n") == 0
    assert "docs-prod" in page.inner_text("#picker-rows tbody")

    page.click("button:has-text('Attach selected keys')")
    page.wait_for_selector("#mapped-keys:has-text('docs-prod')")

    key = APIKey.objects.get(name="docs-prod")
    assert KeyMapping.objects.get(key=key).application == application
    assert page.url.endswith(
        reverse("genai_apps:application-detail", args=[project.slug, application.pk])
    )


def test_revoke_keeps_key_list_filters(page, live_server, project, owner):
    APIKeyFactory(project=project, name="ci-runner-1")
    APIKeyFactory(project=project, name="ci-runner-2")
    APIKeyFactory(project=project, name="notebook")
    sign_in(page, live_server, owner)
    list_url = live_server.url + reverse("workspace:key-list", args=[project.slug])

    page.goto(list_url)
    page.fill("#id_q", "ci-runner")
    page.wait_for_url("**q=ci-runner**")
    page.wait_for_selector("#key-table:not(:has-text('notebook'))")
    filtered = page.url
    page.click("#key-table tr:has-text('ci-runner-1') >> text=Revoke")
    page.wait_for_selector("dialog#modal[open] form.confirm")
    page.click("dialog#modal button:has-text('Revoke')")
    page.wait_for_selector("text=revoked.")

    assert page.url == filtered
    assert page.input_value("#id_q") == "ci-runner"
    assert "notebook" not in page.inner_text("#key-table")
