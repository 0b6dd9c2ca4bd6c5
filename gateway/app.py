"""The gateway's ASGI data plane, served in front of Django.

Requests under /gateway/<context path>/v1/ are handled here without
Django's request cycle: the key resolves from the per-process key cache,
the call is forwarded with aiohttp, and the finished call is handed to the
batched usage writer. Everything else goes to Django.
"""

import asyncio
import gc
import json
import logging
import re
import time

import aiohttp
import yarl
from django.conf import settings
from django.utils import timezone

from gateway import errors
from gateway.keys import key_cache
from gateway.recorder import usage_writer
from gateway.upstream import (
    OPERATIONS,
    response_headers,
    upstream_headers,
    upstream_url,
)
from gateway.usage import SSEUsageReader, Usage, usage_from_body
from insights.models import ErrorType
from insights.recording import UsageRecord, new_event_id
from workspace.models import Vendor

logger = logging.getLogger(__name__)

ROUTE = re.compile(r"/gateway/(?P<context_path>[^/]+)/v1/(?P<operation>.+?)/?")
# Status recorded for a client that disconnected before the response was
# complete, as nginx logs it.
CLIENT_CLOSED_REQUEST = 499
JSON_HEADERS = [(b"content-type", b"application/json")]
# The last sentence of the 401 messages for revoked and expired keys.
NEW_KEY_HINT = "Generate a new key on the API Keys page of the AI Workspace dashboard."


class Call:
    """The state of one call, recorded as a UsageRecord when it ends."""

    __slots__ = ("key", "started", "occurred_at", "event_id", "model", "ttft_ms")

    def __init__(self, key, started, occurred_at):
        self.key = key
        self.started = started
        self.occurred_at = occurred_at
        self.event_id = new_event_id()
        self.model = ""
        self.ttft_ms = None

    def mark_first_chunk(self):
        if self.ttft_ms is None:
            self.ttft_ms = _elapsed_ms(self.started)

    def finish(self, status, error_type="", usage=None):
        usage = usage or Usage()
        key = self.key
        usage_writer.add(
            UsageRecord(
                project_id=key.project_id,
                key_id=key.key_id,
                occurred_at=self.occurred_at,
                model=self.model,
                provider_id=key.provider_id,
                proxy_id=key.proxy_id,
                application_id=key.application_id,
                resolve_application=False,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                latency_ms=_elapsed_ms(self.started),
                ttft_ms=self.ttft_ms,
                status_code=status,
                error_type=error_type,
                event_id=self.event_id,
            )
        )


class ResponseProgress:
    """The ASGI send callable of one call, noting whether the response began or ended."""

    __slots__ = ("send", "started", "finished")

    def __init__(self, send):
        self.send = send
        self.started = False
        self.finished = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.started = True
        elif not message.get("more_body", False):
            self.finished = True
        await self.send(message)


def freeze_startup_objects():
    """Move every object alive after startup out of the garbage collector's reach.

    Django and the libraries leave about 100,000 long-lived objects. Full
    collections walked them all and paused the event loop under load: with
    them, the p99 latency at concurrency 50 was about 7 times the p50 in
    benchmarks/gateway_bench.py, and about 2 to 3 times without them.
    gc.freeze() (Python 3.7+) leaves them out of later collections, and new
    objects are collected as before.
    """
    gc.collect()
    gc.freeze()
    logger.info(
        "Froze %s startup objects out of garbage collection", gc.get_freeze_count()
    )


