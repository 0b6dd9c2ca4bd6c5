import csv
import datetime
import io
import re
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from insights.recording import record_usage
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    ProviderModelFactory,
    UsageRecordFactory,
)
from tests.html import sort_links

pytestmark = pytest.mark.django_db


@pytest.fixture
def application(project):
    return GenAIApplicationFactory(project=project, name="Support Bot")


@pytest.fixture
def traffic(project, application):
    key = KeyMappingFactory(application=application, key__name="=HYPERLINK(1)").key
    ProviderModelFactory(provider=key.provider, name="gpt-4o-mini")
    loose = APIKeyFactory(project=project, name="loose-key")
    now = timezone.now()
    records = [
        UsageRecordFactory(
            key=key, occurred_at=now - datetime.timedelta(hours=i), model="gpt-4o-mini"
        )
        for i in range(1, 6)
    ]
    records.append(
        UsageRecordFactory(
            key=key, occurred_at=now - datetime.timedelta(hours=2), model="mystery"
        )
    )
    records.append(
        UsageRecordFactory(
            key=key,
            occurred_at=now - datetime.timedelta(hours=3),
            status_code=429,
            error_type="rate_limit",
        )
    )
    records.append(
        UsageRecordFactory(key=loose, occurred_at=now - datetime.timedelta(hours=1))
    )
    record_usage(records)
    return key


def app_url(application, **params):
    url = reverse(
        "insights:application", args=[application.project.slug, application.pk]
    )
    return url, params


def test_application_page_shows_headline_figures(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), {"range": "24h"}
    )

    assert response.status_code == 200
    figures = {f.label: f for f in response.context["report"].figures}
    assert figures["Requests"].value == 7
    assert figures["Error rate"].value == pytest.approx(1 / 7)
    assert b"Support Bot" in response.content


def test_application_page_marks_partly_unknown_cost(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), {"range": "24h"}
    )

    cost = next(f for f in response.context["report"].figures if f.label == "Cost")
    assert cost.note == "1 request has no price"


def test_model_table_shows_unknown_cost_as_unknown(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), {"range": "24h"}
    )

    model_table = response.context["model_table"]
    row = next(r for r in model_table.rows if r.record["name"] == "mystery")
    assert "unknown" in row.get_cell("cost")
    assert "—" not in row.get_cell("cost")


def test_application_page_of_other_project_is_not_found(
    client, outsider, application, traffic
):
    client.force_login(outsider)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk])
    )

    assert response.status_code == 404


def test_application_id_from_other_project_is_not_found(client, owner, other_project):
    foreign = GenAIApplicationFactory(project=other_project)
    client.force_login(owner)

    response = client.get(reverse("insights:application", args=["acme", foreign.pk]))

    assert response.status_code == 404


def test_viewer_can_read_insights(client, viewer, application, traffic):
    client.force_login(viewer)

    response = client.get(reverse("insights:overview", args=["acme"]))

    assert response.status_code == 200


def test_anonymous_user_is_sent_to_sign_in(client, project):
    response = client.get(reverse("insights:overview", args=["acme"]))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("preset", ["24h", "7d", "30d", "90d"])
def test_empty_range_shows_dashes_not_nan(client, owner, application, preset):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": preset},
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "NaN" not in body
    assert "Infinity" not in body
    assert "—" in body


@pytest.mark.parametrize("page", ["overview", "application"])
def test_empty_range_charts_say_no_data(client, owner, application, page):
    client.force_login(owner)
    args = ["acme"] if page == "overview" else ["acme", application.pk]

    response = client.get(reverse(f"insights:{page}", args=args), {"range": "7d"})

    body = response.content.decode()
    charts = response.context["charts"]
    assert len(charts) >= 6
    assert not any(chart["has_data"] for chart in charts)
    assert body.count("No data in this range.") == len(charts)
    assert "<canvas" not in body


