"""The usage writer process: stores the gateway's batches off its event loop.

Each gateway worker starts one writer process (GATEWAY_USAGE_WRITER =
"process", the default) and sends it its batches over a pipe. The process
stores them with gateway.recorder.write_batch and replies to each batch with
one line: "ok", or "retry <reason>" when the database failed.

Why a process and not a thread: storing a batch costs Python CPU (pricing
events, merging histograms). A thread takes the GIL from the event loop for
up to the switch interval at a time, and that showed in the tail latency
under load.
A process runs at a lower priority (GATEWAY_WRITER_NICE) and with the batch
scheduling policy, so the kernel lets it use what the event loop leaves idle.
It inherits the worker's CPU affinity, so a worker pinned to a core keeps
its writer on that core.

The process ignores SIGINT and SIGTERM: Ctrl-C and a service manager signal
the whole process group, and the writer must outlive its worker's shutdown
flush. It exits when its standard input closes, that is when the worker
closes the pipe or dies.

Wire format, worker to writer: a 4-byte big-endian length, then a marshal
dump of a list of encoded records (see encode). marshal is fast and safe
here: both ends are this code, and only plain values cross the pipe.
"""

import datetime
import logging
import marshal
import os
import signal
import sys
import uuid

logger = logging.getLogger("gateway.writer_process")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def encode(record):
    """Return a UsageRecord as a tuple of marshal-able values.

    marshal takes only exact built-in types, so enum members (an ErrorType,
    an HTTPStatus) become their plain values here.
    """
    return (
        _int(record.project_id),
        _int(record.key_id),
        (record.occurred_at - _EPOCH) // _MICROSECOND,
        str(record.model),
        _int(record.provider_id),
        _int(record.proxy_id),
        _int(record.application_id),
        bool(record.resolve_application),
        int(record.prompt_tokens),
        int(record.completion_tokens),
        int(record.cached_tokens),
        int(record.reasoning_tokens),
        int(record.cache_write_tokens),
        _int(record.latency_ms),
        _int(record.ttft_ms),
        int(record.status_code),
        str(record.error_type),
        record.event_id.bytes,
    )


def _int(value):
    return None if value is None else int(value)


def decode(values):
    """Return the UsageRecord that encode() turned into `values`."""
    from insights.recording import UsageRecord

    (
        project_id,
        key_id,
        micros,
        model,
        provider_id,
        proxy_id,
        application_id,
        resolve_application,
        prompt_tokens,
        completion_tokens,
        cached_tokens,
        reasoning_tokens,
        cache_write_tokens,
        latency_ms,
        ttft_ms,
        status_code,
        error_type,
        event_id,
    ) = values
    return UsageRecord(
        project_id=project_id,
        key_id=key_id,
        occurred_at=_EPOCH + datetime.timedelta(microseconds=micros),
        model=model,
        provider_id=provider_id,
        proxy_id=proxy_id,
        application_id=application_id,
        resolve_application=resolve_application,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
        cache_write_tokens=cache_write_tokens,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        status_code=status_code,
        error_type=error_type,
        event_id=uuid.UUID(bytes=event_id),
    )


def frame(encoded_records):
    """Return the bytes that carry one batch to the writer process."""
    body = marshal.dumps(list(encoded_records))
    return len(body).to_bytes(4, "big") + body


def lower_priority(nice):
    """Lower this process's priority, so the worker's event loop gets the CPU first."""
    if nice:
        os.nice(nice)
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError as error:
            logger.warning(
                "Switching to SCHED_BATCH failed, keeping the default policy: %s", error
            )


def serve(source, reply):
    """Store every batch read from `source` and write one status line per batch to `reply`."""
    from django.db import DatabaseError

    from gateway.recorder import write_batch

    while True:
        header = source.read(4)
        if len(header) < 4:
            return
        body = source.read(int.from_bytes(header, "big"))
        records = [decode(values) for values in marshal.loads(body)]
        try:
            write_batch(records)
        except DatabaseError as error:
            status = f"retry {error}"
        except Exception as error:
            # A bug must not stop the writer. The worker keeps the batch and
            # retries it, and the traceback is in the log.
            logger.exception("Writing %s usage events failed", len(records))
            status = f"retry {type(error).__name__}: {error}"
        else:
            status = "ok"
        reply.write(" ".join(status.split())[:1000].encode() + b"\n")
        reply.flush()


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Status lines go to the original standard output. Anything else written
    # there (a stray print) goes to standard error instead of into the pipe.
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workspace.settings")
    import django

    django.setup()
    from django.conf import settings

    lower_priority(settings.GATEWAY_WRITER_NICE)
    logger.info("Usage writer process %s started", os.getpid())
    serve(sys.stdin.buffer, reply)


if __name__ == "__main__":
    main()
