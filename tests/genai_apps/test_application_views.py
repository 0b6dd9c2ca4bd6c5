import html
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from genai_apps.models import GenAIApplication, KeyMapping, KeyMappingEvent
from genai_apps.services import attach_keys
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
)
from tests.html import sort_links
from workspace.models import APIKey


def list_url(project):
    return reverse("genai_apps:application-list", args=[project.slug])


def detail_url(application):
    return reverse(
        "genai_apps:application-detail",
        args=[application.project.slug, application.pk],
    )


def test_application_list_empty_state(client, project, owner):
    client.force_login(owner)

    response = client.get(list_url(project))

    assert "No GenAI applications yet" in response.text
    assert "+ Create Application" in response.text


def test_application_list_shows_key_count(client, project, owner):
    application = GenAIApplicationFactory(project=project, name="Support Bot")
    KeyMappingFactory.create_batch(3, application=application)
    client.force_login(owner)

    response = client.get(list_url(project))

    row = response.text.split("Support Bot", 1)[1].split("</tr>", 1)[0]
    assert '<td class="numeric">3</td>' in row


def test_application_list_hides_deleted_applications(client, project, owner):
    GenAIApplicationFactory(project=project, name="Gone App", deleted_at=timezone.now())
    GenAIApplicationFactory(project=project, name="Live App")
    client.force_login(owner)

    response = client.get(list_url(project))

    assert "Live App" in response.text
    assert "Gone App" not in response.text


def test_application_list_search_fragment_for_htmx(client, project, owner):
    GenAIApplicationFactory(project=project, name="Support Bot")
    GenAIApplicationFactory(project=project, name="Docs Search")
    client.force_login(owner)

    response = client.get(
        list_url(project), {"q": "support"}, headers={"HX-Request": "true"}
    )

    assert response.text.lstrip().startswith('<div id="application-results">')
    assert "Support Bot" in response.text
    assert "Docs Search" not in response.text


def test_application_list_search_without_htmx(client, project, owner):
    GenAIApplicationFactory(project=project, name="Support Bot")
    GenAIApplicationFactory(project=project, name="Docs Search")
    client.force_login(owner)

    response = client.get(list_url(project), {"q": "support"})

    assert "<html" in response.text
    assert "Support Bot" in response.text
    assert "Docs Search" not in response.text


def test_application_list_paginates(client, project, owner):
    for index in range(30):
        GenAIApplicationFactory(project=project, name=f"App {index:02d}")
    client.force_login(owner)

    response = client.get(list_url(project), {"page": 2})

    assert "App 29" in response.text
    assert "App 00" not in response.text


def test_application_list_query_count(
    client, project, owner, django_assert_max_num_queries
):
    for _ in range(20):
        KeyMappingFactory.create_batch(
            2, application=GenAIApplicationFactory(project=project)
        )
    client.force_login(owner)

    with django_assert_max_num_queries(10):
        response = client.get(list_url(project))

    assert response.text.count('<td class="numeric">2</td>') == 20


def test_application_create_saves_in_current_project(client, project, owner):
    client.force_login(owner)

    response = client.post(
        reverse("genai_apps:application-create", args=[project.slug]),
        {"name": "  Support Bot ", "description": "Answers tickets."},
    )

    application = GenAIApplication.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(application)
    assert application.project == project
    assert application.name == "Support Bot"
    assert application.created_by == owner


def test_application_create_shows_duplicate_name_error(client, project, owner):
    GenAIApplicationFactory(project=project, name="Support Bot")
    client.force_login(owner)

    response = client.post(
        reverse("genai_apps:application-create", args=[project.slug]),
        {"name": "SUPPORT BOT"},
    )

    assert response.status_code == 200
    assert "already exists in this project" in response.text
    assert GenAIApplication.objects.count() == 1


def test_application_detail_lists_mapped_keys(client, project, owner, teammate):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project, name="support-prod", created_by=teammate)
    attach_keys(application, [key], owner)
    client.force_login(owner)

    response = client.get(detail_url(application))

    assert "support-prod" in response.text
    assert "theo" in response.text
    assert "Attach API Keys" in response.text
    assert "Remove" in response.text
    assert reverse("insights:application", args=[project.slug, application.pk]) in (
        response.text
    )


def test_application_detail_shows_history(client, project, owner):
    application = GenAIApplicationFactory(project=project, name="Support Bot")
    key = APIKeyFactory(project=project, name="support-prod")
    attach_keys(application, [key], owner)
    client.force_login(owner)
    client.post(
        reverse(
            "genai_apps:application-remove-key",
            args=[project.slug, application.pk, key.pk],
        )
    )

    response = client.get(detail_url(application))

    history = response.text.split('id="mapping-history"', 1)[1]
    assert "Attached" in history
    assert "Detached" in history
    assert history.count("olivia") == 2


def test_application_detail_query_count(
    client, project, owner, django_assert_max_num_queries
):
    application = GenAIApplicationFactory(project=project)
    attach_keys(application, APIKeyFactory.create_batch(10, project=project), owner)
    client.force_login(owner)

    with django_assert_max_num_queries(12):
        response = client.get(detail_url(application))

    assert response.text.count('class="badge active"') == 10


