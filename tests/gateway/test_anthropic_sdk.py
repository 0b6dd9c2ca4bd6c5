"""The gateway called with the official Anthropic SDK.

Anthropic's input_tokens excludes cache reads and writes; the gateway
records prompt = input + cache read + cache write, cached = cache read.
"""

import anthropic
import pytest

from insights.models import ErrorType
from tests.factories import APIKeyFactory, ProviderFactory
from tests.gateway.conftest import wait_for_events
from workspace.models import Vendor

CACHED_PROMPT = "simulate: prompt_tokens=3000 cached_tokens=2048 cache_write_tokens=512 completion_tokens=64"


@pytest.fixture
def key(project, simulator):
    provider = ProviderFactory(
        project=project,
        vendor=Vendor.ANTHROPIC,
        context_path="claude",
        base_url=simulator.url,
    )
    return APIKeyFactory(project=project, provider=provider)


def client_for(gateway, key):
    return anthropic.Anthropic(
        base_url=f"{gateway.url}/gateway/{key.provider.context_path}",
        api_key=key.secret,
        max_retries=0,
    )


def send(client, text, **options):
    return client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": text}],
        **options,
    )


def test_message_maps_cache_reads_and_writes_into_prompt(gateway, key):
    message = send(client_for(gateway, key), CACHED_PROMPT)

    assert message.usage.input_tokens == 440
    [event] = wait_for_events(key=key)
    assert event.prompt_tokens == 3000
    assert event.cached_tokens == 2048
    assert event.cache_write_tokens == 512
    assert event.completion_tokens == 64
    assert event.model == "claude-sonnet-4-5"


def test_streamed_message_records_final_output_tokens(gateway, key):
    with client_for(gateway, key).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": CACHED_PROMPT}],
    ) as stream:
        text = "".join(stream.text_stream)

    assert "simulator" in text
    [event] = wait_for_events(key=key)
    assert event.prompt_tokens == 3000
    assert event.cached_tokens == 2048
    assert event.completion_tokens == 64
    assert event.ttft_ms is not None


def test_upstream_overload_is_recorded(gateway, key):
    with pytest.raises(anthropic.APIStatusError) as raised:
        send(client_for(gateway, key), "simulate: status=529")

    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"
    [event] = wait_for_events(key=key)
    assert event.error_type == ErrorType.UPSTREAM_5XX


def test_revoked_key_raises_authentication_error(gateway, key):
    key.revoke()

    with pytest.raises(anthropic.AuthenticationError):
        send(client_for(gateway, key), "Hi")

    [event] = wait_for_events(key=key)
    assert event.status_code == 401


def test_upstream_receives_provider_credential(gateway, key, last_upstream_request):
    send(client_for(gateway, key), "Hi")

    headers = last_upstream_request()["headers"]

    assert headers["x-api-key"] == "sk-upstream-test"
    assert headers["anthropic-version"]
    wait_for_events(key=key)


def test_openai_sdk_on_anthropic_provider_records_usage(gateway, key):
    import openai

    client = openai.OpenAI(
        base_url=f"{gateway.url}/gateway/{key.provider.context_path}/v1",
        api_key=key.secret,
        max_retries=0,
    )

    chunks = list(
        client.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[
                {
                    "role": "user",
                    "content": "simulate: prompt_tokens=30 completion_tokens=5",
                }
            ],
            stream=True,
        )
    )

    assert all(chunk.usage is None for chunk in chunks)
    [event] = wait_for_events(key=key)
    assert event.prompt_tokens == 30
    assert event.completion_tokens == 5
