"""Load the upstream simulator directly, through our gateway and through LiteLLM.

Run from the repository root:

    .venv/bin/python benchmarks/gateway_bench.py

In one run and against one simulator (answering at once), it measures:

1. added latency at concurrency 1: p50 and p99 of the full response and of
   the first streamed event, for each proxy minus the direct path;
2. throughput and latency at concurrency 10, 50 and 200, streamed and not.

Method: the simulator and the load generator share CPU 0, and each proxy
runs alone on CPU 1 (taskset) as one process, so its figures are per core.
The load generator is a minimal HTTP/1.1 client on asyncio and uvloop with
one keep-alive connection per concurrent caller. Our gateway records usage
as in production (batched writes to the database named by DATABASE_URL, or
a throwaway SQLite file). LiteLLM runs from benchmarks/.venv-litellm
(`python -m venv benchmarks/.venv-litellm && benchmarks/.venv-litellm/bin/pip
install 'litellm[proxy]'`) without a database, so it records no spend.

Results are printed and written to benchmarks/results/gateway_bench-<time>.json.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
LITELLM = REPO / "benchmarks" / ".venv-litellm" / "bin" / "litellm"
PORTS = {"simulator": 8301, "gateway": 8302, "litellm": 8303, "gateway-thread": 8304}
LOAD_CPU, PROXY_CPU = "0", "1"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master-key-0123456789"
MODEL = "gpt-4o-mini"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="Seconds per load level (default 5).",
    )
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=2000,
        help="Requests per concurrency-1 run (default 2000).",
    )
    parser.add_argument(
        "--concurrency", default="10,50,200", help="Load levels (default 10,50,200)."
    )
    parser.add_argument(
        "--skip-litellm", action="store_true", help="Do not start LiteLLM."
    )
    parser.add_argument(
        "--thread-writer",
        action="store_true",
        help=(
            "Also load a second gateway that stores usage in a thread "
            "(GATEWAY_USAGE_WRITER=thread) instead of a writer process."
        ),
    )
    args = parser.parse_args()
    args.load_at_start = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    # This process is the load generator, and it shares CPU 0 with the simulator.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    levels = [int(level) for level in args.concurrency.split(",")]

    started = datetime.datetime.now(datetime.UTC)
    workdir = Path(tempfile.mkdtemp(prefix="aiw-bench-"))
    processes = []
    try:
        env = bench_environment(workdir)
        secret = prepare_database(env)
        processes.append(start_simulator(env, workdir))
        gateways = [start_gateway(env, workdir, "gateway", "process")]
        processes.append(gateways[0])
        targets = {
            "direct": Target(
                "direct", PORTS["simulator"], "/v1/chat/completions", UPSTREAM_KEY
            ),
            "gateway": Target(
                "gateway",
                PORTS["gateway"],
                "/gateway/bench/v1/chat/completions",
                secret,
            ),
        }
        if args.thread_writer:
            gateways.append(start_gateway(env, workdir, "gateway-thread", "thread"))
            processes.append(gateways[-1])
            targets["gateway-thread"] = Target(
                "gateway-thread",
                PORTS["gateway-thread"],
                "/gateway/bench/v1/chat/completions",
                secret,
            )
        litellm_note = "not run (--skip-litellm)"
        if not args.skip_litellm:
            if LITELLM.exists():
                processes.append(start_litellm(workdir))
                targets["litellm"] = Target(
                    "litellm",
                    PORTS["litellm"],
                    "/v1/chat/completions",
                    LITELLM_MASTER_KEY,
                )
                litellm_note = litellm_version()
            else:
                litellm_note = f"not installed at {LITELLM}"
                print(f"LiteLLM {litellm_note}; measuring without it.")
        store = EventStore(env["DATABASE_URL"], started)
        results = uvloop.run(run_all(targets, levels, args, store))
        # A graceful stop flushes what the gateways still buffer, so every
        # request they received must now be stored.
        for gateway in gateways:
            stop(gateway)
        results["recorded"] = {
            "requests": gateway_requests(targets),
            "events": store.count(),
        }
        results["database_pinned"] = store.pinned and database_kind() == "PostgreSQL"
        report = build_report(results, targets, levels, litellm_note, args)
        print_report(report)
        write_report(report)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


class Target:
    def __init__(self, name, port, path, secret):
        self.name = name
        self.port = port
        self.path = path
        self.secret = secret
        self.sent = 0

    def request(self, stream):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 16,
        }
        if stream:
            body["stream"] = True
        payload = json.dumps(body).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload


# Environment and processes


def bench_environment(workdir):
    env = os.environ.copy()
    env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    env.update(DEBUG="1", LOG_LEVEL="WARNING", PYTHONPATH=str(REPO))
    return env


def prepare_database(env):
    """Migrate and create a provider and key for the bench; return the secret."""
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True
    )
    script = f"""