def test_application_edit_renames(client, project, owner):
    application = GenAIApplicationFactory(project=project, name="Support Bot")
    client.force_login(owner)

    client.post(
        reverse("genai_apps:application-edit", args=[project.slug, application.pk]),
        {"name": "Helpdesk Bot", "description": "New text"},
    )

    application.refresh_from_db()
    assert application.name == "Helpdesk Bot"
    assert application.description == "New text"


def test_application_delete_asks_for_confirmation(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.get(
        reverse("genai_apps:application-delete", args=[project.slug, application.pk]),
        headers={"HX-Request": "true"},
    )

    assert "Delete the application" in response.text
    assert "<html" not in response.text
    application.refresh_from_db()
    assert not application.is_deleted


def test_application_delete_keeps_keys(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(application, [key], owner)
    client.force_login(owner)

    response = client.post(
        reverse("genai_apps:application-delete", args=[project.slug, application.pk])
    )

    assert response.status_code == 302
    application.refresh_from_db()
    assert application.is_deleted
    assert APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).exists()
    assert not KeyMapping.objects.exists()
    assert KeyMappingEvent.objects.filter(action="detach", key=key).exists()
    assert client.get(detail_url(application)).status_code == 404


def test_application_list_sorts_by_key_count(client, project, owner):
    KeyMappingFactory.create_batch(
        3, application=GenAIApplicationFactory(project=project, name="Busy App")
    )
    GenAIApplicationFactory(project=project, name="Quiet App")
    client.force_login(owner)

    response = client.get(list_url(project), {"sort": "-key_count"})

    assert response.text.index("Busy App") < response.text.index("Quiet App")


def test_application_history_paginates(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    keys = APIKeyFactory.create_batch(25, project=project)
    attach_keys(application, keys, owner)
    client.force_login(owner)

    first = client.get(detail_url(application))
    second = client.get(detail_url(application), {"history-page": 2})

    assert first.text.split('id="mapping-history"', 1)[1].count("Attached") == 20
    assert second.text.split('id="mapping-history"', 1)[1].count("Attached") == 5


def test_application_delete_confirmation_uses_singular_for_one_key(
    client, project, owner
):
    mapping = KeyMappingFactory(application=GenAIApplicationFactory(project=project))
    client.force_login(owner)

    response = client.get(
        reverse(
            "genai_apps:application-delete",
            args=[project.slug, mapping.application.pk],
        )
    )

    assert "Its 1 API key is detached and kept, with its status unchanged." in (
        response.text
    )


def test_application_list_key_count_sorts_largest_first(client, project, owner):
    GenAIApplicationFactory(project=project)
    client.force_login(owner)

    response = client.get(list_url(project))

    links = sort_links(response.content)
    assert links["Keys"] == "-key_count"
    assert links["Created"] == "-created_at"


def test_application_list_offers_attach_for_new_key(client, project, owner):
    application = GenAIApplicationFactory(project=project, name="Docs Search")
    key = APIKeyFactory(project=project, name="docs-prod")
    client.force_login(owner)

    response = client.get(list_url(project), {"attach_key": key.pk})

    picker = reverse(
        "genai_apps:application-attach-keys", args=[project.slug, application.pk]
    )
    query = urlencode({"q": key.prefix, "keys": key.pk})
    assert response.context["attach_key"] == key
    assert "Choose the application for the key “docs-prod”" in response.text
    assert f'href="{picker}?{html.escape(query)}">Attach here</a>' in response.text
    assert f'name="attach_key" value="{key.pk}"' in response.text


def test_application_list_ignores_unattachable_key(
    client, project, other_project, owner, viewer
):
    GenAIApplicationFactory(project=project)
    attached = KeyMappingFactory(application__project=project).key
    revoked = APIKeyFactory(project=project, revoked=True)
    foreign = APIKeyFactory(project=other_project)
    free = APIKeyFactory(project=project)

    client.force_login(owner)
    for key_id in (attached.pk, revoked.pk, foreign.pk, "x", 2**70):
        response = client.get(list_url(project), {"attach_key": key_id})

        assert response.status_code == 200, key_id
        assert response.context["attach_key"] is None, key_id
        assert "Attach here" not in response.text, key_id

    client.force_login(viewer)
    response = client.get(list_url(project), {"attach_key": free.pk})

    assert response.context["attach_key"] is None
    assert "Attach here" not in response.text


def test_application_list_page_below_one_shows_first(client, project, owner):
    for index in range(30):
        GenAIApplicationFactory(project=project, name=f"App {index:02d}")
    client.force_login(owner)

    for page in ("0", "-1"):
        response = client.get(list_url(project), {"page": page})

        assert "App 00" in response.text
        assert "App 29" not in response.text
        assert "showing page 1 of 2" in response.text


def test_application_history_page_below_one_shows_first(client, project, owner):
    application = GenAIApplicationFactory(project=project)
    attach_keys(application, APIKeyFactory.create_batch(25, project=project), owner)
    client.force_login(owner)

    response = client.get(detail_url(application), {"history-page": "0"})

    assert response.context["history_table"].page.number == 1
