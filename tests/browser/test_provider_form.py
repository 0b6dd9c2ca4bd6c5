"""Create a provider with two models in Chromium, using the add-row button."""

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.factories import PASSWORD
from workspace.models import Provider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_provider_with_added_model_rows(page, live_server, project, owner):
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(
        live_server.url + reverse("workspace:provider-create", args=[project.slug])
    )

    page.fill("#id_name", "OpenAI")
    page.fill("#id_context_path", "openai")
    page.select_option("#id_vendor", "openai")
    page.fill("#id_base_url", "https://api.openai.com/v1")
    page.fill("#id_credential", "sk-upstream-browser")
    page.fill("#id_models-0-name", "gpt-4o")
    page.fill("#id_models-1-name", "gpt-4o-mini")
    page.click("text=+ Add another model")
    page.fill("#id_models-2-name", "in-house-model")
    page.fill("#id_models-2-input_price", "0.5")
    page.click("button:has-text('Create')")
    page.wait_for_selector("text=Provider “OpenAI” created.")

    provider = Provider.objects.get(project=project)
    prices = {model.name: model.input_price for model in provider.models.all()}
    assert prices == {
        "gpt-4o": Decimal("2.5"),
        "gpt-4o-mini": Decimal("0.15"),
        "in-house-model": Decimal("0.5"),
    }
    assert provider.get_credential() == "sk-upstream-browser"
    assert "sk-upstream-browser" not in page.content()
