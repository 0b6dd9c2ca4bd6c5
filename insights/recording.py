"""The one way usage enters the system.

The gateway, the ingestion API and the importers build UsageRecord values and
pass them to record_usage. It is idempotent on event_id.
"""

import dataclasses
import datetime
import uuid

from django.db import transaction

from genai_apps.models import KeyMapping
from insights.models import UsageEvent


@dataclasses.dataclass(slots=True)
class UsageRecord:
    project_id: int
    key_id: int | None
    occurred_at: datetime.datetime
    model: str = ""
    provider_id: int | None = None
    proxy_id: int | None = None
    # None means: resolve from the key's current mapping at recording time.
    application_id: int | None = None
    resolve_application: bool = True
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: int | None = None
    ttft_ms: int | None = None
    status_code: int = 200
    error_type: str = ""
    event_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@transaction.atomic
def record_usage(records):
    """Store the records; returns the number of new events.

    An event whose event_id is already stored is skipped.
    """
    records = list(records)
    unresolved = [
        r.key_id
        for r in records
        if r.application_id is None and r.resolve_application and r.key_id
    ]
    owners = dict(
        KeyMapping.objects.filter(key_id__in=unresolved).values_list(
            "key_id", "application_id"
        )
    )
    events = [
        UsageEvent(
            event_id=r.event_id,
            occurred_at=r.occurred_at,
            project_id=r.project_id,
            key_id=r.key_id,
            application_id=r.application_id or owners.get(r.key_id),
            provider_id=r.provider_id,
            proxy_id=r.proxy_id,
            model=r.model,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached_tokens=r.cached_tokens,
            reasoning_tokens=r.reasoning_tokens,
            cache_write_tokens=r.cache_write_tokens,
            latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms,
            status_code=r.status_code,
            error_type=r.error_type,
        )
        for r in records
    ]
    before = UsageEvent.objects.count()
    UsageEvent.objects.bulk_create(events, ignore_conflicts=True)
    return UsageEvent.objects.count() - before
