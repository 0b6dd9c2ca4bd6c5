"""Token counts read from upstream responses, streamed or not.

OpenAI usage maps as it is: prompt_tokens, completion_tokens,
prompt_tokens_details.cached_tokens (part of the prompt) and
completion_tokens_details.reasoning_tokens (part of the completion).

Anthropic reports input_tokens without the cache reads and writes, so the
gateway stores prompt = input_tokens + cache_read_input_tokens +
cache_creation_input_tokens, cached = cache_read_input_tokens and
cache_write = cache_creation_input_tokens. Then cached is part of prompt as
for OpenAI, and prompt - cached - cache_write is the uncached input.

Streams report running or final totals, never increments, so each usage
object replaces the previous one instead of being added to it.
"""

import dataclasses
import json
import re

# Matches a usage object in an SSE event, but not "usage": null.
USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


@dataclasses.dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    seen: bool = False


def _int(value):
    return value if isinstance(value, int) and value >= 0 else 0


def read_openai_usage(usage, into):
    """Copy an OpenAI usage object into a Usage, replacing earlier totals."""
    if not isinstance(usage, dict):
        return
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    into.prompt_tokens = _int(usage.get("prompt_tokens"))
    into.completion_tokens = _int(usage.get("completion_tokens"))
    into.cached_tokens = _int(prompt_details.get("cached_tokens"))
    into.reasoning_tokens = _int(completion_details.get("reasoning_tokens"))
    into.seen = True


# Anthropic's cumulative counters; a message_delta may carry any subset.
ANTHROPIC_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


class AnthropicUsage:
    """Anthropic counters from message_start and message_delta events."""

    def __init__(self):
        self.counters = dict.fromkeys(ANTHROPIC_FIELDS, 0)
        self.seen = False

    def update(self, usage):
        if not isinstance(usage, dict):
            return
        for field in ANTHROPIC_FIELDS:
            if isinstance(usage.get(field), int):
                self.counters[field] = _int(usage[field])
        self.seen = True

    def to_usage(self):
        c = self.counters
        return Usage(
            prompt_tokens=c["input_tokens"]
            + c["cache_read_input_tokens"]
            + c["cache_creation_input_tokens"],
            completion_tokens=c["output_tokens"],
            cached_tokens=c["cache_read_input_tokens"],
            cache_write_tokens=c["cache_creation_input_tokens"],
            seen=self.seen,
        )


def usage_from_body(body, anthropic):
    """Read the usage of a non-streamed JSON response body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return Usage()
    if not isinstance(payload, dict):
        return Usage()
    if anthropic and payload.get("type") == "message":
        counters = AnthropicUsage()
        counters.update(payload.get("usage"))
        return counters.to_usage()
    usage = Usage()
    read_openai_usage(payload.get("usage"), usage)
    return usage


class SSEUsageReader:
    """Split an upstream SSE byte stream into events and read their usage.

    feed() returns the bytes to pass to the client: whole events only, in the
    order they arrived, without the usage-only chunk when the client did not
    ask for usage.
    """

    def __init__(self, anthropic, strip_usage_chunk):
        self.anthropic = anthropic
        self.strip_usage_chunk = strip_usage_chunk
        self.buffer = b""
        self.openai = Usage()
        self.anthropic_usage = AnthropicUsage()

    def feed(self, data):
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        self.buffer += data
        end = self.buffer.rfind(b"\n\n")
        if end < 0:
            return b""
        complete, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
        if not USAGE_OBJECT.search(complete):
            return complete
        return b"".join(self._filter(event) for event in complete.split(b"\n\n")[:-1])

    def flush(self):
        """Return what is left of the stream when it ends."""
        rest, self.buffer = self.buffer, b""
        return rest

    def _filter(self, event):
        if not USAGE_OBJECT.search(event):
            return event + b"\n\n"
        payload = _event_data(event)
        if payload is None:
            return event + b"\n\n"
        if self.anthropic:
            message = (
                payload.get("message")
                if payload.get("type") == "message_start"
                else payload
            )
            self.anthropic_usage.update((message or {}).get("usage"))
            return event + b"\n\n"
        read_openai_usage(payload.get("usage"), self.openai)
        if self.strip_usage_chunk and not payload.get("choices"):
            return b""
        return event + b"\n\n"

    def usage(self):
        if self.anthropic:
            return self.anthropic_usage.to_usage()
        return self.openai


def _event_data(event):
    lines = [
        line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    try:
        payload = json.loads(b"\n".join(lines))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
