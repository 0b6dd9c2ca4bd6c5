import asyncio
import collections
import itertools
import logging
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import openai
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from gateway.traces import BUNDLED_TRACES, TraceError, read_trace
from genai_apps.demo import (
    DEMO_PROJECT_SLUG,
    DemoKeysFileError,
    demo_keys_path,
    read_demo_keys,
)
from workspace.models import APIKey, KeyStatus, hash_secret

# Every n-th row of --error-every asks the simulator for one of these errors.
INJECTED_ERRORS = (429, 503, 400)


class Command(BaseCommand):
    # The simulator and the replay are clients of the project's models at
    # most; a system check error elsewhere (say, in an admin) must not stop
    # the demo or the tests.
    requires_system_checks = []
    help = (
        "Send the rows of a real request trace through the gateway as OpenAI SDK "
        "calls with the given keys, at a fixed rate."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--trace",
            default="azure-code",
            help=f"A bundled trace ({', '.join(BUNDLED_TRACES)}) or the path of an "
            "Azure 2023 .csv or Mooncake .jsonl trace (default azure-code).",
        )
        parser.add_argument(
            "--key",
            action="append",
            default=[],
            dest="keys",
            metavar="SECRET",
            help="A key secret to call with; repeat for several keys, used in turn.",
        )
        parser.add_argument(
            "--keys-file",
            help="A file with one key secret per line (keeps secrets out of the "
            "shell history).",
        )
        parser.add_argument(
            "--gateway",
            default="http://127.0.0.1:8000",
            help="The gateway's origin (default http://127.0.0.1:8000).",
        )
        parser.add_argument(
            "--rate", type=float, default=2.0, help="Requests per second (default 2)."
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=0,
            help="Rows to send; 0 sends the whole trace.",
        )
        parser.add_argument("--offset", type=int, default=0, help="Rows to skip first.")
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Start the trace again at its end, until interrupted.",
        )
        parser.add_argument(
            "--stream-every",
            type=int,
            default=3,
            help="Stream every n-th call; 0 streams none (default 3).",
        )
        parser.add_argument(
            "--error-every",
            type=int,
            default=0,
            help="Ask the simulator for an error on every n-th call; 0 asks for none.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=32,
            help="Calls in flight at most (default 32).",
        )
        parser.add_argument(
            "--model",
            help="Model for every call (default: the first model of each key's provider).",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Print no progress bar."
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help=f"Call with the attached, active keys of the '{DEMO_PROJECT_SLUG}' "
            "project, whose secrets seed_demo wrote to var/demo-keys.json.",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            help="Seconds to wait for the gateway to accept connections (default 0).",
        )

    def handle(self, *args, **options):
        if options["rate"] <= 0:
            raise CommandError(f"--rate {options['rate']} must be above 0.")
        if options["concurrency"] < 1:
            raise CommandError(
                f"--concurrency {options['concurrency']} must be at least 1."
            )
        check_gateway_url(options["gateway"])
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
        rows = self.load_rows(options)
        secrets = (
            self.read_demo_secrets_and_warn()
            if options["demo"]
            else self.read_secrets(options)
        )
        targets = self.resolve_targets(secrets, options)
        wait_for_server(options["gateway"], options["wait"])
        summary = asyncio.run(self.replay(rows, targets, options))
        self.print_summary(summary, options["gateway"])

    def load_rows(self, options):
        path = BUNDLED_TRACES.get(options["trace"], Path(options["trace"]))
        try:
            rows = read_trace(path)
        except TraceError as error:
            raise CommandError(str(error)) from None
        rows = rows[options["offset"] :]
        if options["limit"]:
            rows = rows[: options["limit"]]
        if not rows:
            raise CommandError(
                f"No rows to send from {path} with --offset {options['offset']}."
            )
        return rows

    def read_secrets(self, options):
        secrets = list(options["keys"])
        if options["keys_file"]:
            try:
                text = Path(options["keys_file"]).read_text()
            except OSError as error:
                raise CommandError(f"--keys-file cannot be read: {error}") from None
            secrets += [line.strip() for line in text.splitlines() if line.strip()]
        if not secrets:
            raise CommandError("Give at least one key with --key or --keys-file.")
        return secrets

    def read_demo_secrets_and_warn(self):
        secrets, skipped = read_demo_secrets()
        if skipped:
            labels = ", ".join(str(key) for key in skipped)
            self.stderr.write(
                f"Skipping {plural(len(skipped), 'attached demo key')} without a "
                f"matching secret in {demo_keys_path()}: {labels}. "
                "replay_trace --demo calls only with keys that seed_demo created.",
                style_func=self.style.WARNING,
            )
        return secrets

    def resolve_targets(self, secrets, options):
        """Return (secret, base_url, model, label) for each key."""
        targets = []
        gateway = options["gateway"].rstrip("/")
        for secret in secrets:
            key = (
                APIKey.objects.select_related("provider", "proxy__provider")
                .filter(secret_hash=hash_secret(secret))
                .first()
            )
            if key is None:
                raise CommandError(
                    f"Key {secret[:12]}… is not in this database; copy the secret "
                    "of an active key from the dashboard."
                )
            check_key_is_active(key)
            target = key.target
            provider = key.proxy.provider if key.proxy_id else key.provider
            model = options["model"] or self.default_model(key, provider)
            base_url = f"{gateway}/gateway/{target.context_path}/v1"
            targets.append((secret, base_url, model, f"{key.name} ({key.prefix}…)"))
        return targets

    def default_model(self, key, provider):
        if key.proxy_id and key.proxy.allowed_models:
            return key.proxy.allowed_models[0]
        names = [m.name for m in provider.models.all() if "embedding" not in m.name]
        if not names:
            raise CommandError(
                f"Provider “{provider.name}” has no models; add one or pass --model."
            )
        return names[0]

    async def replay(self, rows, targets, options):
        clients = [
            (
                openai.AsyncOpenAI(base_url=url, api_key=secret, max_retries=0),
                model,
                label,
            )
            for secret, url, model, label in targets
        ]
        summary = Summary()
        # SIGTERM (how `make run` stops the replay) ends it like Ctrl-C does:
        # calls in flight are cancelled and the summary is printed.
        main_task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        limit = asyncio.Semaphore(options["concurrency"])
        interval = 1 / options["rate"]
        stream = options["stream_every"]
        errors = options["error_every"]
        total = None if options["loop"] else len(rows)
        tasks = set()
        progress = tqdm(
            total=total,
            unit="call",
            disable=options["no_progress"],
            file=self.stderr._out,
        )
        started = time.monotonic()
        sequence = itertools.cycle(rows) if options["loop"] else rows
        try:
            for index, row in enumerate(sequence):
                await asyncio.sleep(
                    max(0, started + index * interval - time.monotonic())
                )
                await limit.acquire()
                client, model, label = clients[index % len(clients)]
                error = (
                    INJECTED_ERRORS[index // errors % 3]
                    if errors and index % errors == errors - 1
                    else None
                )
                call = send_row(
                    client, model, row, bool(stream) and index % stream == 0, error
                )
                task = asyncio.create_task(call)
                tasks.add(task)
                task.add_done_callback(
                    lambda done, label=label: self.finish(
                        done, label, summary, progress, limit, tasks
                    )
                )
            await asyncio.gather(*tasks, return_exceptions=True)
        except (KeyboardInterrupt, asyncio.CancelledError):
            for task in tasks:
                task.cancel()
        finally:
            progress.close()
            for client, _, _ in clients:
                await client.close()
        summary.elapsed = time.monotonic() - started
        return summary

    def finish(self, task, label, summary, progress, limit, tasks):
        tasks.discard(task)
        limit.release()
        progress.update(1)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            prompt, completion = task.result()
            summary.add(label, 200, prompt, completion)
        else:
            summary.add(
                label, getattr(error, "status_code", None) or type(error).__name__, 0, 0
            )
        progress.set_postfix(ok=summary.ok, failed=summary.failed, refresh=False)

    def print_summary(self, summary, gateway):
        rate = summary.sent / summary.elapsed if summary.elapsed else 0
        for label, statuses in sorted(summary.by_key.items()):
            counts = ", ".join(
                f"{status}: {count}"
                for status, count in sorted(statuses.items(), key=str)
            )
            self.stdout.write(f"  {label}: {counts}")
        self.stdout.write(
            f"Sent {summary.sent} calls in {summary.elapsed:.1f} s ({rate:.1f}/s): "
            f"{summary.ok} succeeded, {summary.failed} failed; "
            f"{summary.prompt_tokens:,} prompt and {summary.completion_tokens:,} "
            "completion tokens."
        )
        unreachable = sum(
            statuses["APIConnectionError"] for statuses in summary.by_key.values()
        )
        if unreachable:
            self.stderr.write(
                f"{plural(unreachable, 'call')} could not connect to the gateway at "
                f"{gateway}. Check that the server is running there "
                "(`make run` starts it)."
            )


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def check_gateway_url(url):
    """Raise CommandError unless url is an http:// or https:// URL with a host."""
    parts = urlsplit(url)
    try:
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0
        )
    except ValueError:
        # SplitResult.port raises it for a port outside 0 to 65535.
        valid = False
    if not valid:
        raise CommandError(
            f"--gateway {url!r} is not a valid http:// or https:// URL. Pass the "
            "gateway's origin, such as http://127.0.0.1:8000."
        )