from workspace.models import APIKey, Project, Provider, ProviderModel
project, _ = Project.objects.get_or_create(slug="bench", defaults={{"name": "Benchmark"}})
provider = Provider.objects.filter(project=project, context_path="bench").first()
if provider is None:
    provider = Provider(project=project, name="Simulator", context_path="bench", vendor="openai")
provider.base_url = "http://127.0.0.1:{PORTS["simulator"]}/v1"
provider.set_credential("{UPSTREAM_KEY}")
provider.save()
ProviderModel.objects.get_or_create(provider=provider, name="{MODEL}")
key, secret = APIKey.create_with_secret(project=project, name="bench", provider=provider)
print(secret)
"""
    result = subprocess.run(
        [python, "manage.py", "shell", "-c", script],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1]


def start_simulator(env, workdir):
    args = ["taskset", "-c", LOAD_CPU, sys.executable, "manage.py", "simulate_upstream"]
    args += ["--port", str(PORTS["simulator"]), "--require-key", UPSTREAM_KEY]
    return spawn(args, env, workdir / "simulator.log", PORTS["simulator"])


GATEWAY_DATABASE_CLIENT = "aiw-bench-gateway"


def start_gateway(env, workdir, name, writer):
    env = {**env, "GATEWAY_USAGE_WRITER": writer}
    if env["DATABASE_URL"].startswith("postgres"):
        # Named, so EventStore.pin_backends finds the gateway's connections,
        # and kept open for the whole run, so they stay pinned.
        separator = "&" if "?" in env["DATABASE_URL"] else "?"
        env["DATABASE_URL"] += f"{separator}application_name={GATEWAY_DATABASE_CLIENT}"
        env["DATABASE_CONN_MAX_AGE"] = "3600"
    args = [
        "taskset",
        "-c",
        PROXY_CPU,
        sys.executable,
        "-m",
        "uvicorn",
        "workspace.asgi:application",
    ]
    args += [
        "--host",
        "127.0.0.1",
        "--port",
        str(PORTS[name]),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return spawn(args, env, workdir / f"{name}.log", PORTS[name])


def start_litellm(workdir):
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{PORTS['simulator']}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = os.environ.copy()
    # LiteLLM reads DATABASE_URL too; the comparison runs it without one.
    env.pop("DATABASE_URL", None)
    # The local cost map keeps LiteLLM from fetching it from the internet.
    env.update(
        LITELLM_MASTER_KEY=LITELLM_MASTER_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
    )
    args = ["taskset", "-c", PROXY_CPU, str(LITELLM), "--config", str(config)]
    args += [
        "--host",
        "127.0.0.1",
        "--port",
        str(PORTS["litellm"]),
        "--num_workers",
        "1",
    ]
    return spawn(args, env, workdir / "litellm.log", PORTS["litellm"], timeout=120)


def litellm_version():
    pip = LITELLM.parent / "pip"
    output = subprocess.run(
        [str(pip), "show", "litellm"], capture_output=True, text=True
    ).stdout
    version = next(
        (
            line.split()[-1]
            for line in output.splitlines()
            if line.startswith("Version")
        ),
        "?",
    )
    return f"litellm {version} (proxy, no database)"


def spawn(args, env, log_path, port, timeout=30):
    log = open(log_path, "wb")
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args[3]} exited:\n{log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(
        f"Nothing listened on port {port} within {timeout} s:\n{log_path.read_text()}"
    )


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# Load generation


class Connection:
    """One keep-alive HTTP/1.1 connection that sends requests one at a time."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        return cls(reader, writer)

    async def call(self, request):
        """Send one request; returns (status, seconds to first body byte, total)."""
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            first = None
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if first is None and size:
                    first = time.perf_counter() - started
                if size == 0:
                    break
                del chunk
        else:
            length = int(headers.split(b"content-length:")[1].split(b"\r\n")[0])
            await self.reader.readexactly(length)
            first = time.perf_counter() - started
        return status, first, time.perf_counter() - started

    def close(self):
        self.writer.close()


