"""Gateway 401 messages for unknown, revoked and expired keys."""

import openai
import pytest

from insights.models import ErrorType
from tests.factories import APIKeyFactory
from tests.gateway.conftest import ask, client_for, gateway_base_url, wait_for_events


def test_unknown_key_message_has_hint(gateway, openai_provider):
    client = openai.OpenAI(
        base_url=gateway_base_url(gateway, openai_provider),
        api_key="aiw-not-a-real-key",
        max_retries=0,
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        ask(client)

    body = raised.value.body
    assert raised.value.status_code == 401
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "invalid_api_key"
    assert body["message"].startswith("Invalid API key.")
    assert "API Keys page of the AI Workspace dashboard" in body["message"]
    assert "aiw-not-a-real-key" not in body["message"]


@pytest.mark.parametrize(
    ("trait", "code", "state"),
    [
        ("revoked", "revoked_api_key", "has been revoked."),
        ("expired", "expired_api_key", "has expired."),
    ],
)
def test_inactive_key_message_has_hint(gateway, openai_provider, trait, code, state):
    key = APIKeyFactory(
        project=openai_provider.project, provider=openai_provider, **{trait: True}
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        ask(client_for(gateway, key))

    body = raised.value.body
    assert raised.value.status_code == 401
    assert body["type"] == "invalid_request_error"
    assert body["code"] == code
    assert f"API key {key.prefix}… {state}" in body["message"]
    assert "Generate a new key on the API Keys page" in body["message"]
    assert key.secret not in raised.value.response.text
    [event] = wait_for_events(key=key)
    assert event.error_type == ErrorType.AUTHENTICATION