def test_chart_with_usage_has_canvas(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": "24h"},
    )

    drawn = {chart["name"] for chart in response.context["charts"] if chart["has_data"]}
    assert drawn == {
        "volume",
        "tokens",
        "latency",
        "cost_by_model",
        "errors_by_type",
        "errors_by_status",
    }
    assert 'data-chart-name="latency"' in response.content.decode()


def test_overview_shows_unattached_share(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(reverse("insights:overview", args=["acme"]), {"range": "24h"})

    assert response.context["report"].unattached.requests == 1
    assert response.context["unattached_request_share"] == pytest.approx(1 / 8)
    unattached_keys_url = reverse("workspace:key-list", args=["acme"]) + (
        "?application=none"
    )
    assert unattached_keys_url.encode() in response.content


def test_unattached_keys_button_lists_only_unattached_keys(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("workspace:key-list", args=["acme"]), {"application": "none"}
    )

    listed = [key.name for key in response.context["table"].data]
    assert listed == ["loose-key"]


def test_overview_ranks_applications_by_cost(client, owner, project, traffic):
    client.force_login(owner)

    response = client.get(reverse("insights:overview", args=["acme"]), {"range": "24h"})

    rows = list(response.context["application_table"].rows)
    assert rows[0].record["name"] == "Support Bot"


def test_custom_range_in_timezone(client, owner, application, traffic):
    client.force_login(owner)
    today = (
        timezone.now()
        .astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=45)))
        .date()
    )

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {
            "start": (today - datetime.timedelta(days=1)).isoformat(),
            "end": today.isoformat(),
            "tz": "Asia/Kathmandu",
        },
    )

    assert response.status_code == 200
    assert response.context["range_key"] == "custom"
    assert response.context["report"].total.requests == 7


@pytest.mark.parametrize(
    "params, message",
    [
        ({"range": "custom", "start": "2026-02-01"}, "needs a start and an end"),
        ({"start": "2026-02-05", "end": "2026-02-01"}, "is before the start date"),
        ({"tz": "Mars/Olympus"}, "Unknown timezone"),
        ({"start": "yesterday", "end": "2026-02-01"}, "Start date: enter a date"),
    ],
)
def test_bad_options_show_an_error_not_a_500(
    client, owner, application, params, message
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), params
    )

    assert response.status_code == 200
    assert message in response.content.decode()


def test_invalid_start_date_gives_one_message_naming_the_field(
    client, owner, application
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"start": "2026-02-31", "end": "2026-03-05"},
    )

    assert response.context["form"].errors == {
        "start": ["Start date: enter a date as YYYY-MM-DD, not '2026-02-31'."]
    }


def test_timezone_cookie_sets_display_zone(client, owner, application):
    client.force_login(owner)
    client.cookies["aiw_tz"] = "Asia%2FKolkata"

    response = client.get(
        reverse("insights:application", args=["acme", application.pk])
    )

    assert response.context["tz_name"] == "Asia/Kolkata"


def read_csv(response):
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


def test_key_export_neutralises_formulas(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "keys"},
    )

    rows = read_csv(response)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert rows[1][0] == "'=HYPERLINK(1)"


def test_event_export_lists_every_event(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "events"},
    )

    rows = read_csv(response)
    assert len(rows) == 1 + 7
    assert rows[0][0] == "event_id"


def test_key_export_names_prefix_and_unpriced_requests(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "keys"},
    )

    header, row = read_csv(response)
    record = dict(zip(header, row, strict=True))
    assert record["prefix"] == traffic.prefix
    # The "mystery" model and the model-less rate-limited call have no price.
    assert record["unpriced_requests"] == "1"


def test_model_export_counts_unpriced_requests(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "models"},
    )

    rows = read_csv(response)
    by_name = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_name["mystery"]["unpriced_requests"] == "1"
    assert by_name["mystery"]["cost_usd"] == ""
    assert by_name["gpt-4o-mini"]["unpriced_requests"] == "0"
    # As the table shows them by default: highest cost first, unknown cost last.
    assert [row[0] for row in rows[1:]][0] == "gpt-4o-mini"
    assert [row[0] for row in rows[1:]][-1] == "mystery"


