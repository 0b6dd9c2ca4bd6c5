"""The one way usage enters the system.

The gateway, the ingestion API and the importers build UsageRecord values and
pass them to record_usage, which stores the new events and adds them to the
rollups in one transaction. It is idempotent on event_id.

Token counts follow the OpenAI usage object: cached_tokens and
cache_write_tokens are parts of prompt_tokens, reasoning_tokens is part of
completion_tokens. Cost, in integer nano-dollars:

    (prompt - cached - cache_write) x input price
    + cached x cached input price
    + cache_write x cache write price
    + completion x output price

with prices in USD per million tokens from workspace.ProviderModel. The sum is
computed exactly in units of 1e-12 USD and rounded half up to a nano-dollar
once per event. A price that the event needs (a token count above zero) but
that the catalogue leaves empty makes the cost unknown (NULL), never $0. An
event with no tokens of any kind (a request refused before reaching a model)
costs exactly 0, whatever the model.

record_usage also moves each key's last_used_at to the newest new event of
the batch, so every way in (gateway, ingestion API, importers, demo data)
keeps it current.
"""

import dataclasses
import datetime
import os
import time
import uuid
from decimal import Decimal

from django.db import connection, transaction

from genai_apps.models import KeyMapping
from insights import bulk, rollups, rollups_postgresql
from insights.models import UsageEvent, UsagePrice
from workspace.models import APIKey, AppProxy, ProviderModel

# Prices have 6 decimal places: price x 1e6 is an integer number of
# 1e-12 USD per token, and 1000 of those make a nano-dollar.
_PRICE_SCALE = Decimal(1_000_000)
_PICO_PER_NANO = 1000


def new_event_id():
    """Return a time-ordered UUID (the UUIDv7 layout of RFC 9562).

    Ids that grow with time append to the primary key index instead of
    splitting random pages, which keeps the index dense.
    """
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value &= ~(0xF << 76)
    value |= 0x7 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return uuid.UUID(int=value)


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
    event_id: uuid.UUID = dataclasses.field(default_factory=new_event_id)


@dataclasses.dataclass(frozen=True)
class RecordResult:
    """Outcome of record_usage: the number of new events and the skipped ids."""

    inserted: int
    duplicate_ids: frozenset

    @property
    def duplicates(self):
        return len(self.duplicate_ids)


@dataclasses.dataclass(frozen=True)
class Prices:
    """USD per million tokens; None where the catalogue has no price."""

    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    cache_write: Decimal | None

    @property
    def signature(self):
        return "|".join(
            "" if p is None else format(p.quantize(Decimal("0.000001")), "f")
            for p in (self.input, self.cached_input, self.output, self.cache_write)
        )

    @property
    def per_token(self):
        """Return (input, cached input, cache write, output) in 1e-12 USD per token.

        Each is an int, or None where the catalogue has no price.
        """
        return tuple(
            None if p is None else int(p * _PRICE_SCALE)
            for p in (self.input, self.cached_input, self.cache_write, self.output)
        )


def compute_cost_nanousd(prices, prompt, completion, cached=0, cache_write=0):
    """Return the cost in nano-dollars, or None when a needed price is unknown."""
    per_token = None if prices is None else prices.per_token
    return _cost_nanousd(per_token, prompt, completion, cached, cache_write)


