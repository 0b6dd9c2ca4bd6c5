"""The gateway called with the official OpenAI SDK, the simulator upstream."""

import asyncio
import datetime
import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from insights.models import ErrorType, UsageEvent
from tests.factories import (
    APIKeyFactory,
    AppProxyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
    ProviderFactory,
    ProviderModelFactory,
)
from tests.gateway.conftest import ask, client_for, gateway_base_url, wait_for_events
from workspace.models import Vendor


@pytest.fixture
def mapped_key(openai_provider):
    mapping = KeyMappingFactory(
        key__project=openai_provider.project, key__provider=openai_provider
    )
    return mapping.key


def test_chat_completion_records_usage_under_application(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    answer = ask(client, "Hi simulate: prompt_tokens=120 completion_tokens=30")

    assert answer.usage.prompt_tokens == 120
    [event] = wait_for_events(key=mapped_key)
    assert event.application_id == mapped_key.mapping.application_id
    assert event.project_id == mapped_key.project_id
    assert event.provider_id == mapped_key.provider_id
    assert event.model == "gpt-4o-mini"
    assert event.prompt_tokens == 120
    assert event.completion_tokens == 30
    assert event.status_code == 200
    assert event.error_type == ""
    assert event.latency_ms is not None


def test_chat_records_cached_and_reasoning_tokens(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    ask(
        client,
        "simulate: prompt_tokens=2000 cached_tokens=1536 completion_tokens=900 "
        "reasoning_tokens=640",
        model="o4-mini",
    )

    [event] = wait_for_events(key=mapped_key)
    assert event.prompt_tokens == 2000
    assert event.cached_tokens == 1536
    assert event.completion_tokens == 900
    assert event.reasoning_tokens == 640


def test_async_client_records_usage(gateway, mapped_key):
    async def call():
        client = openai.AsyncOpenAI(
            base_url=gateway_base_url(gateway, mapped_key.provider),
            api_key=mapped_key.secret,
            max_retries=0,
        )
        async with client:
            return await asyncio.gather(
                *[
                    client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[
                            {"role": "user", "content": "simulate: prompt_tokens=7"}
                        ],
                    )
                    for _ in range(5)
                ]
            )

    answers = asyncio.run(call())

    assert len(answers) == 5
    events = wait_for_events(5, key=mapped_key)
    assert sum(event.prompt_tokens for event in events) == 35


def test_stream_without_usage_request_hides_usage_chunk(
    gateway, mapped_key, last_upstream_request
):
    client = client_for(gateway, mapped_key)

    chunks = list(
        ask(client, "simulate: prompt_tokens=50 completion_tokens=12", stream=True)
    )

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert '"include_usage": true' in last_upstream_request()["body"]
    [event] = wait_for_events(key=mapped_key)
    assert event.prompt_tokens == 50
    assert event.completion_tokens == 12
    assert event.ttft_ms is not None
    assert event.ttft_ms <= event.latency_ms


def test_stream_with_usage_request_keeps_usage_chunk(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    chunks = list(
        ask(
            client,
            "simulate: prompt_tokens=50 completion_tokens=12",
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 12
    [event] = wait_for_events(key=mapped_key)
    assert event.completion_tokens == 12


def test_stream_reads_usage_on_last_choice_chunk(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    chunks = list(
        ask(
            client,
            "simulate: prompt_tokens=40 completion_tokens=9 usage_on_last_choice=1",
            stream=True,
        )
    )

    assert chunks[-1].choices
    [event] = wait_for_events(key=mapped_key)
    assert event.prompt_tokens == 40
    assert event.completion_tokens == 9


def test_stream_running_usage_is_not_added_twice(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    list(
        ask(
            client,
            "simulate: prompt_tokens=40 completion_tokens=20 reasoning_tokens=8 "
            "chunks=4 running_usage=1",
            stream=True,
        )
    )

    [event] = wait_for_events(key=mapped_key)
    assert event.prompt_tokens == 40
    assert event.completion_tokens == 20
    assert event.reasoning_tokens == 8


def test_stream_disconnect_records_cancelled_call(gateway, mapped_key):
    client = client_for(gateway, mapped_key)
    stream = ask(
        client,
        "simulate: prompt_tokens=40 completion_tokens=20 chunks=10 chunk_delay_ms=100",
        stream=True,
    )

    first = next(iter(stream))
    stream.close()

    assert first.choices[0].delta.content
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == 499
    assert event.error_type == ErrorType.CLIENT_CANCELLED
    assert event.latency_ms < 1000


def test_legacy_completions_and_embeddings_are_recorded(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    client.completions.create(model="gpt-4o-mini", prompt="simulate: prompt_tokens=11")
    client.embeddings.create(
        model="text-embedding-3-small", input=["simulate: prompt_tokens=6", "b"]
    )

    events = wait_for_events(2, key=mapped_key)
    assert [event.prompt_tokens for event in events] == [11, 6]


def test_models_lists_upstream_models(gateway, mapped_key):
    client = client_for(gateway, mapped_key)

    models = [model.id for model in client.models.list()]

    assert "gpt-4o-mini" in models
    [event] = wait_for_events(key=mapped_key)
    assert event.model == ""


def test_unicode_model_name_reaches_azure_deployment(
    gateway, project, simulator, last_upstream_request
):
    provider = ProviderFactory(
        project=project,
        vendor=Vendor.AZURE_OPENAI,
        base_url=simulator.url,
        api_version="2024-10-21",
    )
    key = APIKeyFactory(project=project, provider=provider)
    client = openai.OpenAI(
        base_url=gateway_base_url(gateway, provider),
        api_key=key.secret,
        max_retries=0,
    )

    answer = ask(client, model="modèle-été-✓")

    assert answer.model == "modèle-été-✓"
    upstream = last_upstream_request()
    assert upstream["path"] == "/openai/deployments/modèle-été-✓/chat/completions"
    assert upstream["query"] == {"api-version": "2024-10-21"}
    assert upstream["headers"]["api-key"] == "sk-upstream-test"
    [event] = wait_for_events(key=key)
    assert event.model == "modèle-été-✓"


@pytest.mark.parametrize("header", ["authorization", "api-key", "x-api-key"])
def test_key_accepted_in_each_header(gateway, mapped_key, header):
    value = (
        f"Bearer {mapped_key.secret}"
        if header == "authorization"
        else mapped_key.secret
    )

    response = httpx.get(
        f"{gateway_base_url(gateway, mapped_key.provider)}/models",
        headers={header: value},
    )

    assert response.status_code == 200
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == 200


def test_upstream_sees_provider_credential_not_client_key(
    gateway, mapped_key, last_upstream_request
):
    ask(client_for(gateway, mapped_key))

    headers = last_upstream_request()["headers"]

    assert headers["authorization"] == "Bearer sk-upstream-test"
    assert mapped_key.secret not in str(headers)
    wait_for_events(key=mapped_key)


def test_unknown_key_is_rejected(gateway, openai_provider):
    client = openai.OpenAI(
        base_url=gateway_base_url(gateway, openai_provider),
        api_key="aiw-not-a-real-key",
        max_retries=0,
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        ask(client)

    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"
    assert set(raised.value.body) == {"message", "type", "param", "code"}


def test_missing_key_is_rejected(gateway, openai_provider):
    response = httpx.get(f"{gateway_base_url(gateway, openai_provider)}/models")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_revoked_key_is_rejected_and_recorded(gateway, openai_provider):
    key = APIKeyFactory(
        project=openai_provider.project, provider=openai_provider, revoked=True
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        ask(client_for(gateway, key))

    assert raised.value.body["code"] == "revoked_api_key"
    assert key.secret not in raised.value.response.text
    assert key.prefix in raised.value.body["message"]
    [event] = wait_for_events(key=key)
    assert event.status_code == 401
    assert event.error_type == ErrorType.AUTHENTICATION


def test_expired_key_is_rejected(gateway, openai_provider):
    key = APIKeyFactory(
        project=openai_provider.project, provider=openai_provider, expired=True
    )

    with pytest.raises(openai.AuthenticationError) as raised:
        ask(client_for(gateway, key))

    assert raised.value.body["code"] == "expired_api_key"
    [event] = wait_for_events(key=key)
    assert event.status_code == 401


def test_key_of_other_target_is_forbidden(gateway, openai_provider, project):
    other = ProviderFactory(project=project, context_path="other")
    key = APIKeyFactory(project=project, provider=other)

    with pytest.raises(openai.PermissionDeniedError) as raised:
        ask(client_for(gateway, key, target=openai_provider))

    assert raised.value.status_code == 403
    assert "/gateway/other/" in raised.value.body["message"]
    [event] = wait_for_events(key=key)
    assert event.status_code == 403


@pytest.mark.parametrize(
    ("directive", "exception", "status", "error_type"),
    [
        ("status=400", openai.BadRequestError, 400, ErrorType.UPSTREAM_4XX),
        ("status=429", openai.RateLimitError, 429, ErrorType.RATE_LIMIT),
        ("status=503", openai.InternalServerError, 503, ErrorType.UPSTREAM_5XX),
    ],
)
def test_upstream_error_is_passed_through_and_recorded(
    gateway, mapped_key, directive, exception, status, error_type
):
    with pytest.raises(exception) as raised:
        ask(client_for(gateway, mapped_key), f"simulate: {directive}")

    assert raised.value.status_code == status
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == status
    assert event.error_type == error_type
    assert event.prompt_tokens == 0


def test_upstream_timeout_is_504(gateway, mapped_key):
    with pytest.raises(openai.InternalServerError) as raised:
        ask(client_for(gateway, mapped_key), "simulate: hang=1")

    assert raised.value.status_code == 504
    assert raised.value.body["code"] == "upstream_timeout"
    [event] = wait_for_events(key=mapped_key)
    assert event.error_type == ErrorType.TIMEOUT


def test_refused_connection_is_502(gateway, project, transactional_db):
    provider = ProviderFactory(project=project, base_url="http://127.0.0.1:9/v1")
    key = APIKeyFactory(project=project, provider=provider)

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client_for(gateway, key))

    assert raised.value.status_code == 502
    [event] = wait_for_events(key=key)
    assert event.status_code == 502
    assert event.error_type == ErrorType.CONNECTION_ERROR


def test_invalid_json_body_is_400(gateway, mapped_key):
    response = httpx.post(
        f"{gateway_base_url(gateway, mapped_key.provider)}/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {mapped_key.secret}"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    [event] = wait_for_events(key=mapped_key)
    assert event.error_type == ErrorType.BAD_REQUEST


def test_deeply_nested_json_is_400(gateway, mapped_key):
    response = httpx.post(
        f"{gateway_base_url(gateway, mapped_key.provider)}/chat/completions",
        content=b"[" * 100_000,
        headers={"authorization": f"Bearer {mapped_key.secret}"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == 400
    assert event.error_type == ErrorType.BAD_REQUEST


def test_body_above_limit_is_413(gateway_factory, mapped_key):
    server = gateway_factory(GATEWAY_MAX_BODY_BYTES="1000")

    response = httpx.post(
        f"{gateway_base_url(server, mapped_key.provider)}/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x" * 2000}],
        },
        headers={"authorization": f"Bearer {mapped_key.secret}"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "1,000 bytes" in response.json()["error"]["message"]
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == 413


def test_gateway_root_without_slash_is_404(gateway):
    response = httpx.post(f"{gateway.url}/gateway", json={"model": "gpt-4o-mini"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_missing_model_is_400(gateway, mapped_key):
    response = httpx.post(
        f"{gateway_base_url(gateway, mapped_key.provider)}/chat/completions",
        json={"messages": []},
        headers={"authorization": f"Bearer {mapped_key.secret}"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    [event] = wait_for_events(key=mapped_key)
    assert event.error_type == ErrorType.BAD_REQUEST


def test_unknown_operation_is_404(gateway, mapped_key):
    response = httpx.post(
        f"{gateway_base_url(gateway, mapped_key.provider)}/messages",
        json={"model": "gpt-4o-mini"},
        headers={"authorization": f"Bearer {mapped_key.secret}"},
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    [event] = wait_for_events(key=mapped_key)
    assert event.status_code == 404


def test_proxy_rejects_model_not_allowed(gateway, project, openai_provider):
    proxy = AppProxyFactory(
        project=project, provider=openai_provider, allowed_models=["gpt-4o-mini"]
    )
    key = APIKeyFactory(project=project, provider=None, proxy=proxy)

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client_for(gateway, key), model="gpt-4o")

    assert raised.value.body["code"] == "model_not_allowed"
    assert raised.value.body["param"] == "model"
    [event] = wait_for_events(key=key)
    assert event.error_type == ErrorType.GUARDRAIL
    assert event.proxy_id == proxy.pk


def test_proxy_rejects_too_many_max_tokens(gateway, project, openai_provider):
    proxy = AppProxyFactory(project=project, provider=openai_provider, max_tokens=100)
    key = APIKeyFactory(project=project, provider=None, proxy=proxy)

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client_for(gateway, key), max_tokens=101)

    assert raised.value.body["code"] == "max_tokens_exceeded"
    assert raised.value.body["param"] == "max_tokens"
    [event] = wait_for_events(key=key)
    assert event.error_type == ErrorType.GUARDRAIL


def test_proxy_applies_its_max_tokens_when_unset(
    gateway, project, openai_provider, last_upstream_request
):
    proxy = AppProxyFactory(project=project, provider=openai_provider, max_tokens=100)
    key = APIKeyFactory(project=project, provider=None, proxy=proxy)

    ask(client_for(gateway, key))

    assert '"max_completion_tokens": 100' in last_upstream_request()["body"]
    [event] = wait_for_events(key=key)
    assert event.provider_id == openai_provider.pk
    assert event.proxy_id == proxy.pk


def test_secret_never_in_headers_or_log(gateway, openai_provider):
    key = APIKeyFactory(
        project=openai_provider.project, provider=openai_provider, revoked=True
    )

    response = httpx.get(
        f"{gateway_base_url(gateway, openai_provider)}/models",
        headers={"authorization": f"Bearer {key.secret}"},
    )

    assert key.secret not in response.text
    assert key.secret not in str(response.headers)
    assert key.secret not in gateway.log_text()
    assert "sk-upstream-test" not in gateway.log_text()
    wait_for_events(key=key)


def test_cost_matches_model_prices(gateway, mapped_key):
    ProviderModelFactory(
        provider=mapped_key.provider,
        name="gpt-4o-mini",
        input_price=Decimal("0.15"),
        cached_input_price=Decimal("0.075"),
        output_price=Decimal("0.60"),
    )

    ask(
        client_for(gateway, mapped_key),
        "simulate: prompt_tokens=1000 cached_tokens=400 completion_tokens=300 reasoning_tokens=100",
    )

    [event] = wait_for_events(key=mapped_key)
    if event.cost_nanousd is None:
        # NOTE: insights.recording computes cost; until it does, this is the
        # expected figure and the test is an expected failure.
        pytest.xfail("record_usage does not compute cost yet")
    # USD per 1M tokens x tokens x 1000 = nano-dollars, exactly.
    expected = 600 * 150 + 400 * 75 + 300 * 600
    assert event.cost_nanousd == expected


def test_detached_key_call_has_no_application(gateway, mapped_key, owner):
    from genai_apps.services import detach_key

    ask(client_for(gateway, mapped_key))
    wait_for_events(key=mapped_key)
    detach_key(mapped_key.mapping.application, mapped_key, owner)

    ask(client_for(gateway, mapped_key))

    first, second = wait_for_events(2, key=mapped_key)
    assert first.application_id is not None
    assert second.application_id is None


def test_last_used_at_is_updated(gateway, mapped_key):
    before = timezone.now() - datetime.timedelta(seconds=1)

    ask(client_for(gateway, mapped_key))

    wait_for_events(key=mapped_key)
    for _ in range(100):
        mapped_key.refresh_from_db()
        if mapped_key.last_used_at:
            break
        time.sleep(0.02)
    assert mapped_key.last_used_at > before
    assert UsageEvent.objects.filter(key=mapped_key).count() == 1


def test_moved_key_records_new_application(gateway, mapped_key, owner):
    from genai_apps.services import attach_keys, detach_key

    second = GenAIApplicationFactory(project=mapped_key.project)
    ask(client_for(gateway, mapped_key))
    wait_for_events(key=mapped_key)

    detach_key(mapped_key.mapping.application, mapped_key, owner)
    attach_keys(second, [mapped_key], owner)
    ask(client_for(gateway, mapped_key))

    events = wait_for_events(2, key=mapped_key)
    assert events[1].application_id == second.pk


def test_proxy_limit_applies_to_stream_with_usage(
    gateway, project, openai_provider, last_upstream_request
):
    proxy = AppProxyFactory(project=project, provider=openai_provider, max_tokens=64)
    key = APIKeyFactory(project=project, provider=None, proxy=proxy)

    list(
        ask(
            client_for(gateway, key),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert '"max_completion_tokens": 64' in last_upstream_request()["body"]
    wait_for_events(key=key)


def test_azure_models_list_uses_api_version(
    gateway, project, simulator, last_upstream_request
):
    provider = ProviderFactory(
        project=project,
        vendor=Vendor.AZURE_OPENAI,
        base_url=simulator.url,
        api_version="2024-10-21",
    )
    key = APIKeyFactory(project=project, provider=provider)

    models = [model.id for model in client_for(gateway, key).models.list()]

    assert "gpt-4o-mini" in models
    assert last_upstream_request()["path"] == "/openai/models"
    wait_for_events(key=key)
