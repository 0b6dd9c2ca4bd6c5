"""replay_trace sends trace rows through a live gateway."""

import io
import json
import socket
import threading

import pytest
from django.core.management import CommandError, call_command

from gateway.traces import TraceError, read_trace
from genai_apps.demo import DEMO_PROJECT_SLUG, DemoWorkspace, write_demo_keys
from insights.models import ErrorType
from tests.factories import APIKeyFactory, KeyMappingFactory, ProviderModelFactory
from tests.gateway.conftest import free_port, wait_for_events
from workspace.models import APIKey, generate_secret


@pytest.fixture
def key(openai_provider):
    ProviderModelFactory(provider=openai_provider, name="gpt-4o-mini")
    return APIKeyFactory(project=openai_provider.project, provider=openai_provider)


def replay(gateway, *keys, stderr=None, **options):
    """Run replay_trace against the gateway (a Server or a URL); return its stdout."""
    stdout = io.StringIO()
    call_command(
        "replay_trace",
        key=[key.secret for key in keys],
        gateway=getattr(gateway, "url", gateway),
        rate=50,
        no_progress=True,
        stdout=stdout,
        stderr=stderr or io.StringIO(),
        **options,
    )
    return stdout.getvalue()


def test_replay_records_trace_token_counts(gateway, key):
    output = replay(gateway, key, trace="azure-code", limit=4, stream_every=2)

    assert "Sent 4 calls" in output
    events = wait_for_events(4, key=key)
    expected = [(4808, 10), (3180, 8), (110, 27), (7433, 14)]
    assert sorted((e.prompt_tokens, e.completion_tokens) for e in events) == sorted(
        expected
    )


def test_replay_injects_requested_errors(gateway, key):
    output = replay(gateway, key, trace="azure-code", limit=6, error_every=3)

    assert "4 succeeded, 2 failed" in output
    events = wait_for_events(6, key=key)
    assert {e.error_type for e in events} == {
        "",
        ErrorType.RATE_LIMIT,
        ErrorType.UPSTREAM_5XX,
    }


def test_replay_rejects_unknown_key(gateway, openai_provider):
    with pytest.raises(CommandError, match="not in this database"):
        call_command("replay_trace", key=["aiw-unknown-secret"], gateway=gateway.url)


@pytest.mark.parametrize("status", ["revoked", "expired"])
def test_replay_rejects_inactive_key(gateway, openai_provider, status):
    ProviderModelFactory(provider=openai_provider, name="gpt-4o-mini")
    key = APIKeyFactory(
        project=openai_provider.project, provider=openai_provider, **{status: True}
    )

    with pytest.raises(CommandError) as error:
        replay(gateway, key, limit=3)

    assert f"Key {key.prefix}…" in str(error.value)
    assert f"is {status}" in str(error.value)


def test_replay_rejects_gateway_without_scheme(key):
    gateway = f"127.0.0.1:{free_port()}"

    with pytest.raises(CommandError) as error:
        replay(gateway, key, limit=1)

    assert f"--gateway '{gateway}'" in str(error.value)
    assert "http://" in str(error.value)


def test_replay_names_unreachable_gateway(key):
    gateway = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError) as error:
        replay(gateway, key, limit=1)

    assert gateway in str(error.value)
    assert "make run" in str(error.value)


def test_replay_reports_gateway_lost_midway(key):
    # A listener that accepts the start-up connection check and then closes,
    # so every call after it gets a refused or reset connection.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    gateway = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def accept_once_then_close():
        with listener:
            connection, _ = listener.accept()
            connection.close()

    thread = threading.Thread(target=accept_once_then_close)
    thread.start()
    stderr = io.StringIO()
    try:
        output = replay(gateway, key, limit=3, stderr=stderr)
    finally:
        thread.join()

    assert "0 succeeded, 3 failed" in output
    assert f"3 calls could not connect to the gateway at {gateway}" in (
        stderr.getvalue()
    )
    assert "make run" in stderr.getvalue()


