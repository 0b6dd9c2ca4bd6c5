"""App LLM Proxy guardrails through the gateway: allowed models and max tokens."""

import json

import openai
import pytest

from insights.models import ErrorType
from tests.factories import APIKeyFactory, AppProxyFactory
from tests.gateway.conftest import ask, client_for, wait_for_events


def proxy_key(project, provider, **proxy_fields):
    proxy = AppProxyFactory(project=project, provider=provider, **proxy_fields)
    return APIKeyFactory(project=project, provider=None, proxy=proxy)


def test_models_list_shows_only_allowed(gateway, project, openai_provider):
    key = proxy_key(project, openai_provider, allowed_models=["gpt-4o-mini", "o4-mini"])

    models = [model.id for model in client_for(gateway, key).models.list()]

    assert models == ["gpt-4o-mini", "o4-mini"]
    [event] = wait_for_events(key=key)
    assert event.status_code == 200


def test_models_list_without_allow_list(gateway, project, openai_provider):
    key = proxy_key(project, openai_provider)

    models = [model.id for model in client_for(gateway, key).models.list()]

    assert models == ["gpt-4o-mini", "gpt-4o", "o4-mini", "text-embedding-3-small"]
    wait_for_events(key=key)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [-1, 0, "5000", True, 1.5, [10]])
def test_invalid_max_tokens_is_400(gateway, project, openai_provider, field, value):
    key = proxy_key(project, openai_provider, max_tokens=100)

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client_for(gateway, key), extra_body={field: value})

    body = raised.value.body
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "invalid_max_tokens"
    assert body["param"] == field
    assert f"{field}={json.dumps(value)}" in body["message"]
    assert "at least 1" in body["message"]
    [event] = wait_for_events(key=key)
    assert event.status_code == 400
    assert event.error_type == ErrorType.BAD_REQUEST


def test_both_token_fields_are_checked(gateway, project, openai_provider):
    key = proxy_key(project, openai_provider, max_tokens=100)

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client_for(gateway, key), max_tokens=10, max_completion_tokens=101)

    assert raised.value.body["code"] == "max_tokens_exceeded"
    assert raised.value.body["param"] == "max_completion_tokens"
    [event] = wait_for_events(key=key)
    assert event.error_type == ErrorType.GUARDRAIL


def test_max_tokens_at_limit_is_forwarded(
    gateway, project, openai_provider, last_upstream_request
):
    key = proxy_key(project, openai_provider, max_tokens=100)

    ask(client_for(gateway, key), max_tokens=100)

    assert json.loads(last_upstream_request()["body"])["max_tokens"] == 100
    [event] = wait_for_events(key=key)
    assert event.status_code == 200
