"""An upstream LLM simulator for the demo, the tests and the benchmarks.

It speaks the OpenAI API (chat completions, completions, embeddings, models),
the Azure OpenAI deployment paths (/openai/deployments/<name>/... with an
api-version) and the Anthropic Messages API on one port. It generates no
text worth reading: every answer says that it comes from a simulator.

A request scripts its own behaviour with a directive anywhere in its prompt,
so the script survives any proxy in between:

    simulate: status=429 latency_ms=20 prompt_tokens=1200 cached_tokens=1024

Directives (all optional; the command-line options set the defaults):

    status              HTTP status to answer with; 4xx and 5xx get an error body
    latency_ms          delay before a non-streamed answer or the first chunk
    chunk_delay_ms      delay between streamed chunks
    chunks              number of content chunks in a stream
    prompt_tokens       input tokens to report (default: about 4 characters each)
    completion_tokens   output tokens to report (default: max_tokens or 16)
    cached_tokens       OpenAI cached prompt tokens, or Anthropic cache reads
    reasoning_tokens    OpenAI reasoning tokens (part of completion_tokens)
    cache_write_tokens  Anthropic cache creation tokens
    hang=1              never answer (to test timeouts)
    usage_on_last_choice=1   put the usage on the last chunk that has choices
    running_usage=1     every chunk carries the running usage totals
    fail_after_chunks   close a stream abruptly after this many chunks

The app is a plain ASGI callable so it runs under uvicorn with little
overhead of its own; `manage.py simulate_upstream` serves it.
"""

import asyncio
import dataclasses
import itertools
import json
import re
import time
from urllib.parse import parse_qs

SIMULATOR_HEADER = (b"x-simulator", b"ai-workspace upstream simulator")
DIRECTIVE_PATTERN = re.compile(r"simulate:((?:\s+[a-z_]+=[0-9]+)+)")
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "o4-mini", "text-embedding-3-small")
WORDS = "This answer comes from the AI Workspace upstream simulator.".split()


@dataclasses.dataclass
class Script:
    """The scripted behaviour of the simulator for one request."""

    status: int = 200
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int = 4
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    hang: int = 0
    usage_on_last_choice: int = 0
    running_usage: int = 0
    fail_after_chunks: int | None = None


@dataclasses.dataclass
class SimulatorConfig:
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int = 4
    models: tuple = DEFAULT_MODELS
    # When set, requests must present this credential (Bearer, api-key or
    # x-api-key), which lets tests prove the gateway adds its own.
    required_key: str = ""


