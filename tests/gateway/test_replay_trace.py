"""replay_trace sends trace rows through a live gateway."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from gateway.traces import TraceError, read_trace
from insights.models import ErrorType
from tests.factories import APIKeyFactory, ProviderModelFactory
from tests.gateway.conftest import wait_for_events


@pytest.fixture
def key(openai_provider):
    ProviderModelFactory(provider=openai_provider, name="gpt-4o-mini")
    return APIKeyFactory(project=openai_provider.project, provider=openai_provider)


def replay(gateway, *keys, **options):
    stdout = io.StringIO()
    call_command(
        "replay_trace",
        key=[key.secret for key in keys],
        gateway=gateway.url,
        rate=50,
        no_progress=True,
        stdout=stdout,
        stderr=io.StringIO(),
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
