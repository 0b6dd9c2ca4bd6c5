"""Real servers for gateway tests: the upstream simulator and gateway processes.

Each pytest worker starts one simulator and one gateway (uvicorn serving
workspace.asgi) on free ports of 127.0.0.1. The gateway process uses the test
database and shares a Redis cache with the test process, so a key revoked by
a test applies to the gateway's next request, as it does in production.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from django.db import connection

from tests.factories import ProviderFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The simulator rejects any other credential, which proves that the gateway
# sends the provider's credential and never the client's key.
UPSTREAM_CREDENTIAL = "sk-upstream-test"
# Short enough that the timeout test stays fast.
UPSTREAM_TIMEOUT = 1.5
CACHE_PREFIX = f"aiw-test-{uuid.uuid4().hex[:8]}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database.get("USER") or "postgres"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{database['NAME']}"


class Server:
    """A child process serving HTTP on 127.0.0.1, with its log in a file."""

    def __init__(self, args, port, log_path, env=None, new_session=False):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env or os.environ.copy(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        self.wait_until_ready()

    def wait_until_ready(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Server exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Server on port {self.port} did not start")

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def start_gateway(tmp_path_factory, new_session=False, **extra_env):
    port = free_port()
    env = os.environ.copy()
    env.update(
        DATABASE_URL=database_url(),
        CACHE_URL=REDIS_URL,
        CACHE_KEY_PREFIX=CACHE_PREFIX,
        GATEWAY_FLUSH_INTERVAL="0.05",
        GATEWAY_UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT),
        LOG_LEVEL="INFO",
    )
    env.update(extra_env)
    args = [sys.executable, "-m", "uvicorn", "workspace.asgi:application"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--lifespan", "on"]
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    return Server(args, port, log_path, env, new_session=new_session)


def redis_available():
    try:
        import redis

        return redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping()
    except Exception:
        return False


@pytest.fixture(scope="session")
def shared_cache():
    """Skip without Redis locally; under CI a missing Redis is a failure."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required at {REDIS_URL} for gateway tests.")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}.")


@pytest.fixture(autouse=True)
def _use_shared_cache(shared_cache, settings, transactional_db):
    # Gateway processes see only committed rows, hence transactional_db.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_PREFIX,
        }
    }
    yield
    wait_until_writes_settle()


@pytest.fixture(scope="session")
def simulator(tmp_path_factory):
    port = free_port()
    args = [sys.executable, "manage.py", "simulate_upstream", "--port", str(port)]
    args += ["--require-key", UPSTREAM_CREDENTIAL]
    server = Server(args, port, tmp_path_factory.mktemp("simulator") / "sim.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(django_db_setup, django_db_blocker, shared_cache, tmp_path_factory):
    with django_db_blocker.unblock():
        server = start_gateway(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture
def gateway_factory(tmp_path_factory):
    """Start extra gateway processes with settings of their own."""
    servers = []

    def start(new_session=False, **extra_env):
        servers.append(start_gateway(tmp_path_factory, new_session, **extra_env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def last_upstream_request(simulator):
    def fetch():
        return httpx.get(f"{simulator.url}/_simulator/last-request").json()

    return fetch


@pytest.fixture
def openai_provider(transactional_db, project, simulator):
    return ProviderFactory(
        project=project,
        name="Simulated OpenAI",
        context_path="openai",
        base_url=f"{simulator.url}/v1",
    )


def client_for(gateway, key, target=None, **options):
    """Return an OpenAI SDK client for the key, through the gateway, without retries."""
    return openai.OpenAI(
        base_url=gateway_base_url(gateway, target or key.target),
        api_key=key.secret,
        max_retries=0,
        **options,
    )


def ask(client, text="Hello", model="gpt-4o-mini", **options):
    """Send one chat completion with a single user message."""
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **options
    )


def gateway_base_url(gateway, target):
    return f"{gateway.url}/gateway/{target.context_path}/v1"


def wait_until_writes_settle(quiet=0.25, timeout=10):
    """Wait until no usage event has been written for `quiet` seconds.

    The test database is truncated after each test; a gateway still writing
    a batch then would deadlock with the truncation. Tests wait for their own
    events; this guards the ones that fail before they can.
    """
    from insights.models import UsageEvent

    deadline = time.monotonic() + timeout
    count = UsageEvent.objects.count()
    settled_at = time.monotonic()
    while time.monotonic() - settled_at < quiet and time.monotonic() < deadline:
        time.sleep(0.05)
        current = UsageEvent.objects.count()
        if current != count:
            count, settled_at = current, time.monotonic()


def wait_for_events(count=1, timeout=10, **filters):
    """Return the usage events once `count` of them match, polling the database."""
    from insights.models import UsageEvent

    deadline = time.monotonic() + timeout
    while True:
        events = list(
            UsageEvent.objects.filter(**filters).order_by("occurred_at", "event_id")
        )
        if len(events) >= count or time.monotonic() > deadline:
            assert len(events) == count, f"expected {count} events, found {events}"
            return events
        time.sleep(0.02)
