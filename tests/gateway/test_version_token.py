"""The gateway reads the key version token that Django's cache writes."""

import asyncio
import uuid

import pytest
import redis.asyncio
from django.core.cache import cache

from gateway.keys import VERSION_CACHE_KEY, KeyCache, invalidate_keys
from tests.gateway.conftest import REDIS_URL


@pytest.fixture
def versioned_cache(settings):
    """A Redis cache with its own key prefix and a cache version other than 1."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"aiw-test-token-{uuid.uuid4().hex[:8]}",
            "VERSION": 3,
        }
    }
    yield
    cache.delete(VERSION_CACHE_KEY)


def read_token(keys):
    """Read the token as a gateway request does, in an event loop of its own."""

    async def run():
        try:
            return await keys.current_version()
        finally:
            await keys.aclose()

    return asyncio.run(run())


def read_twice(between):
    """Read the token, run `between` outside the event loop, read it again."""
    keys = KeyCache()
    before = read_token(keys)
    between()
    return before, read_token(keys)


def test_token_changes_when_dashboard_invalidates(
    versioned_cache, django_capture_on_commit_callbacks
):
    def invalidate():
        with django_capture_on_commit_callbacks(execute=True):
            invalidate_keys()

    before, after = read_twice(invalidate)

    assert before is not None
    assert after != before


def test_token_ignores_other_cache_versions(versioned_cache):
    def write_version_1():
        cache.set(VERSION_CACHE_KEY, "other", timeout=None, version=1)

    before, after = read_twice(write_version_1)

    assert after == before
    cache.delete(VERSION_CACHE_KEY, version=1)


def test_missing_token_is_created_through_django_cache(versioned_cache):
    cache.delete(VERSION_CACHE_KEY)

    before, after = read_twice(lambda: None)

    assert cache.get(VERSION_CACHE_KEY) is not None
    assert after == before


def test_token_is_read_with_asyncio_client(versioned_cache):
    async def client_class():
        keys = KeyCache()
        try:
            await keys.current_version()
            return type(keys._redis)
        finally:
            await keys.aclose()

    assert asyncio.run(client_class()) is redis.asyncio.Redis


def test_token_reads_beyond_pool_size_wait_for_a_connection(versioned_cache):
    async def read_concurrently():
        keys = KeyCache()
        try:
            return await asyncio.gather(*(keys.current_version() for _ in range(300)))
        finally:
            await keys.aclose()

    tokens = asyncio.run(read_concurrently())

    assert len(set(tokens)) == 1