def check_key_is_active(key):
    """Raise CommandError for a revoked or expired key, which the gateway rejects."""
    status = key.status
    if status == KeyStatus.REVOKED:
        reason = f"is revoked (since {key.revoked_at:%Y-%m-%d %H:%M %Z})"
    elif status == KeyStatus.EXPIRED:
        reason = f"is expired (since {key.expires_at:%Y-%m-%d %H:%M %Z})"
    else:
        return
    raise CommandError(
        f"Key {key.prefix}… ({key.name}) {reason}, so the gateway would reject "
        "every call with it. Copy the secret of an active key from the dashboard."
    )


def read_demo_secrets():
    """Return the secrets of the demo project's usable keys, and the keys skipped.

    seed_demo writes the secrets of the keys it creates to var/demo-keys.json
    (demo only, because the database stores hashes). An attached, active demo
    key without a matching secret there, such as a key that a user generated
    in the dashboard, is skipped. Raises CommandError when no key is usable.
    """
    path = demo_keys_path()
    try:
        secrets_by_id = read_demo_keys(path)
    except DemoKeysFileError as error:
        raise CommandError(str(error)) from None
    keys = list(
        APIKey.objects.active()
        .filter(project__slug=DEMO_PROJECT_SLUG, mapping__isnull=False)
        .order_by("pk")
    )
    if not keys:
        raise CommandError(
            f"The '{DEMO_PROJECT_SLUG}' project has no attached, active keys. "
            "Run `manage.py seed_demo` to load the demo, or attach one of the "
            "keys that it created to an application."
        )
    secrets, skipped = [], []
    for key in keys:
        secret = secrets_by_id.get(key.pk)
        if secret is not None and hash_secret(secret) == key.secret_hash:
            secrets.append(secret)
        else:
            skipped.append(key)
    if not secrets:
        labels = ", ".join(str(key) for key in skipped)
        raise CommandError(
            f"None of the attached, active keys of the '{DEMO_PROJECT_SLUG}' "
            f"project ({labels}) has a matching secret in {path}. Run "
            "replay_trace without --demo and pass a key's secret with --key or "
            "--keys-file. Or run `manage.py seed_demo --force` to load the demo "
            "again with new keys, which deletes your changes to the demo project."
        )
    return secrets, skipped


