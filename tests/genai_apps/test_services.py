import pytest

from genai_apps.models import KeyMapping, KeyMappingEvent
from genai_apps.services import MappingError, attach_keys, detach_key
from tests.factories import APIKeyFactory, GenAIApplicationFactory
from workspace.models import APIKey


def test_attach_records_mapping_and_audit(project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)

    attach_keys(application, [key], owner)

    assert KeyMapping.objects.get(key=key).application == application
    event = KeyMappingEvent.objects.get()
    assert event.action == "attach"
    assert event.actor == owner
    assert event.key_prefix == key.prefix


def test_attach_rejects_key_owned_by_other_application(project, owner):
    first = GenAIApplicationFactory(project=project, name="Support bot")
    second = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(first, [key], owner)

    with pytest.raises(MappingError, match="Support bot"):
        attach_keys(second, [key], owner)

    assert KeyMapping.objects.get(key=key).application == first


def test_attach_rejects_key_of_other_project(project, other_project, owner):
    application = GenAIApplicationFactory(project=project)
    foreign_key = APIKeyFactory(project=other_project)

    with pytest.raises(MappingError, match="not in this project"):
        attach_keys(application, [foreign_key], owner)

    assert not KeyMapping.objects.exists()


def test_detach_keeps_key(project, owner):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)
    attach_keys(application, [key], owner)

    assert detach_key(application, key, owner)

    assert APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).exists()
    assert not KeyMapping.objects.exists()
    assert list(KeyMappingEvent.objects.values_list("action", flat=True)) == [
        "detach",
        "attach",
    ]
