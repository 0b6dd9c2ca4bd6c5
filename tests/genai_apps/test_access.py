"""Project isolation: outsiders get 404 everywhere, viewers read only."""

import pytest
from django.urls import reverse

from genai_apps.models import GenAIApplication, KeyMapping
from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    ProviderFactory,
)
from workspace.models import APIKey


@pytest.fixture
def objects(project):
    provider = ProviderFactory(project=project)
    proxy = AppProxyFactory(project=project, provider=provider)
    application = GenAIApplicationFactory(project=project)
    mapping = KeyMappingFactory(application=application, key__provider=provider)
    free_key = APIKeyFactory(project=project, provider=provider)
    return {
        "provider": provider,
        "proxy": proxy,
        "application": application,
        "mapped_key": mapping.key,
        "free_key": free_key,
    }


def project_urls(project, objects):
    slug = project.slug
    application = objects["application"].pk
    return [
        reverse("genai_apps:application-list", args=[slug]),
        reverse("genai_apps:application-create", args=[slug]),
        reverse("genai_apps:application-detail", args=[slug, application]),
        reverse("genai_apps:application-edit", args=[slug, application]),
        reverse("genai_apps:application-delete", args=[slug, application]),
        reverse("genai_apps:application-attach-keys", args=[slug, application]),
        reverse(
            "genai_apps:application-remove-key",
            args=[slug, application, objects["mapped_key"].pk],
        ),
        reverse("workspace:provider-list", args=[slug]),
        reverse("workspace:provider-create", args=[slug]),
        reverse("workspace:provider-edit", args=[slug, objects["provider"].pk]),
        reverse("workspace:proxy-list", args=[slug]),
        reverse("workspace:proxy-create", args=[slug]),
        reverse("workspace:proxy-edit", args=[slug, objects["proxy"].pk]),
        reverse("workspace:key-list", args=[slug]),
        reverse("workspace:key-create", args=[slug]),
        reverse("workspace:key-revoke", args=[slug, objects["free_key"].pk]),
    ]


# Pages a viewer may open; the lists and details answer only GET.
VIEWER_READABLE = {0, 2, 7, 9, 10, 12, 13}
GET_ONLY = {0, 2, 7, 10, 13}


def change_urls(project, objects):
    urls = project_urls(project, objects)
    return [url for index, url in enumerate(urls) if index not in GET_ONLY]


def test_outsider_gets_404_on_every_page(client, project, objects, outsider):
    client.force_login(outsider)

    for url in project_urls(project, objects):
        assert client.get(url).status_code == 404, url


def test_outsider_forged_posts_get_404_and_change_nothing(
    client, project, objects, outsider
):
    client.force_login(outsider)
    data = {
        "name": "Hijacked",
        "keys": [objects["free_key"].pk],
        "target": f"provider:{objects['provider'].pk}",
    }

    for url in change_urls(project, objects):
        assert client.post(url, data).status_code == 404, url

    assert not GenAIApplication.objects.filter(name="Hijacked").exists()
    objects["application"].refresh_from_db()
    assert not objects["application"].is_deleted
    assert KeyMapping.objects.filter(key=objects["mapped_key"]).exists()
    assert not KeyMapping.objects.filter(key=objects["free_key"]).exists()
    assert APIKey.objects.filter(revoked_at__isnull=False).count() == 0


def test_anonymous_user_is_sent_to_sign_in(client, project, objects):
    for url in project_urls(project, objects):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_viewer_reads_list_and_detail_pages(client, project, objects, viewer):
    client.force_login(viewer)
    urls = project_urls(project, objects)

    for index in sorted(VIEWER_READABLE):
        assert client.get(urls[index]).status_code == 200, urls[index]


def test_viewer_gets_403_on_every_change(client, project, objects, viewer):
    client.force_login(viewer)
    data = {"name": "Viewer app", "keys": [objects["free_key"].pk]}

    for url in change_urls(project, objects):
        assert client.post(url, data).status_code == 403, url

    assert not GenAIApplication.objects.filter(name="Viewer app").exists()
    assert not KeyMapping.objects.filter(key=objects["free_key"]).exists()
    assert KeyMapping.objects.filter(key=objects["mapped_key"]).exists()


def test_viewer_sees_no_change_buttons(client, project, objects, viewer):
    client.force_login(viewer)
    detail = reverse(
        "genai_apps:application-detail", args=[project.slug, objects["application"].pk]
    )

    detail_page = client.get(detail).text
    list_page = client.get(
        reverse("genai_apps:application-list", args=[project.slug])
    ).text
    keys_page = client.get(reverse("workspace:key-list", args=[project.slug])).text

    assert "Attach API Keys" not in detail_page
    assert ">Remove<" not in detail_page
    assert ">Delete<" not in detail_page
    assert "+ Create Application" not in list_page
    assert ">Revoke<" not in keys_page
    assert "+ Generate Key" not in keys_page


def test_list_pages_reject_post(client, project, objects, owner):
    client.force_login(owner)
    urls = project_urls(project, objects)

    for index in sorted(GET_ONLY):
        assert client.post(urls[index]).status_code == 405, urls[index]