def wait_for_server(origin, timeout):
    """Wait up to timeout seconds for origin to accept TCP connections.

    A timeout of 0 tries once. Raises CommandError naming origin when the
    connection still fails.
    """
    parts = urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((parts.hostname, port), timeout=1):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                waited = f" within {timeout:g} s" if timeout else ""
                raise CommandError(
                    f"Cannot reach the gateway at {origin}{waited}: "
                    f"{error.strerror or error}. Start the server (`make run` "
                    "serves it at http://127.0.0.1:8000), or pass the URL of a "
                    "running gateway with --gateway."
                ) from None
            time.sleep(0.2)


class Summary:
    def __init__(self):
        self.by_key = collections.defaultdict(collections.Counter)
        self.sent = self.ok = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.elapsed = 0.0

    def add(self, label, status, prompt, completion):
        self.by_key[label][status] += 1
        self.sent += 1
        if status == 200:
            self.ok += 1
        else:
            self.failed += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion


async def send_row(client, model, row, stream, error_status):
    """Send one trace row; returns its (prompt, completion) tokens."""
    # The directive scripts the simulator; a real provider reads it as text
    # and max_tokens still bounds the output.
    directive = (
        f"simulate: prompt_tokens={row.prompt_tokens} "
        f"completion_tokens={row.completion_tokens} cached_tokens={row.cached_tokens}"
    )
    if error_status:
        directive += f" status={error_status}"
    messages = [{"role": "user", "content": f"Trace replay. {directive}"}]
    max_tokens = max(1, row.completion_tokens)
    if not stream:
        answer = await client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens
        )
        usage = answer.usage
    else:
        chunks = await client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = None
        async for chunk in chunks:
            usage = chunk.usage or usage
    if usage is None:
        return 0, 0
    return usage.prompt_tokens, usage.completion_tokens