def test_applications_export_has_a_row_for_unattached_keys(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:overview-export", args=["acme"]),
        {"range": "24h", "table": "applications"},
    )

    rows = read_csv(response)
    assert [row[:2] for row in rows[1:]] == [
        ["Support Bot", "7"],
        ["No application", "1"],
    ]


def test_event_export_identifies_keys_and_uses_the_chosen_timezone(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "events", "tz": "Asia/Kolkata"},
    )

    rows = read_csv(response)
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["key_name"] == "'=HYPERLINK(1)"
    assert record["key_prefix"] == traffic.prefix
    assert record["occurred_at"].endswith("+05:30")
    assert datetime.datetime.fromisoformat(record["occurred_at"]).tzinfo is not None


def test_export_file_name_has_application_slug_and_id(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "keys"},
    )

    assert (
        f'filename="acme-support-bot-{application.pk}-keys-'
        in (response["Content-Disposition"])
    )


def test_series_export_matches_page_totals(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"range": "24h", "table": "series"},
    )

    rows = read_csv(response)
    assert sum(int(row[1]) for row in rows[1:]) == 7


def test_export_of_other_project_is_not_found(client, outsider, application):
    client.force_login(outsider)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk])
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+1", "'=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\t=cmd", "'\t=cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("plain", "plain"),
        (12, 12),
    ],
)
def test_safe_cell(value, expected):
    from insights.export import safe_cell

    assert safe_cell(value) == expected


def test_application_page_queries_do_not_grow_with_keys(
    client, owner, application, traffic, django_assert_max_num_queries
):
    for _ in range(5):
        extra = KeyMappingFactory(application=application).key
        record_usage([UsageRecordFactory(key=extra, occurred_at=timezone.now())])
    client.force_login(owner)

    with django_assert_max_num_queries(25):
        response = client.get(
            reverse("insights:application", args=["acme", application.pk]),
            {"range": "24h"},
        )

    assert len(response.context["key_table"].rows) == 6