async def run_level(
    target, concurrency, stream, duration=None, requests=None, warmup=0.5
):
    """Run `concurrency` callers for `duration` seconds or `requests` calls."""
    request = target.request(stream)
    connections = [await Connection.open(target.port) for _ in range(concurrency)]
    totals, firsts, failures = [], [], 0
    measuring = False
    remaining = [requests]

    async def caller(connection):
        nonlocal failures
        while not stop_event.is_set():
            if remaining[0] is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            status, first, total = await connection.call(request)
            target.sent += 1
            if not measuring:
                continue
            if status != 200:
                failures += 1
            totals.append(total)
            firsts.append(first)

    stop_event = asyncio.Event()
    tasks = [asyncio.create_task(caller(c)) for c in connections]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    if duration is not None:
        await asyncio.sleep(duration)
        stop_event.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return summarize(totals, firsts, failures, elapsed)


def summarize(totals, firsts, failures, elapsed):
    def percentile(values, fraction):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {
        "requests": len(totals),
        "failures": failures,
        "rps": round(len(totals) / elapsed, 1),
        "p50_ms": round(percentile(totals, 0.50), 3),
        "p99_ms": round(percentile(totals, 0.99), 3),
        "first_p50_ms": round(percentile(firsts, 0.50), 3),
        "first_p99_ms": round(percentile(firsts, 0.99), 3),
        "mean_ms": round(statistics.fmean(totals) * 1000, 3),
    }


def gateway_requests(targets):
    """Return the number of requests sent to the gateways so far."""
    return sum(t.sent for name, t in targets.items() if name.startswith("gateway"))


