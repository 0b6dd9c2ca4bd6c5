"""Key changes apply on the next request in every gateway worker process."""

import datetime

import openai
import pytest
from django.utils import timezone

from genai_apps.services import attach_keys, detach_key
from tests.factories import GenAIApplicationFactory, KeyMappingFactory
from tests.gateway.conftest import gateway_base_url, start_gateway, wait_for_events


@pytest.fixture(scope="module")
def second_gateway(django_db_setup, django_db_blocker, shared_cache, tmp_path_factory):
    with django_db_blocker.unblock():
        server = start_gateway(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture
def workers(gateway, second_gateway):
    return [gateway, second_gateway]


@pytest.fixture
def key(openai_provider):
    return KeyMappingFactory(
        key__project=openai_provider.project, key__provider=openai_provider
    ).key


def call(worker, key):
    client = openai.OpenAI(
        base_url=gateway_base_url(worker, key.provider),
        api_key=key.secret,
        max_retries=0,
    )
    with client:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )


def warm_up(workers, key):
    """Call every worker once so each has the key in its cache."""
    for worker in workers:
        call(worker, key)
    wait_for_events(len(workers), key=key)


def test_revocation_applies_in_every_worker(workers, key):
    warm_up(workers, key)

    key.revoke()

    for worker in workers:
        with pytest.raises(openai.AuthenticationError):
            call(worker, key)
    wait_for_events(4, key=key)


def test_expiry_change_applies_in_every_worker(workers, key):
    warm_up(workers, key)

    key.expires_at = timezone.now() - datetime.timedelta(minutes=1)
    key.save()

    for worker in workers:
        with pytest.raises(openai.AuthenticationError):
            call(worker, key)
    wait_for_events(4, key=key)


def test_extended_expiry_applies_in_every_worker(workers, key):
    key.expires_at = timezone.now() - datetime.timedelta(minutes=1)
    key.save()
    for worker in workers:
        with pytest.raises(openai.AuthenticationError):
            call(worker, key)

    key.expires_at = timezone.now() + datetime.timedelta(days=1)
    key.save()

    for worker in workers:
        assert call(worker, key).usage.completion_tokens > 0
    events = wait_for_events(4, key=key)
    assert [event.status_code for event in events] == [401, 401, 200, 200]


def test_moved_key_is_attributed_to_new_application_in_every_worker(
    workers, key, owner
):
    warm_up(workers, key)
    new_application = GenAIApplicationFactory(project=key.project)

    detach_key(key.mapping.application, key, owner)
    attach_keys(new_application, [key], owner)
    for worker in workers:
        call(worker, key)

    events = wait_for_events(4, key=key)
    assert [event.application_id for event in events[2:]] == [new_application.pk] * 2


def test_unreachable_cache_fails_closed(gateway_factory, key):
    server = gateway_factory(CACHE_URL="redis://127.0.0.1:9/0")

    with pytest.raises(openai.InternalServerError) as raised:
        call(server, key)

    assert raised.value.status_code == 503
    assert raised.value.body["code"] == "key_lookup_unavailable"
    assert key.secret not in server.log_text()