def test_chart_table_escapes_labels(client, owner, project):
    app = GenAIApplicationFactory(project=project, name="<script>alert(1)</script>")
    key = KeyMappingFactory(application=app).key
    record_usage([UsageRecordFactory(key=key, occurred_at=timezone.now())])
    client.force_login(owner)

    response = client.get(reverse("insights:overview", args=["acme"]), {"range": "24h"})

    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_overview_numeric_headers_sort_descending_first(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(reverse("insights:overview", args=["acme"]), {"range": "24h"})

    links = sort_links(response.content, "apps-sort")
    assert links["Application"] == "name"
    assert links["Requests"] == "-requests"
    assert links["Errors"] == "-errors"
    assert links["Error rate"] == "-error_rate"
    assert links["Share of requests"] == "-request_share"
    # The table is ranked by cost, so its header turns the order around.
    assert links["Cost"] == "cost"


def test_application_numeric_headers_sort_descending_first(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": "24h"},
    )

    key_links = sort_links(response.content, "keys-sort")
    model_links = sort_links(response.content, "models-sort")
    assert key_links["Key"] == "name"
    assert key_links["Status"] == "status"
    assert key_links["Requests"] == "-requests"
    assert key_links["Prompt tokens"] == "-prompt_tokens"
    assert key_links["Reasoning"] == "-reasoning_tokens"
    assert model_links["Model"] == "name"
    assert model_links["Completion tokens"] == "-completion_tokens"


def test_sorted_numeric_header_toggles_to_ascending(
    client, owner, application, traffic
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:overview", args=["acme"]),
        {"range": "24h", "apps-sort": "-requests"},
    )

    assert sort_links(response.content, "apps-sort")["Requests"] == "requests"


def test_custom_range_links_carry_custom_dates(client, owner, application, traffic):
    client.force_login(owner)
    today = timezone.now().date()
    start = (today - datetime.timedelta(days=2)).isoformat()
    end = today.isoformat()

    response = client.get(
        reverse("insights:overview", args=["acme"]),
        {"range": "30d", "start": start, "end": end, "tz": "UTC"},
    )

    body = response.content.decode()
    custom = f"range=custom&start={start}&end={end}&tz=UTC"
    app_link = reverse("insights:application", args=["acme", application.pk])
    assert response.context["query_string"] == custom
    assert f'href="{app_link}?{custom.replace("&", "&amp;")}"' in body
    assert "export.csv?range=30d" not in body
    presets = {p["key"]: p["query"] for p in response.context["presets"]}
    assert presets["24h"] == "range=24h&tz=UTC"


def test_application_links_drop_empty_dates(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": "24h", "start": "", "end": "", "tz": "Asia/Kolkata"},
    )

    body = response.content.decode()
    overview = reverse("insights:overview", args=["acme"])
    export = reverse("insights:application-export", args=["acme", application.pk])
    assert f'href="{overview}?range=24h&amp;tz=Asia%2FKolkata"' in body
    assert f'href="{export}?range=24h&amp;tz=Asia%2FKolkata&amp;table=keys"' in body
    assert "?&amp;" not in body


def test_overview_links_leave_sorting_behind(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:overview", args=["acme"]),
        {"range": "7d", "apps-sort": "-requests", "apps-page": "1"},
    )

    body = response.content.decode()
    app_link = reverse("insights:application", args=["acme", application.pk])
    export = reverse("insights:overview-export", args=["acme"])
    assert f'href="{app_link}?range=7d"' in body
    assert f'href="{export}?range=7d&amp;table=applications"' in body
    presets = {p["key"]: p["query"] for p in response.context["presets"]}
    assert presets["30d"] == "range=30d&apps-sort=-requests"


def test_range_form_keeps_sorting(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:overview", args=["acme"]),
        {"range": "7d", "apps-sort": "-requests", "apps-page": "2", "tz": "UTC"},
    )

    form = response.content.decode().split('<form class="range-form"')[1]
    form = form.split("</form>")[0]
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    assert sorted(hidden) == [("apps-sort", "-requests"), ("range", "7d")]


@pytest.mark.parametrize(
    ("start", "end", "zone"),
    [
        ("0026-11-25", "0026-11-28", "Europe/Berlin"),
        ("1850-01-01", "1850-01-03", "Europe/Berlin"),
        ("0001-01-01", "0001-01-02", "UTC"),
        ("2026-11-01", "9999-12-31", "UTC"),
    ],
)
def test_out_of_range_dates_get_message(client, owner, application, start, end, zone):
    client.force_login(owner)
    page_urls = [
        reverse("insights:application", args=["acme", application.pk]),
        reverse("insights:overview", args=["acme"]),
    ]

    for url in page_urls:
        response = client.get(url, {"start": start, "end": end, "tz": zone})

        assert response.status_code == 200
        assert "enter a date between 2000-01-01 and 2100-12-31" in response.text
        if start.startswith("0026"):
            assert "not 0026-11-25." in response.text


def test_timezone_matches_without_case(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"tz": "europe/berlin"},
    )

    assert response.context["tz_name"] == "Europe/Berlin"


@pytest.mark.parametrize("name", ["localtime", "Factory", "posixrules"])
def test_timezone_rejects_names_that_are_not_places(client, owner, application, name):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"tz": name},
    )

    assert response.context["tz_name"] == "UTC"
    assert "Unknown timezone" in response.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "bogus"}, "Unknown range 'bogus'"),
        ({"tz": "Not/AZone"}, "Unknown timezone 'Not/AZone'"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "is before the start date"),
        ({"start": "2000-01-01", "end": "2026-12-04"}, "at most 400 days"),
    ],
)
def test_export_rejects_invalid_options(client, owner, application, params, message):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application-export", args=["acme", application.pk]),
        {"table": "series", **params},
    )

    assert response.status_code == 400
    assert message in response.content.decode()