def test_replay_needs_a_key(gateway):
    with pytest.raises(CommandError, match="--key or --keys-file"):
        call_command("replay_trace", gateway=gateway.url)


def test_replay_rejects_missing_trace_file(gateway, key, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("replay_trace", key=[key.secret], trace=str(tmp_path / "none.csv"))


def test_mooncake_reused_prefix_blocks_are_cached(tmp_path):
    trace = tmp_path / "trace.jsonl"
    rows = [
        {
            "timestamp": 0,
            "input_length": 1100,
            "output_length": 5,
            "hash_ids": [1, 2, 3],
        },
        {
            "timestamp": 9,
            "input_length": 1300,
            "output_length": 7,
            "hash_ids": [1, 2, 4],
        },
    ]
    trace.write_text("\n".join(json.dumps(row) for row in rows))

    first, second = read_trace(trace)

    assert first.cached_tokens == 0
    assert second.cached_tokens == 1024


def test_azure_trace_with_bad_count_names_line(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16,12,x\n")

    with pytest.raises(TraceError, match=r"trace.csv:2: 'x' is not a token count"):
        read_trace(trace)


@pytest.fixture
def demo_key(settings, tmp_path, openai_provider):
    """An attached key of a project with the demo slug, its secret on file."""
    settings.VAR_DIR = tmp_path
    project = openai_provider.project
    project.slug = DEMO_PROJECT_SLUG
    project.save()
    ProviderModelFactory(provider=openai_provider, name="gpt-4o-mini")
    mapping = KeyMappingFactory(
        application__project=project, key__provider=openai_provider
    )
    return mapping.key


def write_keys_file(key, secret):
    demo = DemoWorkspace(
        project=key.project,
        users={},
        providers=[],
        proxies=[],
        keys=[key],
        applications=[],
        secrets={key.pk: secret},
    )
    write_demo_keys(demo)


def test_replay_demo_calls_with_the_seeded_secret_and_keeps_it(gateway, demo_key):
    write_keys_file(demo_key, demo_key.secret)

    output = replay(gateway, demo=True, limit=2)

    assert "Sent 2 calls" in output
    assert "2 succeeded" in output
    stored = APIKey.objects.get(pk=demo_key.pk)
    assert (stored.prefix, stored.secret_hash) == (
        demo_key.prefix,
        demo_key.secret_hash,
    )


def test_replay_demo_names_the_missing_keys_file_and_the_fix(gateway, demo_key):
    with pytest.raises(CommandError, match=r"demo-keys.json does not exist") as error:
        replay(gateway, demo=True, limit=1)

    assert "manage.py seed_demo --force" in str(error.value)


def test_replay_demo_skips_keys_without_secret(gateway, demo_key):
    write_keys_file(demo_key, demo_key.secret)
    user_key = KeyMappingFactory(
        application__project=demo_key.project, key__provider=demo_key.provider
    ).key
    stderr = io.StringIO()

    output = replay(gateway, demo=True, limit=2, stderr=stderr)

    assert "2 succeeded" in output
    assert len(wait_for_events(2, key=demo_key)) == 2
    warnings = stderr.getvalue().splitlines()
    assert len(warnings) == 1
    assert str(user_key) in warnings[0]
    assert demo_key.name not in warnings[0]


def test_replay_demo_rejects_keys_file_of_another_seed(gateway, demo_key):
    write_keys_file(demo_key, generate_secret())

    with pytest.raises(CommandError, match=r"demo-keys.json") as error:
        replay(gateway, demo=True, limit=1)

    assert str(demo_key) in str(error.value)
    assert "--key" in str(error.value)
    assert "manage.py seed_demo --force" in str(error.value)


def test_replay_demo_rejects_unreadable_keys_file(gateway, demo_key, tmp_path):
    (tmp_path / "demo-keys.json").write_text("{not json")

    with pytest.raises(CommandError, match=r"demo-keys.json cannot be read"):
        replay(gateway, demo=True, limit=1)
