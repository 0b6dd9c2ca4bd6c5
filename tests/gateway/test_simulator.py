"""The upstream simulator, called directly."""

import socket
import subprocess
import sys

import httpx
import openai

from tests.gateway.conftest import (
    REPO_ROOT,
    UPSTREAM_CREDENTIAL,
    Server,
    free_port,
)


def direct_client(simulator):
    return openai.OpenAI(
        base_url=f"{simulator.url}/v1", api_key=UPSTREAM_CREDENTIAL, max_retries=0
    )


def test_simulator_labels_its_answers(simulator):
    response = httpx.post(
        f"{simulator.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"authorization": f"Bearer {UPSTREAM_CREDENTIAL}"},
    )

    assert response.headers["x-simulator"] == "ai-workspace upstream simulator"
    assert "simulator" in response.json()["choices"][0]["message"]["content"]


def test_simulator_follows_usage_directive(simulator):
    answer = direct_client(simulator).chat.completions.create(
        model="o4-mini",
        messages=[
            {
                "role": "user",
                "content": "simulate: prompt_tokens=10 cached_tokens=4 reasoning_tokens=3",
            }
        ],
    )

    assert answer.usage.prompt_tokens == 10
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    assert answer.usage.completion_tokens_details.reasoning_tokens == 3


def test_simulator_rejects_wrong_credential(simulator):
    response = httpx.get(f"{simulator.url}/v1/models", headers={"api-key": "wrong"})

    assert response.status_code == 401


def test_simulator_azure_path_needs_api_version(simulator):
    response = httpx.post(
        f"{simulator.url}/openai/deployments/gpt-4o/chat/completions",
        json={"messages": []},
        headers={"api-key": UPSTREAM_CREDENTIAL},
    )

    assert response.status_code == 400
    assert "api-version" in response.json()["error"]["message"]


def test_simulator_access_log_prints_requests(tmp_path):
    port = free_port()
    args = [sys.executable, "manage.py", "simulate_upstream", "--port", str(port)]
    server = Server(args + ["--access-log"], port, tmp_path / "simulator.log")
    try:
        response = httpx.get(f"{server.url}/v1/models")
    finally:
        server.stop()

    assert response.status_code == 200
    assert '"GET /v1/models HTTP/1.1" 200' in server.log_text()


def test_simulator_on_busy_port_exits_with_message():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "simulate_upstream", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "--port" in result.stderr
    assert "Press Ctrl-C" not in result.stdout
