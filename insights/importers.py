"""Readers for public LLM traces and the canonical record, for import_usage.

A reader yields TraceRow values: a time (seconds, relative to the trace's
start or absolute), token counts and the client that sent the request. The
Importer then shifts times, maps rows to keys, fills in what the trace lacks
(see SyntheticModel) and records batches through record_usage.

Formats:
- azure: Azure LLM inference trace 2023 CSV (TIMESTAMP, ContextTokens,
  GeneratedTokens); the client is the file name.
- mooncake: Mooncake FAST'25 JSONL (timestamp in ms, input_length,
  output_length, hash_ids). Cached tokens are derived from hash_ids: the
  leading 512-token prefix blocks already seen earlier in the file count as
  cached, as a prefix cache would serve them.
- servegen: a ServeGen per-client trace CSV of 600 s windows (start, rate,
  cv, fitted pattern, p1, p2) with its dataset JSON of token PMFs per 6 h.
  Requests are drawn: inter-arrival gaps from the window's fitted Gamma or
  Weibull shape (p1), with the scale set so the mean gap is 1 / (rate x
  scale); token counts from the PMFs; reasoning tokens from reason_ratio.
- ndjson / csv: the canonical record (docs/ingestion-api.md).
"""

import ast
import bisect
import csv
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import random
import uuid
from collections import Counter
from pathlib import Path

from insights.canonical import KeyDirectory, RecordError, parse_record, parse_timestamp
from insights.recording import UsageRecord, record_usage

FORMATS = ("azure", "mooncake", "servegen", "ndjson", "csv")
TRACE_FORMATS = ("azure", "mooncake", "servegen")
MOONCAKE_BLOCK_TOKENS = 512


@dataclasses.dataclass(slots=True)
class TraceRow:
    line: int
    # Seconds since the trace start, or an aware datetime for absolute times.
    time: float | datetime.datetime
    prompt_tokens: int
    completion_tokens: int
    client: str
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class SkipRow(Exception):
    """A row cannot be imported; the message is the reason in the report."""


def _int_field(value, name):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SkipRow(f"{name} is not an integer") from None
    if number < 0:
        raise SkipRow(f"{name} is negative")
    return number


def read_azure(path):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(
            reader.fieldnames or ()
        )
        if missing:
            raise ValueError(
                f"{path} is not an Azure LLM trace: missing column {sorted(missing)[0]}."
            )
        for line, row in enumerate(reader, start=2):
            try:
                # 7 fractional digits; Python parses at most 6.
                stamp = row["TIMESTAMP"].strip()
                if "." in stamp:
                    head, fraction = stamp.split(".", 1)
                    stamp = f"{head}.{fraction[:6]}"
                moment = datetime.datetime.fromisoformat(stamp).replace(
                    tzinfo=datetime.UTC
                )
            except ValueError:
                yield line, SkipRow("TIMESTAMP is not a date and time")
                continue
            try:
                yield (
                    line,
                    TraceRow(
                        line,
                        moment,
                        _int_field(row["ContextTokens"], "ContextTokens"),
                        _int_field(row["GeneratedTokens"], "GeneratedTokens"),
                        client=Path(path).stem,
                    ),
                )
            except SkipRow as error:
                yield line, error


def read_mooncake(path):
    seen_blocks = set()
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
                prompt = _int_field(data.get("input_length"), "input_length")
                completion = _int_field(data.get("output_length"), "output_length")
                offset = float(data["timestamp"]) / 1000
            except json.JSONDecodeError:
                yield line, SkipRow("line is not JSON")
                continue
            except (KeyError, TypeError, ValueError):
                yield line, SkipRow("timestamp is missing or not a number")
                continue
            except SkipRow as error:
                yield line, error
                continue
            cached_blocks = 0
            for block in data.get("hash_ids") or ():
                if block not in seen_blocks:
                    break
                cached_blocks += 1
            seen_blocks.update(data.get("hash_ids") or ())
            cached = min(cached_blocks * MOONCAKE_BLOCK_TOKENS, prompt)
            yield (
                line,
                TraceRow(
                    line,
                    offset,
                    prompt,
                    completion,
                    Path(path).stem,
                    cached_tokens=cached,
                ),
            )


