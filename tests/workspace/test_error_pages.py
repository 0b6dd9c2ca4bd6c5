import pytest
from django.template.loader import render_to_string
from django.urls import reverse


def test_forbidden_page_explains_and_links_back(client, project, viewer):
    client.force_login(viewer)

    response = client.get(reverse("genai_apps:application-create", args=[project.slug]))

    assert response.status_code == 403
    assert "Viewers can read this project but not change it." in response.text
    assert reverse("genai_apps:application-list", args=[project.slug]) in response.text
    assert 'class="sidenav"' in response.text


def test_forbidden_page_logs_one_line_without_traceback(
    client, project, viewer, caplog
):
    client.force_login(viewer)

    client.get(reverse("genai_apps:application-create", args=[project.slug]))

    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage().startswith("Forbidden (Permission denied):")
    assert record.exc_info is None


def test_not_found_page_links_back_to_project(client, project, owner):
    client.force_login(owner)

    response = client.get(
        reverse("genai_apps:application-detail", args=[project.slug, 999999])
    )

    assert response.status_code == 404
    assert "Page not found" in response.text
    assert reverse("genai_apps:application-list", args=[project.slug]) in response.text


def test_not_found_page_for_outsider_links_home(client, project, outsider):
    client.force_login(outsider)

    response = client.get(reverse("genai_apps:application-list", args=[project.slug]))

    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Acme" not in response.text


def test_server_error_page_renders_without_request():
    html = render_to_string("500.html")

    assert "Something went wrong" in html
    assert 'href="/"' in html


HUGE_ID = "99999999999999999999999"


@pytest.mark.parametrize(
    "path",
    [
        "applications/1/keys/{huge}/remove/",
        "applications/{huge}/",
        "applications/{huge}/attach/",
        "insights/applications/{huge}/",
        "insights/applications/{huge}/export.csv",
        "providers/{huge}/",
        "providers/{huge}/delete/",
        "proxies/{huge}/",
        "keys/{huge}/revoke/",
        "keys/9223372036854775808/revoke/",
    ],
)
def test_id_beyond_64_bits_is_not_found(client, project, owner, path):
    client.force_login(owner)

    get_response = client.get(f"/p/{project.slug}/" + path.format(huge=HUGE_ID))
    post_response = client.post(f"/p/{project.slug}/" + path.format(huge=HUGE_ID))

    assert get_response.status_code == 404
    assert post_response.status_code == 404


def test_favicon_is_served(client, project, owner):
    client.force_login(owner)

    page = client.get(f"/p/{project.slug}/applications/")
    icon = client.get("/favicon.ico")

    assert 'rel="icon" href="/static/favicon.svg"' in page.text
    assert icon.status_code == 301
    assert icon.url == "/static/favicon.svg"


@pytest.mark.parametrize("method", ["put", "delete", "patch", "options"])
def test_method_not_allowed_page_names_methods(client, project, owner, method):
    client.force_login(owner)

    response = getattr(client, method)(
        reverse("genai_apps:application-list", args=[project.slug])
    )

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert "Method not allowed" in response.text
    assert f"does not accept {method.upper()} requests" in response.text
    assert "It accepts GET." in response.text
    assert 'class="sidenav"' in response.text


def test_method_not_allowed_page_lists_get_and_post(client, project, owner):
    client.force_login(owner)

    response = client.put(reverse("workspace:key-create", args=[project.slug]))

    assert response.status_code == 405
    assert "It accepts GET and POST." in response.text


def test_method_not_allowed_page_hides_project_from_outsider(client, project, outsider):
    client.force_login(outsider)

    response = client.delete(reverse("workspace:key-list", args=[project.slug]))

    assert response.status_code == 405
    assert "Acme" not in response.text
    assert 'class="sidenav"' not in response.text


def test_ingestion_api_405_keeps_json_body(client):
    response = client.get("/api/v1/usage/events")

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
