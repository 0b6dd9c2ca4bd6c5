import errno
import logging
import socket

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from gateway.simulator import DEFAULT_MODELS, SimulatorApp, SimulatorConfig

LOOPBACK = "127.0.0.1"
# The default of uvicorn.Config's backlog (uvicorn 0.55).
SOCKET_BACKLOG = 2048


class Command(BaseCommand):
    # The simulator and the replay are clients of the project's models at
    # most; a system check error elsewhere (say, in an admin) must not stop
    # the demo or the tests.
    requires_system_checks = []
    help = (
        "Serve a simulated OpenAI, Azure OpenAI and Anthropic upstream on "
        "127.0.0.1 for demos, tests and benchmarks."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=8001,
            help="TCP port on 127.0.0.1 (default 8001).",
        )
        parser.add_argument(
            "--latency-ms",
            type=int,
            default=0,
            help="Milliseconds before an answer or the first streamed chunk (default 0).",
        )
        parser.add_argument(
            "--chunk-delay-ms",
            type=int,
            default=0,
            help="Milliseconds between streamed chunks (default 0).",
        )
        parser.add_argument(
            "--chunks",
            type=int,
            default=4,
            help="Content chunks per stream (default 4).",
        )
        parser.add_argument(
            "--models",
            default=",".join(DEFAULT_MODELS),
            help="Comma-separated model ids that GET /v1/models lists.",
        )
        parser.add_argument(
            "--require-key",
            default="",
            help="Reject requests whose credential differs from this value (default: accept any).",
        )
        parser.add_argument(
            "--access-log",
            action="store_true",
            help="Print one uvicorn access line per request to stdout.",
        )

    def handle(
        self,
        *args,
        port,
        latency_ms,
        chunk_delay_ms,
        chunks,
        models,
        require_key,
        access_log,
        **options,
    ):
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is not a TCP port; use 1 to 65535.")
        for name, value in (
            ("--latency-ms", latency_ms),
            ("--chunk-delay-ms", chunk_delay_ms),
        ):
            if value < 0:
                raise CommandError(f"{name} {value} is negative; use 0 or more.")
        if chunks < 1:
            raise CommandError(f"--chunks {chunks} must be at least 1.")
        config = SimulatorConfig(
            latency_ms=latency_ms,
            chunk_delay_ms=chunk_delay_ms,
            chunks=chunks,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            required_key=require_key,
        )
        # The simulator binds the loopback interface only: it must never be
        # mistaken for a real provider by another machine. Binding before the
        # banner means a busy port fails here, not after "Press Ctrl-C".
        listener = listen_on_loopback(port)
        server = uvicorn.Server(
            uvicorn.Config(
                SimulatorApp(config),
                log_level="warning",
                access_log=access_log,
                timeout_graceful_shutdown=2,
            )
        )
        if access_log:
            # log_level="warning" keeps uvicorn's startup lines quiet, but it
            # also sets the access logger to WARNING, and access lines are INFO.
            logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        self.stdout.write(
            f"Upstream SIMULATOR (not a real model) on http://{LOOPBACK}:{port}: "
            f"OpenAI base_url http://{LOOPBACK}:{port}/v1, Anthropic and Azure "
            f"base_url http://{LOOPBACK}:{port}. Press Ctrl-C to stop."
        )
        self.stdout.flush()
        with listener:
            server.run(sockets=[listener])


def listen_on_loopback(port):
    """Return a socket listening on 127.0.0.1:port, or raise CommandError.

    Connections that arrive before uvicorn starts wait in the backlog.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # uvicorn sets this too, so a restart can reuse a port whose old
    # connections are still in TIME_WAIT. A port with a live listener stays busy.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((LOOPBACK, port))
        listener.listen(SOCKET_BACKLOG)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise CommandError(
                f"{LOOPBACK} port {port} is already in use. Stop the program "
                "listening there, or choose another port with --port."
            ) from None
        raise CommandError(
            f"Cannot listen on {LOOPBACK} port {port}: {error.strerror}. "
            "Choose another port with --port."
        ) from None
    return listener
