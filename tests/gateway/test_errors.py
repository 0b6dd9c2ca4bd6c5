"""Gateway error responses: failures while forwarding and early 413s."""

import socket

import httpx
import openai

from insights.models import ErrorType
from tests.factories import APIKeyFactory
from tests.gateway.conftest import gateway_base_url, wait_for_events


def client_for(gateway, key):
    return openai.OpenAI(
        base_url=gateway_base_url(gateway, key.target),
        api_key=key.secret,
        max_retries=0,
    )


def ask(client, **options):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello"}],
        **options,
    )


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
