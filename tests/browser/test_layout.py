"""Page layout in Chromium with content at its size limits."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.browser.test_attach_keys import sign_in
from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONGEST_NAME = "A" * 255


def page_overflows(page):
    return page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        " || [...document.querySelectorAll('.table-container')]"
        ".some(box => box.scrollWidth > box.clientWidth)"
    )


def test_longest_application_name_stays_within_list(page, live_server, project, owner):
    GenAIApplicationFactory(project=project, name=LONGEST_NAME)
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url + reverse("genai_apps:application-list", args=[project.slug])
    )

    assert not page_overflows(page)


def test_longest_application_name_wraps_in_detail_title(
    page, live_server, project, owner
):
    application = GenAIApplicationFactory(project=project, name=LONGEST_NAME)
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("genai_apps:application-detail", args=[project.slug, application.pk])
    )

    assert not page_overflows(page)
    assert page.locator("h1").bounding_box()["height"] > 60


def test_key_list_fits_at_1280_pixels(page, live_server, project, owner):
    proxy = AppProxyFactory(project=project, name="Batch summaries (Azure)")
    mapping = KeyMappingFactory(
        application=GenAIApplicationFactory(project=project, name=LONGEST_NAME),
        key__name="support-bot-production-fallback",
        key__provider__name="Azure OpenAI West Europe",
    )
    APIKeyFactory(project=project, provider=None, proxy=proxy, expired=True)
    APIKeyFactory(
        project=project,
        provider=mapping.key.provider,
        expires_at=timezone.now() + datetime.timedelta(days=30),
    )
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, owner)

    page.goto(live_server.url + reverse("workspace:key-list", args=[project.slug]))

    assert not page_overflows(page)
