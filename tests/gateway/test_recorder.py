"""Batched usage writing: flushed on shutdown, retried, never blocked."""

import datetime
import marshal
import os
import re
import signal
import time
import uuid
from http import HTTPStatus

import openai
import pytest
from django.db import connection
from django.utils import timezone

from gateway import writer_process
from gateway.recorder import write_batch
from insights.models import ErrorType, UsageEvent
from insights.recording import UsageRecord
from tests.factories import APIKeyFactory
from tests.gateway.conftest import gateway_base_url, wait_for_events


def call(server, key):
    client = openai.OpenAI(
        base_url=gateway_base_url(server, key.provider),
        api_key=key.secret,
        max_retries=0,
    )
    with client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_shutdown_flushes_buffered_events(openai_provider, gateway_factory, writer):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory(GATEWAY_FLUSH_INTERVAL="3600", GATEWAY_USAGE_WRITER=writer)
    call(server, key)
    assert not UsageEvent.objects.filter(key=key).exists()

    server.stop()

    assert UsageEvent.objects.filter(key=key).count() == 1
    assert "1 events written" in server.log_text()


def test_ctrl_c_flushes_buffered_events(openai_provider, gateway_factory):
    # Ctrl-C in a terminal sends SIGINT to the whole process group; the
    # writer process must still be there for the worker's shutdown flush.
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory(new_session=True, GATEWAY_FLUSH_INTERVAL="3600")
    wait_until_logged(server, "Usage writer process")
    call(server, key)

    os.killpg(server.process.pid, signal.SIGINT)
    server.process.wait(timeout=15)

    assert UsageEvent.objects.filter(key=key).count() == 1
    assert "1 events written" in server.log_text()


def test_killed_writer_process_is_replaced(openai_provider, gateway_factory):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory()
    call(server, key)
    wait_for_events(key=key)
    first = writer_pids(server)[-1]

    os.kill(first, signal.SIGKILL)
    call(server, key)

    events = wait_for_events(2, key=key)
    assert [event.status_code for event in events] == [200, 200]
    assert f"Usage writer process {first} exited with code -9" in server.log_text()
    assert writer_pids(server)[-1] != first


def test_writer_process_runs_at_lower_priority(openai_provider, gateway_factory):
    server = gateway_factory(GATEWAY_WRITER_NICE="7")
    wait_until_logged(server, "Usage writer process")

    writer = writer_pids(server)[-1]

    worker = os.getpriority(os.PRIO_PROCESS, server.process.pid)
    assert os.getpriority(os.PRIO_PROCESS, writer) == worker + 7


def writer_pids(server):
    return [
        int(pid)
        for pid in re.findall(r"Usage writer process (\d+) started", server.log_text())
    ]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="Refusing new connections to one database needs PostgreSQL.",
)
def test_events_are_retried_while_database_refuses_connections(
    openai_provider, gateway_factory
):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory(DATABASE_CONN_MAX_AGE="0")
    name = connection.settings_dict["NAME"]
    # The gateway resolves the key now, so the outage hits only the writer.
    call(server, key)
    wait_for_events(key=key)
    try:
        set_allow_connections(name, False)
        call(server, key)
        wait_until_logged(server, "will retry")
    finally:
        set_allow_connections(name, True)

    events = wait_for_events(2, key=key)
    assert all(event.status_code == 200 for event in events)


def set_allow_connections(name, allowed):
    """Let a database accept new connections or refuse them."""
    import psycopg

    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'
        )


def wait_until_logged(server, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        assert time.monotonic() < deadline, f"{text!r} not logged"
        time.sleep(0.05)


def test_invalid_record_does_not_block_batch(openai_provider):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    good = UsageRecord(
        project_id=key.project_id, key_id=key.pk, occurred_at=timezone.now()
    )
    orphan = UsageRecord(
        project_id=key.project_id, key_id=key.pk + 1000, occurred_at=timezone.now()
    )

    write_batch([good, orphan])

    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == [
        good.event_id
    ]
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_records_cross_the_pipe_unchanged():
    record = UsageRecord(
        project_id=3,
        key_id=None,
        occurred_at=datetime.datetime(
            2026, 3, 29, 1, 30, 0, 123456, tzinfo=datetime.UTC
        ),
        model="模型-ü 🚀",
        proxy_id=9,
        application_id=None,
        resolve_application=False,
        prompt_tokens=2**40,
        completion_tokens=7,
        cached_tokens=1,
        reasoning_tokens=2,
        cache_write_tokens=3,
        latency_ms=None,
        ttft_ms=0,
        # Enum members, as the gateway passes them, cross as plain values.
        status_code=HTTPStatus.GATEWAY_TIMEOUT,
        error_type=ErrorType.TIMEOUT,
    )

    body = writer_process.frame([writer_process.encode(record)])[4:]
    (values,) = marshal.loads(body)

    assert writer_process.decode(values) == record


def test_retried_batch_is_stored_once(openai_provider):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    record = UsageRecord(
        project_id=key.project_id,
        key_id=key.pk,
        occurred_at=timezone.now(),
        event_id=uuid.uuid4(),
    )

    write_batch([record])
    write_batch([record])

    assert UsageEvent.objects.count() == 1


def test_hung_writer_process_is_replaced(openai_provider, gateway_factory):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory(GATEWAY_WRITE_TIMEOUT="1")
    wait_until_logged(server, "Usage writer process")
    hung = writer_pids(server)[-1]
    os.kill(hung, signal.SIGSTOP)

    call(server, key)

    [event] = wait_for_events(key=key, timeout=15)
    assert event.status_code == 200
    assert (
        f"Usage writer process {hung} did not reply within the write timeout"
        in server.log_text()
    )


def test_shutdown_with_hung_writer_ends_in_time(openai_provider, gateway_factory):
    key = APIKeyFactory(project=openai_provider.project, provider=openai_provider)
    server = gateway_factory(
        GATEWAY_FLUSH_INTERVAL="3600", GATEWAY_SHUTDOWN_FLUSH_TIMEOUT="2"
    )
    wait_until_logged(server, "Usage writer process")
    os.kill(writer_pids(server)[-1], signal.SIGSTOP)
    call(server, key)
    started = time.monotonic()

    server.stop()

    assert time.monotonic() - started < 10
    assert "Shutting down with 1 usage events unwritten" in server.log_text()