class TokenSampler:
    """Draws token counts from a ServeGen dataset's PMFs, per 6 h window."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        self.tables = {}
        for start, entry in raw.items():
            tables = {
                name: self._cumulative(ast.literal_eval(text))
                for name, text in entry.items()
                if name in ("input_tokens", "output_tokens", "reason_ratio")
            }
            # Windows without requests have empty PMFs; the nearest earlier
            # window with data stands in for them.
            if (
                tables.get("input_tokens", ([], []))[0]
                and tables.get("output_tokens", ([], []))[0]
            ):
                self.tables[int(start)] = tables
        if not self.tables:
            raise ValueError(f"{path} has no window with token distributions.")
        self.windows = sorted(self.tables)

    @staticmethod
    def _cumulative(pmf):
        values = []
        cumulative = []
        total = 0.0
        for value, probability in sorted(pmf.items()):
            if probability <= 0:
                continue
            total += probability
            values.append(value)
            cumulative.append(total)
        return values, cumulative

    def _draw(self, table, rng):
        values, cumulative = table
        index = bisect.bisect_left(cumulative, rng.random() * cumulative[-1])
        return values[min(index, len(values) - 1)]

    def draw(self, offset_s, rng):
        index = max(bisect.bisect_right(self.windows, offset_s) - 1, 0)
        tables = self.tables[self.windows[index]]
        prompt = int(self._draw(tables["input_tokens"], rng))
        completion = int(self._draw(tables["output_tokens"], rng))
        reasoning = 0
        if "reason_ratio" in tables and tables["reason_ratio"][0]:
            reasoning = min(
                completion, round(completion * self._draw(tables["reason_ratio"], rng))
            )
        return prompt, completion, reasoning


def _gap_sampler(pattern, shape, mean_gap, rng):
    """Return a function drawing inter-arrival gaps with the given mean."""
    if pattern == "Gamma" and shape > 0:
        scale = mean_gap / shape
        return lambda: rng.gammavariate(shape, scale)
    if pattern == "Weibull" and shape > 0:
        scale = mean_gap / math.gamma(1 + 1 / shape)
        return lambda: rng.weibullvariate(scale, shape)
    return lambda: rng.expovariate(1 / mean_gap)


def read_servegen(path, dataset, rng, scale=1.0, window_s=600):
    """Draw requests from a ServeGen per-client trace (see the module docstring)."""
    sampler = TokenSampler(dataset)
    client = Path(path).name.removesuffix("-trace.csv")
    line_numbers = itertools.count(1)
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if len(row) < 4:
                yield line, SkipRow("window row has fewer than 4 columns")
                continue
            try:
                start = float(row[0])
                rate = float(row[1]) * scale
                shape = float(row[4]) if len(row) > 4 and row[4] else 0.0
            except ValueError:
                yield line, SkipRow("window start, rate or p1 is not a number")
                continue
            if rate <= 0:
                continue
            gap = _gap_sampler(row[3], shape, 1 / rate, rng)
            moment = start + gap()
            while moment < start + window_s:
                prompt, completion, reasoning = sampler.draw(start, rng)
                yield (
                    line,
                    TraceRow(
                        next(line_numbers),
                        moment,
                        prompt,
                        completion,
                        client,
                        reasoning_tokens=reasoning,
                    ),
                )
                moment += gap()


@dataclasses.dataclass
class SyntheticModel:
    """Latency, TTFT and failures for traces that do not record them.

    TTFT = 200 ms + 0.1 ms per prompt token (prefill at about 10,000 tokens/s)
    with log-normal noise (sigma 0.35); latency = TTFT + 25 ms per completion
    token with log-normal noise (sigma 0.25). Before a traced request, a
    failed attempt is added with probability failure_rate: 60 % rate limits
    (429), 25 % upstream errors (503), 15 % timeouts (504). Failed attempts
    carry no tokens, so token totals stay equal to the trace's own sums.
    """

    failure_rate: float = 0.02
    latency: bool = True

    def timings(self, prompt, completion, rng):
        ttft = (200 + 0.1 * prompt) * rng.lognormvariate(0, 0.35)
        latency = ttft + 25 * completion * rng.lognormvariate(0, 0.25)
        return max(1, round(latency)), max(1, round(ttft))

    def failure(self, rng):
        """Return (status_code, error_type, latency_ms) of a failed attempt, or None."""
        if rng.random() >= self.failure_rate:
            return None
        draw = rng.random()
        if draw < 0.60:
            return 429, "rate_limit", round(20 * rng.lognormvariate(0, 0.5)) + 1
        if draw < 0.85:
            return 503, "upstream_5xx", round(800 * rng.lognormvariate(0, 0.6)) + 1
        return 504, "timeout", 60_000


def stable_event_id(occurred_at, identity):
    """Return a UUID made of the time (ms, as in UUIDv7) and a hash of identity.

    Importing the same rows with the same options gives the same ids, so a
    rerun skips what is stored instead of counting it twice.
    """
    millis = int(occurred_at.timestamp() * 1000) & (2**48 - 1)
    digest = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:10], "big")
    value = (millis << 80) | digest
    value = (value & ~(0xF << 76)) | (0x8 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


SKIPPED_LINES_SHOWN = 5


@dataclasses.dataclass
class ImportReport:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    synthesized_failures: int = 0
    skipped: Counter = dataclasses.field(default_factory=Counter)
    # reason -> the first few line numbers skipped for it
    skipped_lines: dict = dataclasses.field(default_factory=dict)
    batches: int = 0

    def skip(self, line, reason):
        reason = str(reason)
        self.skipped[reason] += 1
        lines = self.skipped_lines.setdefault(reason, [])
        if len(lines) < SKIPPED_LINES_SHOWN:
            lines.append(line)

    @property
    def skipped_total(self):
        return sum(self.skipped.values())


class KeyMapper:
    """Chooses the key for each trace row.

    round-robin: rows cycle through the keys in order; client: each new client
    takes the next key and keeps it; mapping: a {client: key} dictionary.
    """

    def __init__(self, key_ids, mode="round-robin", mapping=None):
        self.key_ids = list(key_ids)
        self.mode = mode
        self.mapping = mapping or {}
        self._cycle = itertools.cycle(self.key_ids) if self.key_ids else None
        self._clients = {}

    def key_for(self, row):
        if self.mode == "mapping":
            if row.client not in self.mapping:
                raise SkipRow(f"client {row.client} is not in the mapping file")
            return self.mapping[row.client]
        if self.mode == "client":
            if row.client not in self._clients:
                self._clients[row.client] = self.key_ids[
                    len(self._clients) % len(self.key_ids)
                ]
            return self._clients[row.client]
        return next(self._cycle)


class Importer:
    """Turns trace rows or canonical records into batches for record_usage.

    A batch is up to batch_size records passed to one record_usage call,
    which is one transaction: a batch is stored whole or not at all.
    """

    def __init__(
        self,
        project,
        keys,
        model="",
        end_at=None,
        batch_size=1000,
        synthetic=None,
        seed=0,
        progress=None,
        source="",
    ):
        self.project = project
        self.keys = keys
        self.model = model
        self.end_at = end_at
        self.batch_size = batch_size
        self.synthetic = synthetic
        self.rng = random.Random(seed)
        self.progress = progress
        self.source = source
        self.report = ImportReport()
        self._pending = []

    def _flush(self):
        if not self._pending:
            return
        result = record_usage(self._pending)
        self.report.imported += result.inserted
        self.report.duplicates += result.duplicates
        self.report.batches += 1
        self._pending = []
        if self.progress:
            self.progress(self.report)

    def _add(self, record):
        self._pending.append(record)
        if len(self._pending) >= self.batch_size:
            self._flush()

    def import_trace(self, rows):
        """Import (line, TraceRow or SkipRow) pairs; return the ImportReport."""
        rows = list(rows)
        shift = self._time_shift([row for _, row in rows if isinstance(row, TraceRow)])
        for line, row in rows:
            self.report.read += 1
            if isinstance(row, SkipRow):
                self.report.skip(line, row)
                continue
            try:
                key_id = self.keys.key_for(row)
            except SkipRow as error:
                self.report.skip(line, error)
                continue
            self._add_trace_row(row, key_id, shift)
        self._flush()
        return self.report

    def _time_shift(self, rows):
        """Return a function mapping a row's time to an aware UTC datetime."""
        if not rows:
            return lambda time: time
        last = max(row.time for row in rows)
        if isinstance(last, datetime.datetime):
            offset = (self.end_at - last) if self.end_at else datetime.timedelta()
            return lambda time: time + offset
        end = self.end_at or datetime.datetime.now(datetime.UTC)
        return lambda time: end - datetime.timedelta(seconds=last - time)

    def _add_trace_row(self, row, key_id, shift):
        occurred_at = shift(row.time)
        identity = f"{self.source}:{row.client}:{row.line}:{occurred_at.isoformat()}"
        latency = ttft = None
        if self.synthetic is not None:
            failure = self.synthetic.failure(self.rng)
            if failure is not None:
                status_code, error_type, failure_latency = failure
                failed_at = occurred_at - datetime.timedelta(
                    milliseconds=failure_latency + 500
                )
                self._add(
                    UsageRecord(
                        project_id=self.project.pk,
                        key_id=key_id,
                        occurred_at=failed_at,
                        model=self.model,
                        latency_ms=failure_latency,
                        status_code=status_code,
                        error_type=error_type,
                        event_id=stable_event_id(failed_at, identity + ":failed"),
                    )
                )
                self.report.synthesized_failures += 1
            if self.synthetic.latency:
                latency, ttft = self.synthetic.timings(
                    row.prompt_tokens, row.completion_tokens, self.rng
                )
        self._add(
            UsageRecord(
                project_id=self.project.pk,
                key_id=key_id,
                occurred_at=occurred_at,
                model=self.model,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                cached_tokens=row.cached_tokens,
                reasoning_tokens=row.reasoning_tokens,
                latency_ms=latency,
                ttft_ms=ttft,
                event_id=stable_event_id(occurred_at, identity),
            )
        )

    def import_canonical(self, items):
        """Import (line, dict or SkipRow) canonical records; return the report.

        A record without event_id gets one derived from the source, the line
        and the record's content, so importing the file again adds nothing.
        """
        directory = KeyDirectory(self.project)
        records = []
        for line, data in items:
            self.report.read += 1
            if isinstance(data, SkipRow):
                self.report.skip(line, data)
                continue
            if self.model and isinstance(data, dict) and not data.get("model"):
                data = {**data, "model": self.model}
            try:
                record = parse_record(
                    data, directory, default_event_id=self._default_id(line, data)
                )
            except RecordError as error:
                self.report.skip(line, error)
                continue
            records.append(record)
        if self.end_at is not None and records:
            offset = self.end_at - max(record.occurred_at for record in records)
            for record in records:
                record.occurred_at += offset
        for record in records:
            self._add(record)
        self._flush()
        return self.report

    def _default_id(self, line, data):
        try:
            moment = parse_timestamp(data.get("occurred_at"))
        except (RecordError, AttributeError):
            moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        content = json.dumps(data, sort_keys=True, default=str)
        return stable_event_id(moment, f"{self.source}:{line}:{content}")


def read_ndjson(path):
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as error:
                yield line, SkipRow(f"not JSON ({error.msg})")


def read_canonical_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            yield (
                line,
                {name: value for name, value in row.items() if value not in (None, "")},
            )