def test_cost_chart_table_shows_dollars(client, owner, application, traffic):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), {"range": "24h"}
    )

    chart = next(c for c in response.context["charts"] if c["name"] == "cost_by_model")
    status = next(
        c for c in response.context["charts"] if c["name"] == "errors_by_status"
    )
    assert "$0.0" in chart["table"]
    assert '<th scope="col">HTTP status</th>' in status["table"]


def test_viewer_gets_no_attach_button_on_overview(
    client, owner, viewer, application, traffic
):
    url = reverse("insights:overview", args=["acme"])

    client.force_login(owner)
    owner_page = client.get(url, {"range": "24h"})
    client.force_login(viewer)
    viewer_page = client.get(url, {"range": "24h"})

    assert "Attach them to an application" in owner_page.text
    assert "Attach them to an application" not in viewer_page.text
    assert "Find them on the API Keys page" in viewer_page.text


def range_summary(response):
    """Return the text of the page's range summary, with whitespace collapsed."""
    summary = response.text.split('<p class="muted range-summary">')[1]
    return " ".join(summary.split("</p>")[0].split())


@pytest.mark.parametrize("page", ["overview", "application"])
def test_invalid_timezone_keeps_valid_range(client, owner, application, page):
    client.force_login(owner)
    args = ["acme"] if page == "overview" else ["acme", application.pk]

    response = client.get(
        reverse(f"insights:{page}", args=args), {"range": "24h", "tz": "Nope/Zone"}
    )

    assert response.status_code == 200
    assert response.context["range_key"] == "24h"
    assert response.context["tz_name"] == "UTC"
    assert "Unknown timezone &#x27;Nope/Zone&#x27;" in response.text


def test_invalid_range_keeps_valid_timezone(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": "1y", "tz": "Asia/Kolkata"},
    )

    assert response.context["range_key"] == "7d"
    assert response.context["tz_name"] == "Asia/Kolkata"
    assert "Unknown range &#x27;1y&#x27;" in response.text


def test_invalid_custom_dates_keep_valid_timezone(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"start": "2026-02-05", "end": "2026-02-01", "tz": "Asia/Kolkata"},
    )

    assert response.context["range_key"] == "7d"
    assert response.context["tz_name"] == "Asia/Kolkata"
    assert "The end date 2026-02-01 is before the start date" in response.text


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"tz": "x" * 5000},
            "tz",
            "The timezone has 5000 characters, more than the maximum of 64. "
            "Use an IANA name such as Europe/Berlin.",
        ),
        (
            {"tz": "Europe/Ber\x00lin"},
            "tz",
            "The timezone 'Europe/Ber\\x00lin' contains a null character. "
            "Use an IANA name such as Europe/Berlin.",
        ),
        (
            {"range": "1y"},
            "range",
            "Unknown range '1y'. Use 24h, 7d, 30d, 90d or custom.",
        ),
        (
            {"range": "y" * 5000},
            "range",
            "Unknown range of 5000 characters. Use 24h, 7d, 30d, 90d or custom.",
        ),
        (
            {"start": "2026-02-05", "end": "2026-02-01"},
            "__all__",
            "The end date 2026-02-01 is before the start date 2026-02-05. "
            "Enter an end date on or after the start date.",
        ),
        (
            {"start": "2000-01-01", "end": "2026-12-04"},
            "__all__",
            "A custom range can span at most 400 days, but this one spans 9835. "
            "Enter a later start date or an earlier end date.",
        ),
        (
            {"start": "yesterday", "end": "2026-02-01"},
            "start",
            "Start date: enter a date as YYYY-MM-DD, not 'yesterday'.",
        ),
    ],
)
def test_range_form_messages_name_field_and_value(
    client, owner, application, params, field, message
):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]), params
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}


@pytest.mark.parametrize("page", ["overview", "application"])
def test_export_file_name_uses_local_dates(client, owner, application, page):
    client.force_login(owner)
    args = ["acme"] if page == "overview" else ["acme", application.pk]

    response = client.get(
        reverse(f"insights:{page}-export", args=args),
        {
            "range": "custom",
            "start": "2026-12-01",
            "end": "2026-12-02",
            "tz": "Asia/Kolkata",
            "table": "series",
        },
    )

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-series-20261201-20261202.csv"')
    assert read_csv(response)[1][0].startswith("2026-12-01")


