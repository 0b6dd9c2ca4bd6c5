import datetime
import json
import uuid
from io import StringIO

import httpx
import pytest
from django.core.management import call_command

from insights.models import IngestionToken, UsageEvent
from tests.factories import APIKeyFactory, IngestionTokenFactory, KeyMappingFactory

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/usage/events"


@pytest.fixture
def token(project):
    return IngestionTokenFactory(project=project)


@pytest.fixture
def key(project):
    return KeyMappingFactory(application__project=project).key


def event(key, **fields):
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-03-01T12:00:00Z",
        "key_id": key.pk,
        "model": "gpt-4o-mini",
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "latency_ms": 900,
        **fields,
    }


def post(live_server, token, body, content_type="application/json", raw=None):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = raw if raw is not None else json.dumps(body)
    return httpx.post(
        live_server.url + PATH, content=content, headers=headers, timeout=30
    )


def test_batch_is_accepted_and_attributed(live_server, token, key):
    response = post(live_server, token.token, [event(key), event(key)])

    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert (
        UsageEvent.objects.filter(application_id=key.mapping.application_id).count()
        == 2
    )


def test_key_can_be_named_by_secret_hash(live_server, token, key):
    body = event(key, key_id=None, key_sha256=key.secret_hash)

    response = post(live_server, token.token, [body])

    assert response.json()["results"][0]["status"] == "accepted"
    assert UsageEvent.objects.get().key_id == key.pk


def test_resent_event_is_a_duplicate(live_server, token, key):
    body = [event(key)]
    post(live_server, token.token, body)

    response = post(live_server, token.token, body)

    assert response.json()["results"][0]["status"] == "duplicate"
    assert UsageEvent.objects.count() == 1


def test_good_rows_are_kept_when_others_are_rejected(
    live_server, token, key, other_project
):
    foreign = APIKeyFactory(project=other_project)
    body = [
        event(key),
        event(foreign),
        event(key, prompt_tokens=-1),
        event(key, occurred_at="yesterday"),
        event(key, cached_tokens=500),
        "not an object",
    ]

    response = post(live_server, token.token, body)

    results = response.json()["results"]
    assert response.status_code == 200
    assert [r["status"] for r in results] == ["accepted"] + ["rejected"] * 5
    assert "not an API key of this project" in results[1]["error"]
    assert "prompt_tokens must be between" in results[2]["error"]
    assert "not an ISO 8601 time" in results[3]["error"]
    assert "exceed prompt_tokens" in results[4]["error"]
    assert UsageEvent.objects.count() == 1


def test_ndjson_batch_with_a_broken_line(live_server, token, key):
    raw = json.dumps(event(key)) + "\n{broken\n" + json.dumps(event(key)) + "\n"

    response = post(live_server, token.token, None, "application/x-ndjson", raw=raw)

    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted", "rejected", "accepted"]


def test_event_without_id_is_rejected(live_server, token, key):
    body = event(key)
    del body["event_id"]

    response = post(live_server, token.token, [body])

    assert "event_id is required" in response.json()["results"][0]["error"]


def test_future_event_is_rejected(live_server, token, key):
    later = (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    ).isoformat()

    response = post(live_server, token.token, [event(key, occurred_at=later)])

    assert "in the future" in response.json()["results"][0]["error"]


def test_missing_token_is_unauthorized(live_server, key):
    response = post(live_server, None, [event(key)])

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_revoked_token_is_unauthorized(live_server, token, key):
    call_command(
        "create_ingestion_token",
        "--project",
        "acme",
        "--revoke",
        token.prefix,
        stdout=StringIO(),
    )

    response = post(live_server, token.token, [event(key)])

    assert response.status_code == 401


def test_invalid_json_is_a_clear_400(live_server, token):
    response = post(live_server, token.token, None, raw="[{")

    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]["message"]


def test_unsupported_content_type(live_server, token, key):
    response = post(live_server, token.token, None, "text/plain", raw="hello")

    assert response.status_code == 415


def test_too_many_events_is_rejected_whole(live_server, token, key):
    from insights.api import MAX_EVENTS

    body = [event(key) for _ in range(MAX_EVENTS + 1)]

    response = post(live_server, token.token, body)

    assert response.status_code == 413
    assert UsageEvent.objects.count() == 0


def test_oversized_body_is_rejected(live_server, token):
    from insights.api import MAX_BODY_BYTES

    response = post(
        live_server, token.token, None, raw="[" + " " * MAX_BODY_BYTES + "]"
    )

    assert response.status_code == 413


def test_get_is_not_allowed(live_server):
    response = httpx.get(live_server.url + PATH)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_command_creates_token_stored_as_hash(project):
    out = StringIO()

    call_command(
        "create_ingestion_token",
        "--project",
        "acme",
        "--name",
        "edge gateway",
        stdout=out,
    )

    secret = out.getvalue().splitlines()[1]
    stored = IngestionToken.objects.get()
    assert secret.startswith("aiwi-")
    assert stored.token_hash != secret
    assert secret not in stored.prefix + stored.token_hash


def test_listing_one_token_is_singular(project):
    IngestionTokenFactory(project=project)
    out = StringIO()

    call_command(
        "create_ingestion_token", "--project", project.slug, "--list", stdout=out
    )

    assert out.getvalue().splitlines()[-1] == "1 token."
