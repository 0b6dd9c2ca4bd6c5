"""CSV export of the insights pages and of raw usage events.

Cells that a spreadsheet would evaluate as a formula (starting with =, +, -,
@, a tab or a carriage return, also after leading spaces) are prefixed with a
single quote, as OWASP's CSV injection guidance recommends. Files are UTF-8
with a byte order mark so spreadsheet programs detect the encoding.
"""

import csv
import itertools

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from insights.models import UsageEvent, nanousd_to_usd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
BOM = "\ufeff"
# Lines per chunk sent under ASGI: each chunk costs one hop to the thread that
# owns the database connection.
ASYNC_CHUNK_LINES = 2000


def safe_cell(value):
    """Return value with a leading quote if a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS) or value.lstrip(" \t\r\n").startswith(
        FORMULA_STARTS
    ):
        return "'" + value
    return value


class _Echo:
    def write(self, value):
        return value


def stream_csv(filename, header, rows, asynchronous=False):
    """Return a streaming CSV response of rows, any iterable of sequences.

    Set asynchronous for a request served under ASGI: Django's ASGI handler
    reads a synchronous iterator to its end before it sends a byte, which
    would hold a whole export in memory.
    """
    writer = csv.writer(_Echo())

    def lines():
        yield BOM + writer.writerow(header)
        for row in rows:
            yield writer.writerow([safe_cell(cell) for cell in row])

    content = _async_chunks(lines()) if asynchronous else lines()
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _next_chunk(lines):
    return "".join(itertools.islice(lines, ASYNC_CHUNK_LINES))


async def _async_chunks(lines):
    """Yield lines joined in chunks, read in the thread of the request's view.

    thread_sensitive keeps every read on the thread whose database
    connection the view used, as the server-side cursor of an event export
    requires.
    """
    next_chunk = sync_to_async(_next_chunk, thread_sensitive=True)
    while chunk := await next_chunk(lines):
        yield chunk


def _cost(value):
    cost = nanousd_to_usd(value)
    return "" if cost is None else format(cost, "f")


SERIES_HEADER = [
    "bucket",
    "requests",
    "errors",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_requests",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
]


def series_rows(report):
    for row in report.series_rows:
        t = row["totals"]
        yield [
            row["bucket"],
            t.requests,
            t.errors,
            t.prompt_tokens,
            t.cached_tokens,
            t.cache_write_tokens,
            t.completion_tokens,
            t.reasoning_tokens,
            "" if t.cost is None else format(t.cost, "f"),
            t.unpriced_requests,
            _round(row["latency_p50"]),
            _round(row["latency_p95"]),
            _round(row["ttft_p50"]),
        ]


def _round(value):
    return "" if value is None else round(value)


BREAKDOWN_HEADER = [
    "name",
    "requests",
    "errors",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_requests",
]
# Key names are not unique; the prefix tells keys of one name apart.
KEY_BREAKDOWN_HEADER = ["name", "prefix", *BREAKDOWN_HEADER[1:]]


def breakdown_rows(rows, with_prefix=False):
    """Yield the rows of a breakdown table; cost_usd is empty when unknown.

    cost_usd sums the priced requests; unpriced_requests counts the others,
    the "+ unknown" of the page.
    """
    for row in rows:
        cost = row["cost"]
        yield [
            row["name"],
            *([row["prefix"]] if with_prefix else []),
            row["requests"],
            row["errors"],
            row["prompt_tokens"],
            row["cached_tokens"],
            row["completion_tokens"],
            row["reasoning_tokens"],
            "" if cost is None else format(cost, "f"),
            row["unpriced_requests"],
        ]


EVENT_HEADER = [
    "event_id",
    "occurred_at",
    "application",
    "key_name",
    "key_prefix",
    "model",
    "status_code",
    "error_type",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
]


def event_rows(period, project_id, application_id, key_names, application_names):
    """Yield the raw events of a period, streamed from the database in chunks.

    occurred_at is ISO 8601 in the period's timezone, with its offset.
    """
    start, end, tz = period.start, period.end, period.tz
    events = UsageEvent.objects.filter(
        project_id=project_id, occurred_at__gte=start, occurred_at__lt=end
    )
    if application_id is not None:
        events = events.filter(application_id=application_id)
    columns = (
        "event_id",
        "occurred_at",
        "application_id",
        "key_id",
        "model",
        "status_code",
        "error_type",
        "prompt_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "latency_ms",
        "ttft_ms",
        "cost_nanousd",
    )
    for row in (
        events.order_by("occurred_at").values_list(*columns).iterator(chunk_size=5000)
    ):
        key_name, key_prefix = key_names.get(row[3], ("", ""))[:2]
        yield [
            str(row[0]),
            row[1].astimezone(tz).isoformat(),
            application_names.get(row[2], ("", False))[0] if row[2] else "",
            key_name,
            key_prefix,
            *row[4:14],
            _cost(row[14]),
        ]