def test_preset_export_file_name_ends_on_local_today(client, owner, application):
    client.force_login(owner)
    zone = zoneinfo.ZoneInfo("Pacific/Kiritimati")
    before = timezone.now().astimezone(zone).date()

    response = client.get(
        reverse("insights:overview-export", args=["acme"]),
        {"range": "24h", "tz": "Pacific/Kiritimati", "table": "series"},
    )

    after = timezone.now().astimezone(zone).date()
    last_day = response["Content-Disposition"].removesuffix('.csv"')[-8:]
    assert last_day in {f"{before:%Y%m%d}", f"{after:%Y%m%d}"}


@pytest.mark.parametrize(
    ("page", "params", "line"),
    [
        (
            "overview",
            {"table": "bogus"},
            "table: Unknown table 'bogus'. Use series, applications or events.",
        ),
        (
            "overview",
            {"table": "keys"},
            "table: Unknown table 'keys'. Use series, applications or events.",
        ),
        (
            "application",
            {"table": "applications"},
            "table: Unknown table 'applications'. Use series, keys, models or events.",
        ),
        (
            "application",
            {"table": "series", "range": "bogus"},
            "range: Unknown range 'bogus'. Use 24h, 7d, 30d, 90d or custom.",
        ),
        (
            "overview",
            {"table": "series", "tz": "Nope/Zone"},
            "tz: Unknown timezone 'Nope/Zone'; use an IANA name such as Europe/Berlin.",
        ),
        (
            "overview",
            {"table": "series", "start": "2026-13-01", "end": "2026-12-01"},
            "start: Start date: enter a date as YYYY-MM-DD, not '2026-13-01'.",
        ),
        (
            "application",
            {"table": "series", "start": "2026-12-05", "end": "2026-12-01"},
            "start, end: The end date 2026-12-01 is before the start date 2026-12-05. "
            "Enter an end date on or after the start date.",
        ),
    ],
)
def test_export_rejects_each_invalid_option_with_400(
    client, owner, application, page, params, line
):
    client.force_login(owner)
    args = ["acme"] if page == "overview" else ["acme", application.pk]

    response = client.get(reverse(f"insights:{page}-export", args=args), params)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert line in response.text.splitlines()


def test_export_lists_every_invalid_option(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:overview-export", args=["acme"]),
        {"table": "bogus", "range": "1y", "tz": "Nope/Zone"},
    )

    lines = response.text.splitlines()
    assert response.status_code == 400
    assert lines[0] == "Invalid export options:"
    assert [line.split(":")[0] for line in lines[1:]] == ["table", "range", "tz"]


def test_preset_summary_ends_now(client, owner, application):
    client.force_login(owner)
    zone = zoneinfo.ZoneInfo("Asia/Kolkata")
    before = timezone.now().astimezone(zone)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"range": "24h", "tz": "Asia/Kolkata"},
    )

    after = timezone.now().astimezone(zone)
    period = response.context["report"].period
    summary = range_summary(response)
    assert summary.split(" to ")[0] == f"{period.start.astimezone(zone):%Y-%m-%d %H:%M}"
    assert summary.split(" to ")[1].split(" (")[0] in {
        f"now, {before:%Y-%m-%d %H:%M}",
        f"now, {after:%Y-%m-%d %H:%M}",
    }
    assert period.end.minute % 15 == 0


def test_custom_range_summary_shows_its_dates(client, owner, application):
    client.force_login(owner)

    response = client.get(
        reverse("insights:application", args=["acme", application.pk]),
        {"start": "2026-12-01", "end": "2026-12-02", "tz": "Asia/Kolkata"},
    )

    assert range_summary(response).startswith(
        "2026-12-01 00:00 to 2026-12-02 23:59 (Asia/Kolkata), hourly buckets"
    )
