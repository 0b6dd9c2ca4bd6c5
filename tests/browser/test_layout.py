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
    ProviderFactory,
)
from workspace.models import Vendor

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


# Returns, for each gateway path (column 2) and base URL (column 4) of the
# providers table, the text of each rendered line, by grouping the characters
# by the top of their box.
RENDERED_LINES_OF_PATHS = """
() => [...document.querySelectorAll(
  '.table td:nth-child(2) > code, .table td:nth-child(4) > .mono'
)].map(element => {
  const lines = new Map();
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let index = 0; index < node.length; index++) {
      const range = document.createRange();
      range.setStart(node, index);
      range.setEnd(node, index + 1);
      const top = Math.round(range.getBoundingClientRect().top);
      lines.set(top, (lines.get(top) || '') + node.data[index]);
    }
  }
  return [...lines.entries()].sort((a, b) => a[0] - b[0]).map(entry => entry[1]);
})
"""


@pytest.mark.parametrize("width", [420, 1280])
def test_provider_urls_wrap_only_after_slash(page, live_server, project, owner, width):
    ProviderFactory(
        project=project,
        name="OpenAI simulator",
        context_path="openai-simulator-west",
        base_url="http://127.0.0.1:8501/v1",
    )
    ProviderFactory(
        project=project,
        name="Azure OpenAI West Europe",
        context_path="azure-we",
        vendor=Vendor.AZURE_OPENAI,
        base_url="https://my-resource-name-westeurope.openai.azure.com/openai-proxy/v1",
        api_version="2024-10-21",
    )
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, live_server, owner)

    page.goto(live_server.url + reverse("workspace:provider-list", args=[project.slug]))
    paths = page.evaluate(RENDERED_LINES_OF_PATHS)

    assert len(paths) == 4
    for lines in paths:
        for line in lines[:-1]:
            assert line.endswith("/"), lines