class GatewayApp:
    """Route /gateway/ to the data plane and everything else to `fallback`."""

    def __init__(self, fallback):
        self.fallback = fallback
        self.session = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (
            scope["path"] == "/gateway" or scope["path"].startswith("/gateway/")
        ):
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.serve_lifespan(receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def serve_lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                freeze_startup_objects()
                usage_writer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await usage_writer.stop()
                await key_cache.aclose()
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def http_session(self):
        if self.session is None:
            timeout = settings.GATEWAY_UPSTREAM_TIMEOUT
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                # The timeout applies to connecting and to each read, so a
                # long stream that keeps sending is never cut off.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout, sock_read=timeout
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self.session

    async def handle(self, scope, receive, send):
        started = time.perf_counter()
        call = None
        send = ResponseProgress(send)
        try:
            key, operation = await authenticate(scope)
            call = Call(key, started, timezone.now())
            check_content_length(scope["headers"])
            body = await _read_body(receive)
            payload = parse_request(key, operation, scope["method"], body)
            rewritten = False
            if payload is not None:
                call.model = payload["model"]
                rewritten = apply_guardrails(key, operation, payload)
            if rewritten:
                body = json.dumps(payload).encode()
            await self.forward(call, operation, scope, payload, body, receive, send)
        except errors.GatewayError as error:
            await _send_error(send, error)
            if call is not None:
                call.finish(error.status, _error_type_of(error))
        except Rejected as rejection:
            await _send_error(send, rejection.error)
            if rejection.key is not None:
                Call(rejection.key, started, timezone.now()).finish(
                    rejection.error.status, rejection.error_type
                )
        except Exception:
            # NOTE: no known request reaches this branch, so no test covers
            # it. It exists so that a bug still gets a response in the OpenAI error shape.
            await _answer_unexpected_error(call, send)

    async def forward(self, call, operation, scope, payload, body, receive, send):
        key = call.key
        streaming = bool(payload and payload.get("stream"))
        strip_usage_chunk = False
        # The Messages API streams its usage unasked; the OpenAI shapes,
        # Anthropic's OpenAI-compatible endpoint included, need include_usage.
        messages_api = operation == "messages"
        if streaming and not messages_api:
            strip_usage_chunk = request_stream_usage(payload)
        if strip_usage_chunk:
            body = json.dumps(payload).encode()
        method = OPERATIONS[operation]
        try:
            response = await self.http_session().request(
                method,
                yarl.URL(upstream_url(key, operation, call.model), encoded=True),
                data=body if method == "POST" else None,
                headers=upstream_headers(key, scope["headers"]),
                allow_redirects=False,
            )
        except TimeoutError:
            raise _upstream_timeout(key) from None
        except aiohttp.ClientError as error:
            raise _upstream_unreachable(key, error) from None
        except ValueError as error:
            # aiohttp raises ValueError for a request it cannot send, such as
            # a base URL with user information next to an Authorization
            # header, or a port above 65535.
            raise _upstream_request_failed(key, error) from None

        extra = [(b"x-aiw-event-id", str(call.event_id).encode())]
        if streaming and response.status < 400:
            reader = SSEUsageReader(messages_api, strip_usage_chunk)
            await self.stream(call, response, reader, extra, receive, send)
            return
        try:
            content = await response.read()
        except TimeoutError:
            raise _upstream_timeout(key) from None
        except aiohttp.ClientError as error:
            raise _upstream_unreachable(key, error) from None
        finally:
            response.release()
        status = response.status
        if operation == "models" and status == 200 and key.allowed_models:
            content = filter_model_list(key, content)
        headers = response_headers(response) + extra
        headers.append((b"content-length", str(len(content)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})
        if status >= 400:
            call.finish(status, _upstream_error_type(status))
        else:
            call.finish(status, usage=usage_from_body(content, messages_api))

    async def stream(self, call, response, reader, extra, receive, send):
        """Pass an upstream SSE stream through as its chunks arrive."""
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        status, error_type = response.status, ""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers(response) + extra,
            }
        )
        try:
            async for data in response.content.iter_any():
                out = reader.feed(data)
                if out:
                    call.mark_first_chunk()
                    await send(
                        {"type": "http.response.body", "body": out, "more_body": True}
                    )
                if disconnected.is_set():
                    # NOTE: the upstream is not drained for its usage: closing
                    # the connection stops generation, and draining would make
                    # a cancelled call cost its full output.
                    status, error_type = (
                        CLIENT_CLOSED_REQUEST,
                        ErrorType.CLIENT_CANCELLED,
                    )
                    break
        except TimeoutError:
            logger.warning("Upstream stream timed out for key %s…", call.key.prefix)
            status, error_type = 504, ErrorType.TIMEOUT
        except aiohttp.ClientError as error:
            logger.warning(
                "Upstream stream broke for key %s…: %s", call.key.prefix, error
            )
            status, error_type = 502, ErrorType.CONNECTION_ERROR
        finally:
            watcher.cancel()
            if status == CLIENT_CLOSED_REQUEST or error_type:
                # Closing the connection makes the upstream stop generating.
                response.close()
            else:
                response.release()
        await send(
            {"type": "http.response.body", "body": reader.flush(), "more_body": False}
        )
        usage = reader.usage()
        if not error_type and not usage.seen:
            # A stream that ended without its usage chunk did not complete.
            status, error_type = 502, ErrorType.CONNECTION_ERROR
        call.finish(status, error_type, usage)


