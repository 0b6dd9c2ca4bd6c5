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

Expiry needs no invalidation: each entry keeps expires_at and is checked
against the clock on every request.
"""

import dataclasses
import datetime
import logging
import uuid

from asgiref.sync import sync_to_async
from django.core.cache import cache
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

    def current_version(self):
        # NOTE: Django's cache API is synchronous, so with Redis this GET
        # blocks the event loop for one round trip (well under a millisecond
        # on a local network).
        version = cache.get(VERSION_CACHE_KEY)
        if version is None:
            # The token is missing after a cache restart or eviction; any new
            # value differs from what processes loaded under, so they reload.
            cache.add(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
            version = cache.get(VERSION_CACHE_KEY)
        return version

    async def resolve(self, secret):
        """Return the ResolvedKey for a presented secret, or None if unknown."""
        secret_hash = hash_secret(secret)
        version = self.current_version()
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