class SimulatorApp:
    """The ASGI application; one instance per served port."""

    def __init__(self, config=None):
        self.config = config or SimulatorConfig()
        self.ids = itertools.count(1)
        # The last request seen, exposed at /_simulator/last-request so tests
        # can check what a proxy sent upstream.
        self.last_request = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path = scope["path"]
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        query = parse_qs(scope.get("query_string", b"").decode())
        if path == "/_simulator/last-request":
            await _send_json(send, 200, self.last_request)
            return
        self.last_request = {
            "method": scope["method"],
            "path": path,
            "query": {k: v[0] for k, v in query.items()},
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
        await self.route(scope["method"], path, headers, query, body, receive, send)

    async def route(self, method, path, headers, query, body, receive, send):
        anthropic = path == "/v1/messages"
        error_style = "anthropic" if anthropic else "openai"
        if not self.is_authorized(headers):
            await send_error(send, 401, "Invalid upstream credential.", error_style)
            return

        operation = path
        deployment = None
        match = re.fullmatch(r"/openai/deployments/([^/]+)(/.+)", path)
        if match:
            if "api-version" not in query:
                await send_error(send, 400, "Missing api-version query parameter.")
                return
            deployment, operation = match.group(1), "/v1" + match.group(2)

        if path == "/openai/models" and "api-version" in query:
            operation = "/v1/models"
        if method == "GET" and operation == "/v1/models":
            await self.list_models(send)
            return
        handlers = {
            "/v1/chat/completions": self.chat_completions,
            "/v1/completions": self.completions,
            "/v1/embeddings": self.embeddings,
            "/v1/messages": self.messages,
        }
        handler = handlers.get(operation)
        if handler is None or method != "POST":
            await send_error(send, 404, f"No simulated route for {method} {path}.")
            return
        try:
            payload = json.loads(body)
        except ValueError:
            await send_error(
                send, 400, "The request body is not valid JSON.", error_style
            )
            return
        if not isinstance(payload, dict):
            await send_error(
                send, 400, "The request body must be a JSON object.", error_style
            )
            return
        if deployment is not None:
            payload.setdefault("model", deployment)
        await handler(payload, self.script_for(payload), receive, send)

    def is_authorized(self, headers):
        required = self.config.required_key
        if not required:
            return True
        presented = {
            headers.get("authorization", "").removeprefix("Bearer "),
            headers.get("api-key", ""),
            headers.get("x-api-key", ""),
        }
        return required in presented

    def script_for(self, payload):
        script = Script(
            latency_ms=self.config.latency_ms,
            chunk_delay_ms=self.config.chunk_delay_ms,
            chunks=self.config.chunks,
        )
        match = DIRECTIVE_PATTERN.search(_prompt_text(payload))
        if match:
            for pair in match.group(1).split():
                name, value = pair.split("=")
                if hasattr(script, name):
                    setattr(script, name, int(value))
        if script.prompt_tokens is None:
            script.prompt_tokens = max(1, len(_prompt_text(payload)) // 4)
        if script.completion_tokens is None:
            limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
            script.completion_tokens = limit if isinstance(limit, int) else 16
        script.chunks = max(1, min(script.chunks, script.completion_tokens or 1))
        return script

    async def list_models(self, send):
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "simulator"}
            for name in self.config.models
        ]
        await _send_json(send, 200, {"object": "list", "data": data})

    async def chat_completions(self, payload, script, receive, send):
        if not await _wait_or_fail(script, receive, send, "openai"):
            return
        model = payload.get("model", "")
        completion_id = f"chatcmpl-sim-{next(self.ids)}"
        if payload.get("stream"):
            include_usage = bool(
                (payload.get("stream_options") or {}).get("include_usage")
            )
            await self.stream_chat(send, completion_id, model, script, include_usage)
            return
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "simulator",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(WORDS)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": openai_usage(script),
        }
        await _send_json(send, 200, body)

    async def stream_chat(self, send, completion_id, model, script, include_usage):
        await _start_stream(send)
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "simulator",
        }
        pieces = _split_words(script.chunks)
        for index, piece in enumerate(pieces):
            if (
                script.fail_after_chunks is not None
                and index >= script.fail_after_chunks
            ):
                await send(
                    {"type": "http.response.body", "body": b"", "more_body": False}
                )
                return
            last = index == len(pieces) - 1
            delta = {"content": piece}
            if index == 0:
                delta["role"] = "assistant"
            chunk = dict(
                base,
                choices=[
                    {
                        "index": 0,
                        "delta": delta,
                        "finish_reason": "stop" if last else None,
                        "logprobs": None,
                    }
                ],
            )
            if script.running_usage:
                chunk["usage"] = openai_usage(script, done=(index + 1) / len(pieces))
            elif include_usage:
                chunk["usage"] = (
                    openai_usage(script)
                    if last and script.usage_on_last_choice
                    else None
                )
            await _send_event(send, chunk)
            if not last and script.chunk_delay_ms:
                await asyncio.sleep(script.chunk_delay_ms / 1000)
        if (
            include_usage
            and not script.usage_on_last_choice
            and not script.running_usage
        ):
            await _send_event(send, dict(base, choices=[], usage=openai_usage(script)))
        await send(
            {
                "type": "http.response.body",
                "body": b"data: [DONE]\n\n",
                "more_body": False,
            }
        )

    async def completions(self, payload, script, receive, send):
        if not await _wait_or_fail(script, receive, send, "openai"):
            return
        base = {
            "id": f"cmpl-sim-{next(self.ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": payload.get("model", ""),
        }
        if not payload.get("stream"):
            choice = {
                "index": 0,
                "text": " ".join(WORDS),
                "finish_reason": "stop",
                "logprobs": None,
            }
            await _send_json(
                send, 200, dict(base, choices=[choice], usage=openai_usage(script))
            )
            return
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        await _start_stream(send)
        for piece in _split_words(script.chunks):
            choice = {
                "index": 0,
                "text": piece,
                "finish_reason": None,
                "logprobs": None,
            }
            await _send_event(send, dict(base, choices=[choice]))
            if script.chunk_delay_ms:
                await asyncio.sleep(script.chunk_delay_ms / 1000)
        if include_usage:
            await _send_event(send, dict(base, choices=[], usage=openai_usage(script)))
        await send(
            {
                "type": "http.response.body",
                "body": b"data: [DONE]\n\n",
                "more_body": False,
            }
        )

    async def embeddings(self, payload, script, receive, send):
        if not await _wait_or_fail(script, receive, send, "openai"):
            return
        inputs = payload.get("input", "")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        size = (
            payload.get("dimensions")
            if isinstance(payload.get("dimensions"), int)
            else 8
        )
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(0.1 * (i + 1), 3)] * size,
            }
            for i in range(len(inputs))
        ]
        usage = {
            "prompt_tokens": script.prompt_tokens,
            "total_tokens": script.prompt_tokens,
        }
        body = {
            "object": "list",
            "data": data,
            "model": payload.get("model", ""),
            "usage": usage,
        }
        await _send_json(send, 200, body)

    async def messages(self, payload, script, receive, send):
        if not await _wait_or_fail(script, receive, send, "anthropic"):
            return
        message_id = f"msg_sim_{next(self.ids)}"
        model = payload.get("model", "")
        if payload.get("stream"):
            await self.stream_messages(send, message_id, model, script)
            return
        body = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": " ".join(WORDS)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": anthropic_usage(script, script.completion_tokens),
        }
        await _send_json(send, 200, body)

    async def stream_messages(self, send, message_id, model, script):
        await _start_stream(send)
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(script, 1),
        }
        await _send_event(
            send, {"type": "message_start", "message": message}, "message_start"
        )
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        await _send_event(send, block, "content_block_start")
        for piece in _split_words(script.chunks):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            await _send_event(send, delta, "content_block_delta")
            if script.chunk_delay_ms:
                await asyncio.sleep(script.chunk_delay_ms / 1000)
        await _send_event(
            send, {"type": "content_block_stop", "index": 0}, "content_block_stop"
        )
        # message_delta carries the cumulative output_tokens of the message.
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": script.completion_tokens},
        }
        await _send_event(send, final, "message_delta")
        await _send_event(send, {"type": "message_stop"}, "message_stop", more=False)