class Rejected(Exception):
    """A call rejected before it has a body; recorded if the key is known."""

    def __init__(self, error, key=None, error_type=ErrorType.AUTHENTICATION):
        super().__init__(error.message)
        self.error = error
        self.key = key
        self.error_type = error_type


async def authenticate(scope):
    """Return (key, operation) for a request, or raise why it is rejected."""
    match = ROUTE.fullmatch(scope["path"])
    if match is None:
        raise Rejected(
            errors.not_found(
                f"Unknown gateway URL {scope['path']}; use "
                "/gateway/<context path>/v1/chat/completions (or completions, "
                "embeddings, models, messages)."
            )
        )
    secret = presented_secret(scope["headers"])
    if not secret:
        raise Rejected(
            errors.unauthorized(
                "Missing API key. Send it as 'Authorization: Bearer <key>', "
                "'api-key: <key>' or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        )
    try:
        key = await key_cache.resolve(secret)
    except Exception:
        # Fail closed: without the cache or the database a revoked key
        # cannot be distinguished from an active one.
        logger.exception("Key lookup failed; responding with 503")
        raise Rejected(
            errors.GatewayError(
                503,
                "The gateway cannot check API keys right now; retry shortly.",
                "server_error",
                code="key_lookup_unavailable",
            )
        ) from None
    if key is None:
        raise Rejected(
            errors.unauthorized(
                "Invalid API key. Check that the whole key was sent, or generate "
                "a new one on the API Keys page of the AI Workspace dashboard."
            )
        )
    if key.revoked:
        raise Rejected(
            errors.unauthorized(
                f"API key {key.prefix}… has been revoked. {NEW_KEY_HINT}",
                "revoked_api_key",
            ),
            key,
        )
    if key.is_expired(timezone.now()):
        raise Rejected(
            errors.unauthorized(
                f"API key {key.prefix}… has expired. {NEW_KEY_HINT}",
                "expired_api_key",
            ),
            key,
        )
    if match["context_path"] != key.context_path:
        raise Rejected(
            errors.forbidden(
                f"API key {key.prefix}… is not valid for /gateway/"
                f"{match['context_path']}/; it was issued for "
                f"/gateway/{key.context_path}/."
            ),
            key,
        )
    operation = match["operation"]
    check_operation(key, operation, scope["method"])
    return key, operation


def check_operation(key, operation, method):
    """Reject an operation the key's provider does not serve, or a wrong method."""
    if operation not in OPERATIONS or (
        operation == "messages" and key.vendor != Vendor.ANTHROPIC
    ):
        raise Rejected(
            errors.not_found(
                f"The gateway does not serve /v1/{operation} for this provider."
            ),
            key,
            ErrorType.BAD_REQUEST,
        )
    if method != OPERATIONS[operation]:
        raise Rejected(
            errors.GatewayError(
                405,
                f"Use {OPERATIONS[operation]} for /v1/{operation}.",
                "invalid_request_error",
                code="method_not_allowed",
            ),
            key,
            ErrorType.BAD_REQUEST,
        )


def presented_secret(headers):
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in (b"api-key", b"x-api-key") and value.strip():
            return value.decode("latin-1").strip()
    return ""


def parse_request(key, operation, method, body):
    """Return the JSON request of a POST operation, or None for a GET."""
    if method == "GET":
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        raise errors.bad_request(
            "The request body is not valid JSON.", code="invalid_json"
        ) from None
    except RecursionError:
        raise errors.bad_request(
            "The request body is JSON nested too deeply to parse.", code="invalid_json"
        ) from None
    if not isinstance(payload, dict):
        raise errors.bad_request(
            "The request body must be a JSON object.", code="invalid_json"
        )
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise errors.bad_request(
            "The request needs a 'model' string.", param="model", code="missing_model"
        )
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        options_text = json.dumps(options)
        options_text = (
            options_text if len(options_text) <= 40 else options_text[:40] + "…"
        )
        raise errors.bad_request(
            f"'stream_options' must be an object such as "
            f'{{"include_usage": true}}, not {options_text}.',
            param="stream_options",
            code="invalid_stream_options",
        )
    return payload


def apply_guardrails(key, operation, payload):
    """Enforce an App LLM Proxy's allowed models and max tokens.

    Returns True when it added the proxy's limit to the payload.
    """
    if key.proxy_id is None:
        return False
    model = payload["model"]
    if key.allowed_models and model not in key.allowed_models:
        allowed = ", ".join(key.allowed_models)
        raise errors.bad_request(
            f"Model '{model}' is not allowed on this proxy; use one of: {allowed}.",
            param="model",
            code="model_not_allowed",
        )
    limit = key.max_tokens
    if limit is None or operation not in (
        "chat/completions",
        "completions",
        "messages",
    ):
        return False
    limit_requested = False
    for field in ("max_tokens", "max_completion_tokens"):
        requested = payload.get(field)
        if requested is None:
            continue
        limit_requested = True
        check_token_limit(field, requested, limit)
    if limit_requested:
        return False
    # A request without a limit gets the proxy's, so the guardrail holds.
    uses_new_field = key.vendor in (Vendor.OPENAI, Vendor.AZURE_OPENAI)
    field = (
        "max_completion_tokens"
        if uses_new_field and operation == "chat/completions"
        else "max_tokens"
    )
    payload[field] = limit
    return True


def check_token_limit(field, requested, limit):
    """Reject a max_tokens value that is not an integer from 1 to the proxy's limit."""
    # bool is a subclass of int, but true is not a token count.
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        value_text = json.dumps(requested)
        if len(value_text) > 40:
            value_text = value_text[:40] + "…"
        raise errors.bad_request(
            f"{field}={value_text} is invalid; send an integer of at least 1 and at "
            f"most this proxy's limit of {limit} tokens.",
            param=field,
            code="invalid_max_tokens",
        )
    if requested > limit:
        raise errors.bad_request(
            f"{field}={requested} exceeds this proxy's limit of {limit} tokens.",
            param=field,
            code="max_tokens_exceeded",
        )


def filter_model_list(key, content):
    """Return an upstream model list reduced to the proxy's allowed models.

    OpenAI, Azure OpenAI and Anthropic list models as {"data": [{"id": …}]};
    Anthropic's first_id and last_id are set to match the reduced page. A body
    of another shape is returned unchanged, with a warning.
    """
    try:
        listing = json.loads(content)
        models = listing["data"]
        allowed = [
            model
            for model in models
            if isinstance(model, dict) and model.get("id") in key.allowed_models
        ]
    except (ValueError, KeyError, TypeError):
        logger.warning(
            "Model list for key %s… to /gateway/%s/ is not a JSON object with a "
            "data list; passed through without filtering",
            key.prefix,
            key.context_path,
        )
        return content
    listing["data"] = allowed
    if "first_id" in listing:
        listing["first_id"] = allowed[0]["id"] if allowed else None
    if "last_id" in listing:
        listing["last_id"] = allowed[-1]["id"] if allowed else None
    return json.dumps(listing).encode()


def request_stream_usage(payload):
    """Ask the upstream for stream usage; returns True if the client did not."""
    options = payload.get("stream_options")
    # parse_request has checked that stream_options is an object or null.
    if isinstance(options, dict) and options.get("include_usage"):
        return False
    payload["stream_options"] = dict(options or {}, include_usage=True)
    return True


def _error_type_of(error):
    if error.code == "upstream_request_failed":
        return ErrorType.OTHER
    if error.status == 504:
        return ErrorType.TIMEOUT
    if error.status == 502:
        return ErrorType.CONNECTION_ERROR
    if error.code in ("model_not_allowed", "max_tokens_exceeded"):
        return ErrorType.GUARDRAIL
    return ErrorType.BAD_REQUEST


def _upstream_error_type(status):
    if status == 429:
        return ErrorType.RATE_LIMIT
    return ErrorType.UPSTREAM_5XX if status >= 500 else ErrorType.UPSTREAM_4XX


def _upstream_timeout(key):
    logger.warning("Upstream timed out for key %s…", key.prefix)
    return errors.GatewayError(
        504,
        f"The upstream did not answer within {settings.GATEWAY_UPSTREAM_TIMEOUT:g} s.",
        "timeout",
        code="upstream_timeout",
    )


def _upstream_unreachable(key, error):
    logger.warning("Upstream unreachable for key %s…: %r", key.prefix, error)
    return errors.GatewayError(
        502,
        "The upstream provider could not be reached.",
        "api_error",
        code="upstream_unreachable",
    )


def _upstream_request_failed(key, error):
    logger.error(
        "Upstream request failed for key %s… to /gateway/%s/ (provider %s): %s",
        key.prefix,
        key.context_path,
        key.provider_id,
        error,
    )
    return errors.GatewayError(
        502,
        "The gateway could not send the request to the upstream provider, most "
        "likely because of the provider's base URL; ask a project owner or admin "
        "to check the provider in AI Workspace.",
        "api_error",
        code="upstream_request_failed",
    )


async def _answer_unexpected_error(call, send):
    """Log and record an exception no other branch handled, and end the response.

    The client gets an OpenAI error body with status 500 unless the response
    has already started, in which case the body is ended where it is.
    """
    if call is None:
        logger.exception("Gateway call failed before its key was resolved")
    else:
        logger.exception(
            "Gateway call failed for key %s… to /gateway/%s/ (event %s)",
            call.key.prefix,
            call.key.context_path,
            call.event_id,
        )
        # Recorded first, so the call shows up in Insights even if the
        # client has gone away and sending the error fails.
        call.finish(500, ErrorType.OTHER)
    if not send.started:
        reference = f" (event {call.event_id})" if call is not None else ""
        await _send_error(
            send,
            errors.GatewayError(
                500,
                f"The gateway failed while handling this call{reference}; the "
                "error is in the gateway log. Retry, or report it to the "
                "AI Workspace operators.",
                "server_error",
                code="internal_error",
            ),
        )
    elif not send.finished:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_error(send, error):
    body = error.body()
    headers = JSON_HEADERS + [(b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": error.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


def check_content_length(headers):
    """Raise a 413 GatewayError when Content-Length is above GATEWAY_MAX_BODY_BYTES.

    Checked before the body is read, so a client announcing a huge body gets
    the 413 at once instead of waiting while it sends. A missing or
    malformed header is left to _read_body and the server.
    """
    for name, value in headers:
        if name == b"content-length":
            if value.isdigit() and int(value) > settings.GATEWAY_MAX_BODY_BYTES:
                raise _request_too_large()
            return


def _request_too_large():
    limit = settings.GATEWAY_MAX_BODY_BYTES
    return errors.GatewayError(
        413,
        f"The request body is larger than {limit:,} bytes; send less "
        "content or raise GATEWAY_MAX_BODY_BYTES on the gateway.",
        "invalid_request_error",
        code="request_too_large",
    )


async def _read_body(receive):
    """Read the request body, raising a 413 GatewayError past GATEWAY_MAX_BODY_BYTES."""
    limit = settings.GATEWAY_MAX_BODY_BYTES
    chunks = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _request_too_large()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _watch_disconnect(receive, disconnected):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            return


def _elapsed_ms(started):
    return round((time.perf_counter() - started) * 1000)
