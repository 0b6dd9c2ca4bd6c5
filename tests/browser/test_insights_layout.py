"""Layout of the insights pages in Chromium at a common laptop width."""

import pytest
from django.urls import reverse

from insights.recording import record_usage
from tests.browser.test_attach_keys import sign_in
from tests.factories import KeyMappingFactory, UsageRecordFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_by_key_table_fits_its_card_at_1366_pixels(page, live_server, project, owner):
    mapping = KeyMappingFactory(
        application__project=project,
        application__name="Customer Support Bot",
        key__name="support-bot-staging",
    )
    record_usage(
        [UsageRecordFactory(key=mapping.key, prompt_tokens=342_251) for _ in range(3)]
    )
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("insights:application", args=[project.slug, mapping.application.pk])
    )

    fits = page.evaluate(
        """() => [...document.querySelectorAll('.card .table-container')].map(
            c => c.querySelector('table').scrollWidth <= c.clientWidth)"""
    )
    assert fits == [True, True]
    assert page.is_visible("th:has-text('Cost')")
