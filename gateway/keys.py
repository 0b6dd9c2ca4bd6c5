"""Key resolution for the gateway without a database round trip per request.

Each worker process keeps the keys it has seen in memory, together with the
upstream credential it needs. Every change that could alter a lookup (a key
saved or deleted, a mapping attached or detached, a provider, proxy or model
edited) replaces one shared version token in Django's cache. Each request
reads that token, one cache GET, and drops the process's entries when it
differs from the token the entries were loaded under. A revocation therefore
applies on the next request in every process that shares the cache.

Only the token lives in the shared cache. Credentials and key details stay in
process memory. With the local-memory cache, the token is per process, so the
dashboard and the gateway must run in one process (one worker) for changes
to apply at once; with CACHE_URL=redis://... any number of workers agree.

With Redis, the gateway reads the token with redis.asyncio, so the GET
does not block the event loop. It reads the key that Django's cache builds
(make_key: KEY_PREFIX, VERSION, KEY_FUNCTION) on the first server of the
cache's LOCATION, the one Django writes to, and compares the stored bytes
as an opaque token. Writes still go through Django's cache.

Expiry needs no invalidation: each entry keeps expires_at and is checked
against the clock on every request.
"""

import asyncio
import dataclasses
import datetime
import logging
import re
import uuid

import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import close_old_connections, transaction
from django.utils import timezone

from genai_apps.models import KeyMapping
from workspace.models import APIKey, hash_secret

logger = logging.getLogger(__name__)

VERSION_CACHE_KEY = "gateway:keys-version"


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedKey:
    """An API key with everything the gateway needs to forward a call."""

    key_id: int
    prefix: str
    project_id: int
    application_id: int | None
    revoked: bool
    expires_at: datetime.datetime | None
    # The context path the key was issued for: its provider's or its proxy's.
    context_path: str
    provider_id: int
    proxy_id: int | None
    vendor: str
    base_url: str
    api_version: str
    credential: str = dataclasses.field(repr=False)
    allowed_models: tuple = ()
    max_tokens: int | None = None

    def is_expired(self, now):
        return self.expires_at is not None and self.expires_at <= now


class KeyCache:
    """Per-process map from secret hash to ResolvedKey, checked per request."""

    def __init__(self):
        self.entries = {}
        self.version = None
        self._redis = None
        self._redis_loop = None

    async def current_version(self):
        version = await self._read_version()
        if version is None:
            # The token is missing after a cache restart or eviction; any new
            # value differs from what processes loaded under, so they reload.
            await cache.aadd(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
            version = await self._read_version()
        return version

    async def _read_version(self):
        client = self._redis_client()
        if client is None:
            # The local-memory cache does no I/O.
            return cache.get(VERSION_CACHE_KEY)
        return await client.get(cache.make_key(VERSION_CACHE_KEY))

    def _redis_client(self):
        """Return a redis.asyncio client for the cache's first server, or None."""
        if not isinstance(caches[DEFAULT_CACHE_ALIAS], RedisCache):
            return None
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            # A client's connections belong to the loop that opened them.
            self._redis = redis.asyncio.Redis.from_pool(version_read_pool())
            self._redis_loop = loop
        return self._redis

    async def aclose(self):
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def resolve(self, secret):
        """Return the ResolvedKey for a presented secret, or None if unknown."""
        secret_hash = hash_secret(secret)
        version = await self.current_version()
        # Another request may have read a different token during the await.
        # A mismatch only empties the entries, so the worst case is one reload.
        if version != self.version:
            self.entries = {}
            self.version = version
        try:
            return self.entries[secret_hash]
        except KeyError:
            pass
        resolved = await sync_to_async(load_key)(secret_hash)
        # Store the entry only if no change happened while it was loaded;
        # otherwise the next request loads it again under the new token.
        if self.version == version:
            self.entries[secret_hash] = resolved
        return resolved


def version_read_pool():
    """Return a connection pool for the token reads of one worker.

    The default pool raises "Too many connections" beyond 100 requests in
    flight; this one makes a request wait up to 5 seconds for a connection.
    Each GET holds its connection for one round trip, so 50 are plenty.
    Timeouts turn a hung Redis into a 503 rather than a hung request;
    options in the URL take precedence.
    """
    return redis.asyncio.BlockingConnectionPool.from_url(
        primary_cache_server(),
        max_connections=50,
        timeout=5,
        socket_connect_timeout=5,
        socket_timeout=5,
    )


def primary_cache_server():
    """Return the URL of the first server in the default cache's LOCATION.

    Django's RedisCache writes to that server and splits LOCATION the same
    way. Connection options come from the URL; the cache's OPTIONS are not
    applied to this client.
    """
    location = settings.CACHES[DEFAULT_CACHE_ALIAS]["LOCATION"]
    servers = re.split("[;,]", location) if isinstance(location, str) else location
    return servers[0]


def load_key(secret_hash):
    close_old_connections()
    key = (
        APIKey.objects.select_related("provider", "proxy__provider")
        .filter(secret_hash=secret_hash)
        .first()
    )
    if key is None:
        return None
    mapping = KeyMapping.objects.filter(key_id=key.pk).values("application_id").first()
    proxy = key.proxy
    provider = proxy.provider if proxy else key.provider
    return ResolvedKey(
        key_id=key.pk,
        prefix=key.prefix,
        project_id=key.project_id,
        application_id=mapping["application_id"] if mapping else None,
        revoked=key.revoked_at is not None,
        expires_at=key.expires_at,
        context_path=(proxy or provider).context_path,
        provider_id=provider.pk,
        proxy_id=proxy.pk if proxy else None,
        vendor=provider.vendor,
        base_url=provider.base_url.rstrip("/"),
        api_version=provider.api_version,
        credential=provider.get_credential(),
        allowed_models=tuple(proxy.allowed_models or ()) if proxy else (),
        max_tokens=proxy.max_tokens if proxy else None,
    )


def invalidate_keys(**kwargs):
    """Replace the shared version token once the current transaction commits."""
    transaction.on_commit(_replace_version, robust=True)


def _replace_version():
    cache.set(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
    logger.debug("Gateway key cache version replaced at %s", timezone.now())


key_cache = KeyCache()