def _cost_nanousd(per_token, prompt, completion, cached, cache_write):
    """Return the cost of one event from Prices.per_token, in integer arithmetic."""
    if not (prompt or completion or cached or cache_write):
        # Nothing was used (the request never reached a model): free.
        return 0
    if per_token is None:
        return None
    input_price, cached_price, cache_write_price, output_price = per_token
    pico = 0
    uncached = max(prompt - cached - cache_write, 0)
    if uncached:
        if input_price is None:
            return None
        pico += uncached * input_price
    if cached:
        if cached_price is None:
            return None
        pico += cached * cached_price
    if cache_write:
        if cache_write_price is None:
            return None
        pico += cache_write * cache_write_price
    if completion:
        if output_price is None:
            return None
        pico += completion * output_price
    # Round half up to whole nano-dollars; costs are never negative.
    return (pico + _PICO_PER_NANO // 2) // _PICO_PER_NANO


def _key_details(key_ids):
    """Return {key_id: (provider_id, proxy_id, pricing provider, application_id)}.

    The pricing provider is the key's provider or its proxy's; application_id
    is the key's current mapping, or None. Written as SQL because the ORM
    spends milliseconds preparing an IN list of a few hundred ids.
    """
    if not key_ids:
        return {}
    quote = connection.ops.quote_name
    if connection.vendor == "postgresql":
        condition, params = "= ANY(%s)", [list(key_ids)]
    else:
        condition, params = f"IN ({', '.join(['%s'] * len(key_ids))})", list(key_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.id, k.provider_id, k.proxy_id, p.provider_id, m.application_id "
            f"FROM {quote(APIKey._meta.db_table)} AS k "
            f"LEFT JOIN {quote(AppProxy._meta.db_table)} AS p ON p.id = k.proxy_id "
            f"LEFT JOIN {quote(KeyMapping._meta.db_table)} AS m ON m.key_id = k.id "
            f"WHERE k.id {condition}",
            params,
        )
        return {
            pk: (provider, proxy, provider or proxy_provider, application)
            for pk, provider, proxy, proxy_provider, application in cursor.fetchall()
        }


def _proxy_providers(proxy_ids):
    return dict(
        AppProxy.objects.filter(pk__in=proxy_ids).values_list("pk", "provider_id")
    )


def _price_table(pairs):
    """Return {(provider_id, model): Prices} for the catalogue entries in pairs."""
    if not pairs:
        return {}
    provider_ids = {provider for provider, _ in pairs}
    names = {name for _, name in pairs}
    table = {}
    for entry in ProviderModel.objects.filter(
        provider_id__in=provider_ids, name__in=names
    ):
        table[(entry.provider_id, entry.name)] = Prices(
            entry.input_price,
            entry.cached_input_price,
            entry.output_price,
            entry.cache_write_price,
        )
    return table


def _price_ids(prices):
    """Return {signature: UsagePrice id}, creating the missing price rows."""
    by_signature = {p.signature: p for p in prices}
    if not by_signature:
        return {}
    UsagePrice.objects.bulk_create(
        [
            UsagePrice(
                signature=signature,
                input_price=p.input,
                cached_input_price=p.cached_input,
                output_price=p.output,
                cache_write_price=p.cache_write,
            )
            for signature, p in by_signature.items()
        ],
        ignore_conflicts=True,
    )
    return dict(
        UsagePrice.objects.filter(signature__in=by_signature).values_list(
            "signature", "pk"
        )
    )


_INSERT_COLUMNS = (
    "event_id",
    "occurred_at",
    "project_id",
    "key_id",
    "application_id",
    "provider_id",
    "proxy_id",
    "cost_nanousd",
    "price_id",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "latency_ms",
    "ttft_ms",
    "status_code",
    "error_type",
    "model",
)


def _insert_events(rows):
    """Insert event rows; return the set of event ids that were new."""
    returned = bulk.insert(
        UsageEvent._meta.db_table,
        _INSERT_COLUMNS,
        rows,
        suffix="ON CONFLICT (event_id) DO NOTHING",
        returning="event_id",
    )
    return {
        value if isinstance(value, uuid.UUID) else uuid.UUID(value)
        for value in returned
    }


def _advance_last_used(rows, inserted):
    """Move each key's last_used_at to its newest new event, never backwards.

    One UPDATE for the whole batch, a CASE on the key id, written as SQL
    because a Case/When expression per key costs Django milliseconds to
    compile per batch. update() and raw SQL send no post_save signal, so
    caches that listen for key changes (the gateway's) stay valid.
    """
    newest = {}
    for row in rows:
        key_id, occurred_at = row[3], row[1]
        if key_id is not None and row[0] in inserted:
            if key_id not in newest or occurred_at > newest[key_id]:
                newest[key_id] = occurred_at
    if not newest:
        return
    table = connection.ops.quote_name(APIKey._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    whens = " ".join(["WHEN %s THEN %s"] * len(newest))
    pairs = [value for pk, at in newest.items() for value in (pk, adapt(at))]
    ids = ", ".join(["%s"] * len(newest))
    latest = f"(CASE id {whens} END)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_used_at = {latest} WHERE id IN ({ids}) "
            f"AND (last_used_at IS NULL OR last_used_at < {latest})",
            [*pairs, *newest, *pairs],
        )


def _store_with_values(rows):
    """Store event rows and return the ids that were stored already.

    The new events are added to the rollups. This is the portable path:
    events are inserted with VALUES and summed in Python.
    """
    inserted = _insert_events(rows)
    new_rows = [
        (
            row[1],
            row[2],
            row[4],
            row[3],
            row[18],
            row[16],
            row[17],
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[7],
            row[14],
            row[15],
        )
        for row in rows
        if row[0] in inserted
    ]
    rollups.write(rollups.aggregate(new_rows))
    _advance_last_used(rows, inserted)
    return {row[0] for row in rows if row[0] not in inserted}


def _store_with_copy(rows):
    """Store event rows on PostgreSQL and return the ids that were stored already.

    The rows are copied into a temporary table, and SQL does the rest: it
    inserts them, deletes the already-stored ones from the temporary table
    and sums what is left into the rollups. Python never loops over the
    events again. The events are inserted in event_id order, so two writers
    of overlapping batches wait for each other instead of deadlocking.
    """
    table = UsageEvent._meta.db_table
    columns = ", ".join(_INSERT_COLUMNS)
    stage = bulk.copy_to_stage(table, _INSERT_COLUMNS, rows)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH inserted AS (INSERT INTO {table} ({columns}) "
            f"SELECT {columns} FROM {stage} ORDER BY event_id "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id) "
            f"DELETE FROM {stage} WHERE event_id NOT IN (SELECT event_id FROM inserted) "
            "RETURNING event_id"
        )
        duplicates = {row[0] for row in cursor.fetchall()}
        if len(duplicates) < len(rows):
            rollups_postgresql.write_staged(cursor, stage)
            _advance_last_used_from_stage(cursor, stage)
    return duplicates