def openai_usage(script, done=1.0):
    completion = round(script.completion_tokens * done)
    usage = {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": script.prompt_tokens + completion,
        "prompt_tokens_details": {
            "cached_tokens": script.cached_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": round(script.reasoning_tokens * done),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return usage


def anthropic_usage(script, output_tokens):
    """Anthropic usage: input_tokens excludes the cache reads and writes."""
    uncached = max(
        0, script.prompt_tokens - script.cached_tokens - script.cache_write_tokens
    )
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": script.cache_write_tokens,
        "cache_read_input_tokens": script.cached_tokens,
        "output_tokens": output_tokens,
    }


async def send_error(send, status, message, style="openai"):
    if style == "anthropic":
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        body = {
            "type": "error",
            "error": {"type": kind.get(status, "api_error"), "message": message},
        }
    else:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {
            "error": {"message": message, "type": kind, "param": None, "code": None}
        }
    await _send_json(send, status, body)


async def _wait_or_fail(script, receive, send, style):
    if script.hang:
        # Answer nothing until the client gives up and disconnects.
        while (await receive())["type"] != "http.disconnect":
            pass
        return False
    if script.latency_ms:
        await asyncio.sleep(script.latency_ms / 1000)
    if script.status >= 400:
        await send_error(
            send, script.status, f"Simulated error with status {script.status}.", style
        )
        return False
    return True


def _prompt_text(payload):
    parts = []
    for message in payload.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    for field in ("prompt", "input", "system"):
        value = payload.get(field)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\n".join(parts)


def _split_words(count):
    pieces = [[] for _ in range(count)]
    for index, word in enumerate(WORDS):
        pieces[index * count // len(WORDS)].append(word)
    return [" ".join(words) + " " for words in pieces]


async def _read_body(receive):
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send, status, body):
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        SIMULATOR_HEADER,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _start_stream(send):
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        SIMULATOR_HEADER,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _send_event(send, data, event=None, more=True):
    line = b"data: " + json.dumps(data).encode() + b"\n\n"
    if event:
        line = b"event: " + event.encode() + b"\n" + line
    await send({"type": "http.response.body", "body": line, "more_body": more})


async def _serve_lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
