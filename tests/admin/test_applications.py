import pytest
from django.urls import reverse

from genai_apps.models import GenAIApplication, KeyMapping, KeyMappingEvent
from tests.admin.conftest import form_data
from tests.factories import APIKeyFactory, GenAIApplicationFactory, KeyMappingFactory


@pytest.fixture
def application(project):
    return GenAIApplicationFactory(project=project, name="Support bot")


def change_url(application):
    return reverse("admin:genai_apps_genaiapplication_change", args=[application.pk])


def add_key_row(data, key):
    """Add a row to the "Attach keys" inline, as the admin's JavaScript does."""
    total = int(data["mappings-2-TOTAL_FORMS"])
    data["mappings-2-TOTAL_FORMS"] = str(total + 1)
    data[f"mappings-2-{total}-key"] = str(key.pk)
    return data


def test_change_page_lists_mapped_keys(super_client, application):
    mapping = KeyMappingFactory(application=application, key__name="support-prod")

    response = super_client.get(change_url(application))

    assert "support-prod" in response.text
    assert mapping.key.secret_hash not in response.text


def test_inline_add_attaches_through_audit_trail(
    super_client, superuser, project, application
):
    key = APIKeyFactory(project=project)
    data = add_key_row(form_data(super_client.get(change_url(application))), key)

    response = super_client.post(change_url(application), data)

    assert response.status_code == 302
    assert KeyMapping.objects.get(key=key).application == application
    event = KeyMappingEvent.objects.get()
    assert event.action == "attach"
    assert event.source == "admin"
    assert event.actor == superuser


def test_inline_delete_detaches_through_audit_trail(super_client, application):
    mapping = KeyMappingFactory(application=application)
    data = form_data(super_client.get(change_url(application)))
    data["mappings-0-DELETE"] = "on"

    response = super_client.post(change_url(application), data)

    assert response.status_code == 302
    assert not KeyMapping.objects.exists()
    event = KeyMappingEvent.objects.get()
    assert event.action == "detach"
    assert event.source == "admin"
    assert event.key == mapping.key


def test_inline_rejects_key_of_other_application(super_client, project, application):
    other = GenAIApplicationFactory(project=project, name="Sales bot")
    taken = KeyMappingFactory(application=other, key__name="sales-key").key
    data = add_key_row(form_data(super_client.get(change_url(application))), taken)

    response = super_client.post(change_url(application), data)

    assert response.status_code == 200
    assert "already belongs to the application “Sales bot”" in response.text
    assert KeyMapping.objects.get(key=taken).application == other
    assert not KeyMappingEvent.objects.exists()


def test_inline_rejects_key_of_other_project(super_client, other_project, application):
    foreign = APIKeyFactory(project=other_project)
    data = add_key_row(form_data(super_client.get(change_url(application))), foreign)

    response = super_client.post(change_url(application), data)

    assert response.status_code == 200
    assert "is in the project “Globex”, not in “Acme”" in response.text
    assert not KeyMapping.objects.exists()


def test_inline_rejects_forged_key_for_scoped_staff(
    staff_client, other_project, application
):
    foreign = APIKeyFactory(project=other_project)
    data = add_key_row(form_data(staff_client.get(change_url(application))), foreign)

    response = staff_client.post(change_url(application), data)

    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not KeyMapping.objects.exists()


def test_add_application_with_keys(super_client, superuser, project):
    key = APIKeyFactory(project=project)
    url = reverse("admin:genai_apps_genaiapplication_add")
    data = form_data(super_client.get(url))
    data.update(project=str(project.pk), name="Coding assistant")
    add_key_row(data, key)

    response = super_client.post(url, data)

    assert response.status_code == 302
    application = GenAIApplication.objects.get(name="Coding assistant")
    assert application.created_by == superuser
    assert KeyMapping.objects.get(key=key).application == application
    assert KeyMappingEvent.objects.get().source == "admin"


def test_add_rejects_duplicate_name_case_insensitively(
    super_client, project, application
):
    url = reverse("admin:genai_apps_genaiapplication_add")
    data = form_data(super_client.get(url))
    data.update(project=str(project.pk), name="SUPPORT BOT")

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert "An application named “Support bot” already exists" in response.text


def test_delete_marks_deleted_and_detaches(super_client, application):
    mapping = KeyMappingFactory(application=application)
    url = reverse("admin:genai_apps_genaiapplication_delete", args=[application.pk])

    response = super_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    application.refresh_from_db()
    assert application.is_deleted
    assert not KeyMapping.objects.exists()
    assert KeyMappingEvent.objects.get().key == mapping.key


def test_deleted_application_is_read_only(super_client, application):
    application.deleted_at = application.created_at
    application.save()

    response = super_client.post(change_url(application), {"name": "Revived"})

    assert response.status_code == 403


def test_application_list_counts_keys(super_client, application):
    KeyMappingFactory.create_batch(3, application=application)

    response = super_client.get(reverse("admin:genai_apps_genaiapplication_changelist"))

    [row] = response.context["cl"].result_list
    assert row.key_count == 3


def test_admin_rejects_application_name_in_unicode_other_case(super_client, project):
    GenAIApplicationFactory(project=project, name="ÉCOLE")
    url = reverse("admin:genai_apps_genaiapplication_add")
    data = form_data(super_client.get(url))
    data.update(project=str(project.pk), name="école")

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert "An application named “ÉCOLE” already exists" in response.text
    assert GenAIApplication.objects.filter(project=project).count() == 1


def test_admin_rejects_invisible_application_name(super_client, project):
    url = reverse("admin:genai_apps_genaiapplication_add")
    data = form_data(super_client.get(url))
    data.update(project=str(project.pk), name="\u200b")

    response = super_client.post(url, data)

    assert response.status_code == 200
    assert "The name contains only spaces or invisible characters" in response.text
    assert not GenAIApplication.objects.exists()