def _advance_last_used_from_stage(cursor, stage):
    """Move each key's last_used_at to its newest event in `stage`, never backwards.

    The keys are locked in id order before the update, so concurrent writers
    cannot deadlock on them. Raw SQL sends no post_save signal, so caches
    that listen for key changes (the gateway's) stay valid.
    """
    table = connection.ops.quote_name(APIKey._meta.db_table)
    cursor.execute(
        "WITH newest AS ("
        f"SELECT key_id, max(occurred_at) AS at FROM {stage} "
        "WHERE key_id IS NOT NULL GROUP BY key_id"
        "), locked AS ("
        f"SELECT k.id, newest.at FROM {table} AS k JOIN newest ON newest.key_id = k.id "
        "WHERE k.last_used_at IS NULL OR k.last_used_at < newest.at "
        "ORDER BY k.id FOR NO KEY UPDATE OF k"
        f") UPDATE {table} AS k SET last_used_at = locked.at FROM locked "
        "WHERE k.id = locked.id AND (k.last_used_at IS NULL OR k.last_used_at < locked.at)"
    )


def _event_rows(records):
    """Return the records as event rows (tuples in _INSERT_COLUMNS order).

    Keys, mappings and prices are read once per batch, and each event is
    costed with integer prices.
    """
    keys = _key_details({r.key_id for r in records if r.key_id})
    proxies = _proxy_providers(
        {r.proxy_id for r in records if r.proxy_id and not r.provider_id}
    )

    prepared = []
    for r in records:
        provider_id, proxy_id = r.provider_id, r.proxy_id
        pricing_provider = provider_id or proxies.get(proxy_id)
        key = keys.get(r.key_id)
        if provider_id is None and proxy_id is None and key is not None:
            provider_id, proxy_id, pricing_provider = key[:3]
        application_id = r.application_id
        if application_id is None and r.resolve_application and key is not None:
            application_id = key[3]
        prepared.append((r, provider_id, proxy_id, pricing_provider, application_id))

    price_table = _price_table({(p[3], p[0].model) for p in prepared if p[3]})
    price_ids = _price_ids(price_table.values())
    # {(provider, model): (Prices.per_token, UsagePrice id)}
    pricing = {
        pair: (prices.per_token, price_ids[prices.signature])
        for pair, prices in price_table.items()
    }
    unpriced = (None, None)

    rows = []
    append = rows.append
    for r, provider_id, proxy_id, pricing_provider, application_id in prepared:
        per_token, price_id = pricing.get((pricing_provider, r.model), unpriced)
        append(
            (
                r.event_id,
                r.occurred_at,
                r.project_id,
                r.key_id,
                application_id,
                provider_id,
                proxy_id,
                _cost_nanousd(
                    per_token,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.cached_tokens,
                    r.cache_write_tokens,
                ),
                price_id,
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_tokens,
                r.reasoning_tokens,
                r.cache_write_tokens,
                r.latency_ms,
                r.ttft_ms,
                r.status_code,
                r.error_type or "",
                r.model or "",
            )
        )
    return rows


@transaction.atomic
def record_usage(records):
    """Store the records and add them to the rollups; return a RecordResult.

    An event whose event_id is already stored, or repeated in `records`, is
    skipped and listed in duplicate_ids. Runs in one transaction: either all
    new events and their rollup increments are stored, or none.
    """
    unique = {}
    repeated = set()
    for record in records:
        if record.event_id in unique:
            repeated.add(record.event_id)
        else:
            unique[record.event_id] = record
    if not unique:
        return RecordResult(0, frozenset(repeated))

    rows = _event_rows(list(unique.values()))
    if connection.vendor == "postgresql":
        duplicates = _store_with_copy(rows)
    else:
        duplicates = _store_with_values(rows)
    return RecordResult(len(rows) - len(duplicates), frozenset(repeated | duplicates))
