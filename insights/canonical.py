"""The canonical usage record shared by the ingestion API and import_usage.

One record is a JSON object (or a CSV row with the same column names); see
docs/ingestion-api.md. parse_record checks one record and returns a
UsageRecord, or raises RecordError with a message that names the field.
"""

import datetime
import re
import uuid

from insights.models import ErrorType
from insights.recording import UsageRecord

# Integers are stored in 4-byte columns.
MAX_TOKENS = 2_147_483_647
MAX_MILLISECONDS = 2_147_483_647
MODEL_MAX_LENGTH = 255
TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)
KNOWN_FIELDS = frozenset(
    {
        "event_id",
        "occurred_at",
        "key_id",
        "key_sha256",
        "model",
        *TOKEN_FIELDS,
        "latency_ms",
        "ttft_ms",
        "status_code",
        "error_type",
    }
)
# How far in the future an event may be, for clocks that run a little ahead.
ALLOWED_CLOCK_SKEW = datetime.timedelta(minutes=5)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
ERROR_TYPES = frozenset(choice.value for choice in ErrorType)


class RecordError(ValueError):
    """A record is invalid; the message names the field and the fix."""


class KeyDirectory:
    """The keys of one project, looked up by id or by SHA-256 of the secret."""

    def __init__(self, project):
        from workspace.models import APIKey

        self.project = project
        self.by_id = {}
        self.by_hash = {}
        for pk, secret_hash in APIKey.objects.filter(project=project).values_list(
            "pk", "secret_hash"
        ):
            self.by_id[pk] = pk
            self.by_hash[secret_hash] = pk

    def resolve(self, data):
        if "key_id" in data and data["key_id"] not in (None, ""):
            key_id = _integer(data, "key_id", minimum=1, maximum=2**63 - 1)
            if key_id not in self.by_id:
                raise RecordError(f"key_id {key_id} is not an API key of this project.")
            return key_id
        digest = data.get("key_sha256")
        if digest not in (None, ""):
            if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
                raise RecordError("key_sha256 must be 64 hexadecimal characters.")
            key_id = self.by_hash.get(digest.lower())
            if key_id is None:
                raise RecordError("key_sha256 matches no API key of this project.")
            return key_id
        raise RecordError("Missing key: give key_id or key_sha256.")


def _integer(data, field, minimum=0, maximum=MAX_TOKENS, default=None):
    value = data.get(field, default)
    if value is None or value == "":
        if default is None and field not in TOKEN_FIELDS:
            return None
        return default
    if isinstance(value, bool):
        raise RecordError(f"{field} must be an integer, not {value!r}.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise RecordError(f"{field} must be an integer, not {value!r}.") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise RecordError(f"{field} must be an integer, not {value!r}.")
        value = int(value)
    if not isinstance(value, int):
        raise RecordError(f"{field} must be an integer, not {value!r}.")
    if value < minimum or value > maximum:
        raise RecordError(
            f"{field} must be between {minimum} and {maximum}, not {value}."
        )
    return value


def parse_timestamp(value, field="occurred_at"):
    if not isinstance(value, str) or not value.strip():
        raise RecordError(
            f"{field} is required: an ISO 8601 time with offset, e.g. 2026-03-01T12:00:00Z."
        )
    text = value.strip()
    try:
        moment = datetime.datetime.fromisoformat(
            text.replace("Z", "+00:00").replace("z", "+00:00")
        )
    except ValueError:
        raise RecordError(
            f"{field} {value!r} is not an ISO 8601 time, e.g. 2026-03-01T12:00:00Z."
        ) from None
    if moment.tzinfo is None:
        raise RecordError(f"{field} {value!r} has no UTC offset; add Z or +HH:MM.")
    return moment.astimezone(datetime.UTC)


def check_not_future(moment, field="occurred_at", now=None):
    """Raise RecordError when moment is later than now plus the clock skew."""
    now = now or datetime.datetime.now(datetime.UTC)
    if moment > now + ALLOWED_CLOCK_SKEW:
        raise RecordError(
            f"{field} {moment.isoformat()} is in the future; events may be at most "
            f"{ALLOWED_CLOCK_SKEW.seconds // 60} minutes ahead of the server clock."
        )


def parse_record(data, keys, default_event_id=None, now=None):
    """Return a UsageRecord for the canonical record `data`, or raise RecordError.

    Events later than `now` (default: the current time) plus
    ALLOWED_CLOCK_SKEW are rejected.
    """
    if not isinstance(data, dict):
        raise RecordError("Each record must be a JSON object.")
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise RecordError(
            f"Unknown field {unknown[0]!r}; see the list of record fields."
        )

    raw_id = data.get("event_id")
    if raw_id in (None, ""):
        if default_event_id is None:
            raise RecordError(
                "event_id is required: a UUID that stays the same when the event is resent."
            )
        event_id = default_event_id
    else:
        try:
            event_id = uuid.UUID(str(raw_id))
        except ValueError:
            raise RecordError(f"event_id {raw_id!r} is not a UUID.") from None

    occurred_at = parse_timestamp(data.get("occurred_at"))
    check_not_future(occurred_at, now=now)
    key_id = keys.resolve(data)
    model = data.get("model", "")
    if not isinstance(model, str) or len(model) > MODEL_MAX_LENGTH:
        raise RecordError(
            f"model must be a string of at most {MODEL_MAX_LENGTH} characters."
        )

    tokens = {field: _integer(data, field, default=0) for field in TOKEN_FIELDS}
    if tokens["cached_tokens"] + tokens["cache_write_tokens"] > tokens["prompt_tokens"]:
        raise RecordError(
            "cached_tokens plus cache_write_tokens exceed prompt_tokens; they are parts of prompt_tokens."
        )
    if tokens["reasoning_tokens"] > tokens["completion_tokens"]:
        raise RecordError(
            "reasoning_tokens exceed completion_tokens; they are part of completion_tokens."
        )

    status_code = _integer(data, "status_code", minimum=100, maximum=599, default=200)
    error_type = data.get("error_type") or ""
    if error_type not in ERROR_TYPES:
        raise RecordError(
            f"error_type {error_type!r} is not one of: {', '.join(sorted(e for e in ERROR_TYPES if e))}."
        )
    if status_code >= 400 and not error_type:
        error_type = default_error_type(status_code)

    return UsageRecord(
        project_id=keys.project.pk,
        key_id=key_id,
        occurred_at=occurred_at,
        model=model,
        latency_ms=_integer(data, "latency_ms", maximum=MAX_MILLISECONDS),
        ttft_ms=_integer(data, "ttft_ms", maximum=MAX_MILLISECONDS),
        status_code=status_code,
        error_type=error_type,
        event_id=event_id,
        **tokens,
    )


def default_error_type(status_code):
    """Return the error type implied by an HTTP status without one."""
    if status_code == 429:
        return ErrorType.RATE_LIMIT
    if status_code in (408, 504):
        return ErrorType.TIMEOUT
    if status_code in (401, 403):
        return ErrorType.AUTHENTICATION
    if status_code == 400:
        return ErrorType.BAD_REQUEST
    if status_code >= 500:
        return ErrorType.UPSTREAM_5XX
    return ErrorType.UPSTREAM_4XX
