"""Batched, off-request-path writing of usage events and key last-used times.

Requests append a UsageRecord to an in-memory buffer and return. A background
task hands the buffer to insights.recording.record_usage every
GATEWAY_FLUSH_INTERVAL seconds, or sooner when GATEWAY_FLUSH_BATCH_SIZE
records are waiting. record_usage also advances APIKey.last_used_at.

Where record_usage runs is GATEWAY_USAGE_WRITER: "process" (the default)
sends each batch to a writer process of this worker (gateway.writer_process),
"thread" runs it in a thread of the worker. A writer process that dies is
started again for the next attempt, and its batch is retried.

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
import os
import sys
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

from gateway import writer_process
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
        self.write_timeout = settings.GATEWAY_WRITE_TIMEOUT
        self.sink = SINKS[settings.GATEWAY_USAGE_WRITER]()
        self.pending = []
        self.dropped = 0
        self.written = 0
        self.wakeup = None
        self.task = None
        self.stopping = False

    def add(self, record):
        self.pending.append(self.sink.encode(record))
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
            self.stopping = False
            self.wakeup = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self):
        delay = self.flush_interval
        try:
            await self.sink.start()
        except OSError as error:
            # write() starts it again, and the batches wait until then.
            logger.error("Starting the usage writer failed: %s", error)
        while True:
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=delay)
            except TimeoutError:
                pass
            self.wakeup.clear()
            if self.stopping:
                return
            if await self.flush():
                delay = self.flush_interval
            else:
                delay = min(max(delay * 2, 0.5), RETRY_MAX_DELAY)

    async def flush(self, timeout=None):
        """Write what is buffered, and return False when the database failed.

        A write that takes longer than `timeout` seconds (default
        GATEWAY_WRITE_TIMEOUT) is abandoned and its batch kept for a retry.
        """
        if not self.pending:
            return True
        timeout = self.write_timeout if timeout is None else timeout
        batch, self.pending = self.pending, []
        try:
            await asyncio.wait_for(self.sink.write(batch), timeout)
        except asyncio.CancelledError:
            self.pending[:0] = batch
            raise
        except TimeoutError:
            self.pending[:0] = batch
            logger.warning(
                "Writing %s usage events timed out after %.1f s, will retry",
                len(batch),
                timeout,
            )
            await self.sink.abandon()
            return False
        except WriteFailed as error:
            # Put the batch back in front of what arrived meanwhile.
            self.pending[:0] = batch
            logger.warning(
                "Writing %s usage events failed, will retry: %s", len(batch), error
            )
            return False
        except Exception:
            # This is a bug. Keep the batch and the flush task alive all the same.
            self.pending[:0] = batch
            logger.exception("Writing %s usage events failed", len(batch))
            return False
        self.written += len(batch)
        return True

    async def stop(self):
        """End the flush task and flush what is left, for up to shutdown_timeout s.

        The task may finish the write it is in, and a retry delay is cut
        short. A write still running at the deadline is abandoned.
        """
        deadline = time.monotonic() + self.shutdown_timeout
        if self.task is not None:
            self.stopping = True
            self.wakeup.set()
            try:
                await asyncio.wait_for(self.task, self.shutdown_timeout)
            except TimeoutError:
                # The cancelled flush put its batch back. Kill the hung writer.
                await self.sink.abandon()
            except Exception:
                logger.exception("The usage flush task failed")
            self.task = None
        delay = 0.2
        while not await self.flush(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() + delay > deadline:
                logger.error(
                    "Shutting down with %s usage events unwritten: database unavailable",
                    len(self.pending),
                )
                await self.sink.close()
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        await self.sink.close()
        if self.written or self.dropped:
            logger.info(
                "Usage writer stopped: %s events written, %s dropped",
                self.written,
                self.dropped,
            )


class WriteFailed(Exception):
    """Failure to store a batch, which can be retried."""


class ThreadSink:
    """Sink that stores batches in a thread of this process (GATEWAY_USAGE_WRITER=thread)."""

    def encode(self, record):
        return record

    async def start(self):
        pass

    async def abandon(self):
        # A thread cannot be stopped. If it stores the batch late, the retry
        # stores nothing twice, because record_usage skips stored event ids.
        pass

    async def write(self, records):
        try:
            await sync_to_async(write_batch)(records)
        except DatabaseError as error:
            raise WriteFailed(str(error)) from error

    async def close(self):
        pass


class ProcessSink:
    """Sink that stores batches in a writer process (GATEWAY_USAGE_WRITER=process).

    Records are encoded when they are added, so the flush only joins them,
    and the worker keeps the encoded batch until the process replies "ok".
    """

    encode = staticmethod(writer_process.encode)

    def __init__(self):
        self.process = None

    async def start(self):
        if self.process is not None:
            if self.process.returncode is None:
                return
            await self._reap()
        env = os.environ.copy()
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(settings.BASE_DIR), env.get("PYTHONPATH")])
        )
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.writer_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=settings.BASE_DIR,
            # Out of the worker's process group: Ctrl-C in a terminal
            # signals that group, and the writer must outlive the worker's
            # shutdown flush.
            start_new_session=True,
        )

    async def write(self, encoded_records):
        try:
            await self.start()
            self.process.stdin.write(writer_process.frame(encoded_records))
            await self.process.stdin.drain()
            status = await self.process.stdout.readline()
        except OSError as error:
            status = b""
            logger.warning(
                "Sending a batch to the usage writer process failed: %s", error
            )
        if status == b"ok\n":
            return
        if not status:
            await self._reap()
            raise WriteFailed("the usage writer process exited before storing it")
        raise WriteFailed(
            status.decode(errors="replace").strip().removeprefix("retry ")
        )

    async def abandon(self):
        """Kill a writer that did not reply in time, so the next write starts a new one."""
        if self.process is not None and self.process.returncode is None:
            logger.warning(
                "Usage writer process %s did not reply within the write timeout and is killed",
                self.process.pid,
            )
        await self._reap()

    async def _reap(self):
        """Collect a writer process that exited (or stopped replying) and log it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        code = await process.wait()
        logger.warning(
            "Usage writer process %s exited with code %s, and the next batch starts a new one",
            process.pid,
            code,
        )

    async def close(self):
        """Close the pipe, so the process exits after its last status line."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            logger.error(
                "Usage writer process %s did not exit within 10 s and was killed",
                process.pid,
            )
            process.kill()
            await process.wait()


SINKS = {"process": ProcessSink, "thread": ThreadSink}


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
