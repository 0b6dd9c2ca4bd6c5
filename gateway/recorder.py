"""Batched, off-request-path writing of usage events and key last-used times.

Requests append a UsageRecord to an in-memory buffer and return. A background
task hands the buffer to insights.recording.record_usage every
GATEWAY_FLUSH_INTERVAL seconds, or sooner when GATEWAY_FLUSH_BATCH_SIZE
records are waiting. record_usage also advances APIKey.last_used_at.

When the database is unavailable, the batch stays in the buffer and is
retried with exponential backoff (up to 30 seconds apart).
record_usage skips event ids it has stored already, so a retry after an
unacknowledged commit stores nothing twice. The buffer holds at most
GATEWAY_BUFFER_MAX_EVENTS records; past that, the oldest are dropped and
logged as errors. On shutdown (ASGI lifespan) the buffer is flushed, with
retries, for up to GATEWAY_SHUTDOWN_FLUSH_TIMEOUT seconds.

Worst case: a process killed without a graceful shutdown (SIGKILL, out of
memory, power loss) loses the records of its last flush interval, plus every
record buffered while the database was unreachable.
"""

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)

from insights.recording import record_usage

logger = logging.getLogger(__name__)

# Seconds between retries grow from 0.5 up to this while the database is down.
RETRY_MAX_DELAY = 30.0


class UsageWriter:
    """The buffer of finished calls and the task that writes it."""

    def __init__(self):
        self.flush_interval = settings.GATEWAY_FLUSH_INTERVAL
        self.batch_size = settings.GATEWAY_FLUSH_BATCH_SIZE
        self.max_events = settings.GATEWAY_BUFFER_MAX_EVENTS
        self.shutdown_timeout = settings.GATEWAY_SHUTDOWN_FLUSH_TIMEOUT
        self.pending = []
        self.dropped = 0
        self.written = 0
        self.wakeup = None
        self.task = None

    def add(self, record):
        self.pending.append(record)
        if len(self.pending) > self.max_events:
            overflow = len(self.pending) - self.max_events
            del self.pending[:overflow]
            self.dropped += overflow
            logger.error(
                "Usage buffer full (%s events); dropped the %s oldest, %s in total",
                self.max_events,
                overflow,
                self.dropped,
            )
        if self.task is None:
            self.start()
        elif len(self.pending) >= self.batch_size:
            self.wakeup.set()

    def start(self):
        """Start the flush task in the running event loop."""
        if self.task is None or self.task.done():
            self.wakeup = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self):
        delay = self.flush_interval
        while True:
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=delay)
            except TimeoutError:
                pass
            self.wakeup.clear()
            if await self.flush():
                delay = self.flush_interval
            else:
                delay = min(max(delay * 2, 0.5), RETRY_MAX_DELAY)

    async def flush(self):
        """Write what is buffered; returns False when the database failed."""
        if not self.pending:
            return True
        batch, self.pending = self.pending, []
        try:
            await sync_to_async(write_batch)(batch)
        except DatabaseError as error:
            # Put the batch back in front of what arrived meanwhile.
            self.pending[:0] = batch
            logger.warning(
                "Writing %s usage events failed, will retry: %s", len(batch), error
            )
            return False
        self.written += len(batch)
        return True

    async def stop(self):
        """Cancel the flush task and flush what is left, retrying for a while."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        deadline = time.monotonic() + self.shutdown_timeout
        delay = 0.2
        while not await self.flush():
            if time.monotonic() + delay > deadline:
                logger.error(
                    "Shutting down with %s usage events unwritten: database unavailable",
                    len(self.pending),
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        if self.written or self.dropped:
            logger.info(
                "Usage writer stopped: %s events written, %s dropped",
                self.written,
                self.dropped,
            )


def write_batch(records):
    """Store the records in one transaction."""
    close_old_connections()
    try:
        try:
            with transaction.atomic():
                record_usage(records)
        except IntegrityError:
            # One invalid record (say, of a key deleted meanwhile) must not
            # block the others, so store them one at a time.
            _record_one_by_one(records)
    except DatabaseError:
        # Drop a broken connection so the retry opens a new one.
        connection.close()
        raise


def _record_one_by_one(records):
    for record in records:
        try:
            with transaction.atomic():
                record_usage([record])
        except IntegrityError as error:
            logger.error(
                "Dropped usage event %s of key %s: %s",
                record.event_id,
                record.key_id,
                error,
            )


usage_writer = UsageWriter()
