"""The ingestion API: external gateways POST usage events in batches.

Authentication is a per-project ingestion token (Authorization: Bearer).
The body is a JSON array of canonical records, a JSON object {"events": [...]},
or NDJSON (one record per line). Each record is checked on its own: good
records are stored, and the response lists every record as accepted,
duplicate or rejected with the reason. Documented in docs/ingestion-api.md.
"""

import json
import logging

from django.db import DatabaseError
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from insights.canonical import KeyDirectory, RecordError, parse_record
from insights.recording import record_usage
from insights.tokens import authenticate

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_EVENTS = 5000
# Clocks of external gateways may run a little ahead of ours.
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def _error(status, message, code):
    return JsonResponse({"error": {"message": message, "code": code}}, status=status)


class BodyError(Exception):
    def __init__(self, status, message, code):
        super().__init__(message)
        self.status = status
        self.code = code


def _bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _read_items(request):
    """Return the list of records in the body, or raise BodyError."""
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyError(
            413,
            f"The body is larger than {MAX_BODY_BYTES} bytes; send smaller batches.",
            "body_too_large",
        )
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(
            413,
            f"The body is larger than {MAX_BODY_BYTES} bytes; send smaller batches.",
            "body_too_large",
        )
    content_type = request.content_type or ""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(
            400, "The body is not valid UTF-8.", "invalid_encoding"
        ) from None

    if content_type in NDJSON_TYPES:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as error:
                # A line that is not JSON becomes a rejected record, not a failed batch.
                items.append(RecordError(f"Line {number} is not JSON: {error.msg}."))
    elif content_type in JSON_TYPES:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise BodyError(
                400,
                f"The body is not JSON: {error.msg} at line {error.lineno} column {error.colno}.",
                "invalid_json",
            ) from None
        if isinstance(data, dict) and isinstance(data.get("events"), list):
            data = data["events"]
        if not isinstance(data, list):
            raise BodyError(
                400,
                'Send a JSON array of events or an object {"events": [...]}.',
                "invalid_body",
            )
        items = data
    else:
        raise BodyError(
            415,
            "Use Content-Type application/json (an array of events) or application/x-ndjson (one event per line).",
            "unsupported_media_type",
        )
    if not items:
        raise BodyError(400, "The batch contains no events.", "empty_batch")
    if len(items) > MAX_EVENTS:
        raise BodyError(
            413,
            f"A batch may contain at most {MAX_EVENTS} events, not {len(items)}.",
            "too_many_events",
        )
    return items


@csrf_exempt
def ingest_events(request):
    """POST /api/v1/usage/events: store a batch of usage events."""
    if request.method != "POST":
        response = _error(405, "Use POST to send usage events.", "method_not_allowed")
        response["Allow"] = "POST"
        return response
    token = authenticate(_bearer_token(request))
    if token is None:
        return _error(
            401,
            "Missing or invalid ingestion token; send Authorization: Bearer <token>.",
            "invalid_token",
        )
    try:
        items = _read_items(request)
    except BodyError as error:
        return _error(error.status, str(error), error.code)

    keys = KeyDirectory(token.project)
    now = timezone.now()
    results = []
    records = []
    seen = set()
    for index, item in enumerate(items):
        try:
            if isinstance(item, RecordError):
                raise item
            record = parse_record(item, keys, now=now)
        except RecordError as error:
            results.append({"index": index, "status": "rejected", "error": str(error)})
            continue
        result = {
            "index": index,
            "event_id": str(record.event_id),
            "status": "accepted",
        }
        if record.event_id in seen:
            result["status"] = "duplicate"
        else:
            seen.add(record.event_id)
            records.append(record)
        results.append(result)

    try:
        stored = record_usage(records) if records else None
    except DatabaseError:
        logger.exception(
            "Storing %d ingested events for project %s failed",
            len(records),
            token.project_id,
        )
        return _error(
            503,
            "The events could not be stored; nothing was saved. Retry the batch later.",
            "storage_unavailable",
        )
    if stored is not None:
        duplicate_ids = {str(event_id) for event_id in stored.duplicate_ids}
        for result in results:
            if result["status"] == "accepted" and result["event_id"] in duplicate_ids:
                result["status"] = "duplicate"

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result["status"]] += 1
    return JsonResponse(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": results,
        }
    )