class EventStore:
    """Usage events of the benchmark project stored since the run started."""

    def __init__(self, url, since):
        self.url = url
        self.since = since
        self.pinned = True

    def count(self):
        query = (
            "SELECT count(*) FROM insights_usageevent AS e "
            "JOIN workspace_project AS p ON p.id = e.project_id "
            "WHERE p.slug = 'bench' AND e.occurred_at >= {}"
        )
        if self.url.startswith("sqlite:///"):
            import sqlite3

            # Django stores SQLite datetimes as naive UTC text in this format.
            since = self.since.strftime("%Y-%m-%d %H:%M:%S.%f")
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                return db.execute(query.format("?"), [since]).fetchone()[0]
        import psycopg

        with psycopg.connect(self.url) as db:
            return db.execute(query.format("%s"), [self.since]).fetchone()[0]

    def pin_backends(self):
        """Move the gateways' PostgreSQL backends to the load CPU.

        In production the database runs on servers of its own, so its work
        for the gateway must not run on the gateway's core here. Returns
        False when the backends cannot be moved (moving another user's
        processes needs root or CAP_SYS_NICE).
        """
        if self.url.startswith("sqlite:///"):
            return True
        import psycopg

        with psycopg.connect(self.url) as db:
            pids = [
                row[0]
                for row in db.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    [GATEWAY_DATABASE_CLIENT],
                )
            ]
        try:
            for pid in pids:
                os.sched_setaffinity(pid, {int(LOAD_CPU)})
        except (PermissionError, ProcessLookupError):
            return False
        return True

    async def wait_for(self, expected, timeout=120.0):
        """Return the seconds until `expected` events are stored, or None on timeout."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if await asyncio.to_thread(self.count) >= expected:
                return round(time.perf_counter() - started, 2)
            await asyncio.sleep(0.05)
        return None


async def run_all(targets, levels, args, store):
    results = {"latency": {}, "load": {}}
    for stream in (False, True):
        mode = "stream" if stream else "json"
        for name, target in targets.items():
            # Warm caches and connection pools before measuring.
            await run_level(target, 4, stream, requests=200, warmup=0)
            result = await run_level(
                target, 1, stream, requests=args.latency_requests, warmup=0
            )
            results["latency"][f"{name}/{mode}"] = result
            print(
                f"c=1   {mode:6} {name:14} p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
            )
        for level in levels:
            for name, target in targets.items():
                if name.startswith("gateway"):
                    store.pinned = store.pin_backends() and store.pinned
                result = await run_level(target, level, stream, duration=args.duration)
                if name.startswith("gateway"):
                    # Wait until the writer has caught up, so its backlog
                    # neither hides in the figures nor slows the next level.
                    result["stored_after_s"] = await store.wait_for(
                        gateway_requests(targets)
                    )
                results["load"][f"{name}/{mode}/{level}"] = result
                print(
                    f"c={level:<3} {mode:6} {name:14} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms "
                    f"({result['p99_ms'] / result['p50_ms']:.1f}x)"
                    + (f"  ({result['failures']} failed)" if result["failures"] else "")
                    + (
                        f"  all stored {result['stored_after_s']} s later"
                        if "stored_after_s" in result
                        else ""
                    )
                )
    return results


# Report


def build_report(results, targets, levels, litellm_note, args):
    added = {}
    for mode in ("json", "stream"):
        direct = results["latency"][f"direct/{mode}"]
        for name in targets:
            if name == "direct":
                continue
            proxied = results["latency"][f"{name}/{mode}"]
            added[f"{name}/{mode}"] = {
                "p50_ms": round(proxied["p50_ms"] - direct["p50_ms"], 3),
                "p99_ms": round(proxied["p99_ms"] - direct["p99_ms"], 3),
                "first_event_p50_ms": round(
                    proxied["first_p50_ms"] - direct["first_p50_ms"], 3
                ),
                "first_event_p99_ms": round(
                    proxied["first_p99_ms"] - direct["first_p99_ms"], 3
                ),
            }
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_at_start": args.load_at_start,
        "method": (
            "simulator and load generator on CPU 0, each proxy alone on CPU 1 "
            "(taskset), one process each"
            + (
                " (and the gateway's PostgreSQL backends on CPU 0)"
                if results["database_pinned"]
                else ""
            )
            + "; keep-alive HTTP/1.1 client, one "
            f"connection per caller; {args.duration:g} s per load level after 0.5 s "
            f"warm-up; {args.latency_requests} sequential requests for concurrency 1; "
            "simulator answers at once (4 chunks when streaming); gateway records "
            f"usage to {database_kind()} from a writer process"
            + (" (gateway-thread: from a thread)" if args.thread_writer else "")
            + f" and reads the key version token from {cache_kind()}; after each "
            "gateway level the run waits until every event is stored; "
            f"LiteLLM: {litellm_note}"
        ),
        "recorded": results["recorded"],
        "added_latency_concurrency_1": added,
        "latency": results["latency"],
        "load": results["load"],
        "levels": levels,
    }


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at the end {load}"
    )


def database_kind():
    url = os.environ.get("DATABASE_URL", "")
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


def cache_kind():
    url = os.environ.get("CACHE_URL", "")
    return "Redis" if url.startswith(("redis://", "rediss://")) else "local memory"


def print_report(report):
    print()
    print(f"Machine: {report['machine']}")
    print(f"Load average at the start: {report['load_average_at_start']}")
    print(f"Method: {report['method']}")
    print("\nAdded latency over the direct path at concurrency 1 (ms):")
    for name, added in report["added_latency_concurrency_1"].items():
        print(
            f"  {name:22} p50 {added['p50_ms']:6.2f}  p99 {added['p99_ms']:6.2f}  "
            f"first event p50 {added['first_event_p50_ms']:6.2f}  p99 {added['first_event_p99_ms']:6.2f}"
        )
    recorded = report["recorded"]
    print(
        f"Usage events stored: {recorded['events']} of {recorded['requests']} "
        "requests sent through the gateway"
    )
    print("\nThroughput (req/s) and latency p50/p99 (ms):")
    for key, result in report["load"].items():
        name, mode, level = key.split("/")
        direct = report["load"][f"direct/{mode}/{level}"]
        overhead = (
            ""
            if name == "direct"
            else f"  +{result['p50_ms'] - direct['p50_ms']:.1f} ms p50 over direct"
        )
        print(
            f"  c={level:<3} {mode:6} {name:14} {result['rps']:8.0f}  "
            f"{result['p50_ms']:7.1f} / {result['p99_ms']:7.1f} "
            f"({result['p99_ms'] / result['p50_ms']:.1f}x){overhead}"
        )


def write_report(report):
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = report["when"].replace(":", "").replace("+0000", "Z")
    path = RESULTS / f"gateway_bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
