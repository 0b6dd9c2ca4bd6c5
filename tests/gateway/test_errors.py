"""Gateway error responses: failures while forwarding and early 413s."""

import socket

import httpx
import openai
import pytest

from insights.models import ErrorType
from tests.factories import APIKeyFactory, ProviderFactory
from tests.gateway.conftest import ask, client_for, gateway_base_url, wait_for_events

ERROR_FIELDS = {"message", "type", "param", "code"}


def test_base_url_with_credentials_is_json_502(gateway, project, simulator):
    # Saved before the form rejected credentials in base URLs; aiohttp raises
    # ValueError for such a URL next to the credential header.
    provider = ProviderFactory(
        project=project,
        context_path="with-credentials",
        base_url=simulator.url.replace("http://", "http://user:pass@") + "/v1",
    )
    key = APIKeyFactory(project=project, provider=provider)

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client_for(gateway, key))

    assert raised.value.status_code == 502
    assert raised.value.response.headers["content-type"] == "application/json"
    assert set(raised.value.body) == ERROR_FIELDS
    assert raised.value.body["code"] == "upstream_request_failed"
    [event] = wait_for_events(key=key)
    assert event.status_code == 502
    assert event.error_type == ErrorType.OTHER
    log = gateway.log_text()
    assert f"key {key.prefix}… to /gateway/with-credentials/" in log
    assert "user:pass" not in log


def test_stream_options_not_object_is_400(gateway, openai_provider):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client_for(gateway, key), stream=True, stream_options=5)

    assert raised.value.body["param"] == "stream_options"
    assert raised.value.body["code"] == "invalid_stream_options"
    assert "not 5." in raised.value.body["message"]
    [event] = wait_for_events(key=key)
    assert event.status_code == 400


def send_raw_request(server, path, headers, body, timeout=5):
    """Send one HTTP/1.1 request over a socket and return the response bytes."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall("\r\n".join(lines).encode() + body)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_content_length_above_limit_is_413_at_once(gateway, openai_provider):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)

    response = send_raw_request(
        gateway,
        f"/gateway/{openai_provider.context_path}/v1/chat/completions",
        [
            f"Authorization: Bearer {key.secret}",
            "Content-Type: application/json",
            "Content-Length: 99999999999",
        ],
        b"{}",
    )

    status_line = response.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b'"code": "request_too_large"' in response
    [event] = wait_for_events(key=key)
    assert event.status_code == 413
    assert event.error_type == ErrorType.BAD_REQUEST


def test_body_within_content_length_limit_passes(gateway, openai_provider):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)

    response = httpx.post(
        f"{gateway_base_url(gateway, openai_provider)}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"authorization": f"Bearer {key.secret}"},
    )

    assert response.status_code == 200
    wait_for_events(key=key)
