"""Layout and charts of the insights pages in Chromium."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from insights.recording import record_usage
from tests.browser.test_attach_keys import sign_in
from tests.factories import (
    KeyMappingFactory,
    ProviderModelFactory,
    UsageRecordFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _application_with_usage(project):
    mapping = KeyMappingFactory(
        application__project=project,
        application__name="Customer Support Bot",
        key__name="support-bot-staging",
    )
    record_usage(
        [UsageRecordFactory(key=mapping.key, prompt_tokens=342_251) for _ in range(3)]
    )
    return mapping.application


def test_by_key_table_fits_at_1366_pixels(page, live_server, project, owner):
    application = _application_with_usage(project)
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("insights:application", args=[project.slug, application.pk])
    )

    fits = page.evaluate(
        """() => [...document.querySelectorAll('.card .table-container')].map(
            c => c.querySelector('table').scrollWidth <= c.clientWidth)"""
    )
    assert fits == [True, True]
    assert page.is_visible("th:has-text('Cost')")


def test_navigation_above_content_at_390_pixels(page, live_server, project, owner):
    application = _application_with_usage(project)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, owner)

    for url in (
        reverse("insights:overview", args=[project.slug]),
        reverse("insights:application", args=[project.slug, application.pk]),
        reverse("workspace:key-list", args=[project.slug]),
    ):
        page.goto(live_server.url + url)
        navigation = page.locator("nav.sidenav").bounding_box()
        content = page.locator("main.content").bounding_box()

        assert navigation["y"] + navigation["height"] <= content["y"], url
        assert content["width"] >= 380, url
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        ), url


def test_by_key_name_column_sticky_at_1024_pixels(page, live_server, project, owner):
    application = _application_with_usage(project)
    page.set_viewport_size({"width": 1024, "height": 768})
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("insights:application", args=[project.slug, application.pk])
    )
    container = page.locator(".card .table-container").first
    box = container.bounding_box()
    cost = container.locator("th:has-text('Cost')").bounding_box()

    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert cost["x"] + cost["width"] <= box["x"] + box["width"]

    container.evaluate("box => { box.scrollLeft = box.scrollWidth; }")
    name = container.locator("td:has-text('support-bot-staging')").bounding_box()

    assert abs(name["x"] - box["x"]) <= 2


def _chart_axes(page, name):
    return page.evaluate(
        """name => {
            const canvas = document.querySelector(`canvas[data-chart-name="${name}"]`);
            const chart = Chart.getChart(canvas);
            const horizontal = chart.options.indexAxis === "y";
            const scale = horizontal ? chart.scales.x : chart.scales.y;
            return {
                type: scale.type,
                title: scale.options.title.display ? scale.options.title.text : "",
                ticks: scale.ticks.map(tick => tick.value),
                labels: scale.ticks.map(tick => tick.label),
                categories: horizontal ? [] : chart.scales.x.ticks.map(tick => tick.label),
                spanGaps: chart.data.datasets.map(dataset => dataset.spanGaps),
            };
        }""",
        name,
    )


def test_chart_axes_fit_their_units(page, live_server, project, owner):
    mapping = KeyMappingFactory(application__project=project)
    now = timezone.now()
    record_usage(
        [
            UsageRecordFactory(
                key=mapping.key,
                occurred_at=now - datetime.timedelta(hours=hours),
                latency_ms=45_000,
                ttft_ms=300,
            )
            for hours in (1, 2, 3)
        ]
        + [
            UsageRecordFactory(
                key=mapping.key,
                occurred_at=now - datetime.timedelta(hours=2),
                status_code=429,
                error_type="rate_limit",
            )
        ]
    )
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("insights:application", args=[project.slug, mapping.application.pk])
        + "?range=24h"
    )
    latency = _chart_axes(page, "latency")
    errors = _chart_axes(page, "errors_by_type")
    volume = _chart_axes(page, "volume")
    statuses = _chart_axes(page, "errors_by_status")

    assert latency["type"] == "logarithmic"
    # Hours without requests stay gaps in the latency lines.
    assert latency["spanGaps"] == [False, False, False]
    assert "Milliseconds" in latency["title"]
    assert min(latency["ticks"]) <= 300
    assert max(latency["ticks"]) >= 45_000
    for counts in (errors, volume, statuses):
        assert counts["ticks"]
        assert all(value == int(value) for value in counts["ticks"]), counts


def test_range_form_builds_clean_urls(page, live_server, project, owner):
    application = _application_with_usage(project)
    sign_in(page, live_server, owner)
    url = live_server.url + reverse(
        "insights:application", args=[project.slug, application.pk]
    )

    page.goto(url + "?range=30d&tz=UTC")
    page.fill(".range-form input[name=start]", "2026-02-01")
    page.fill(".range-form input[name=end]", "2026-02-10")
    page.click(".range-form button[type=submit]")
    page.wait_for_load_state()

    assert page.url == url + "?range=custom&start=2026-02-01&end=2026-02-10&tz=UTC"

    page.fill(".range-form input[name=start]", "")
    page.fill(".range-form input[name=end]", "")
    page.click(".range-form button[type=submit]")
    page.wait_for_load_state()

    assert page.url == url + "?tz=UTC"

    page.click(".presets a:text-is('24 h')")
    page.wait_for_url(url + "?range=24h&tz=UTC")
    page.click(".range-form button[type=submit]")
    page.wait_for_load_state()

    assert page.url == url + "?range=24h&tz=UTC"


def test_tiny_costs_and_statuses_keep_their_labels(page, live_server, project, owner):
    mapping = KeyMappingFactory(application__project=project)
    ProviderModelFactory(provider=mapping.key.provider, name="gpt-4o-mini")
    now = timezone.now()
    statuses = [(code, "upstream_4xx") for code in (400, 401, 403, 404, 408, 409, 413)]
    statuses += [(code, "upstream_5xx") for code in (500, 502, 503, 504)]
    record_usage(
        [
            UsageRecordFactory(
                key=mapping.key,
                occurred_at=now - datetime.timedelta(hours=hours),
                model="gpt-4o-mini",
                prompt_tokens=hours,
                completion_tokens=0,
            )
            for hours in (1, 2, 3)
        ]
        + [
            UsageRecordFactory(
                key=mapping.key,
                occurred_at=now - datetime.timedelta(hours=1),
                status_code=status,
                error_type=error_type,
                prompt_tokens=0,
                completion_tokens=0,
            )
            for status, error_type in statuses
        ]
    )
    sign_in(page, live_server, owner)

    page.goto(
        live_server.url
        + reverse("insights:application", args=[project.slug, mapping.application.pk])
        + "?range=24h"
    )
    cost = _chart_axes(page, "cost_by_model")
    errors = _chart_axes(page, "errors_by_status")

    # A few millionths of a dollar per bucket: the labels must tell the
    # ticks apart, and every status gets its label.
    assert len(set(cost["labels"])) == len(cost["labels"])
    assert all(label.startswith("$") for label in cost["labels"])
    assert errors["categories"] == [str(code) for code, _ in statuses]
