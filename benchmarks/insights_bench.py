"""Benchmark the insights data layer and pages on PostgreSQL.

Measures, in one run:
- bytes of storage per usage event (pg_total_relation_size of the event table,
  and of the rollup tables separately);
- server time of the application page (24 h, 30 d, 90 d) and the project
  overview, p50 and p95 over repeated requests through Django's test client,
  for a project with --events events and one with --small-events, both over
  90 days with 50 applications and 500 keys;
- recording throughput of record_usage in batches;
- extra memory of streaming the CSV export of --small-events events.

Events are generated with SQL (generate_series) straight into the event
table, then the rollups are built with the same rebuild path as
`manage.py rebuild_rollups`. Run:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aiw_insights_bench \\
        .venv/bin/python benchmarks/insights_bench.py --events 10000000

The database named in DATABASE_URL is dropped and created again, unless
--reuse is given. `--only recording` runs one step alone; the recording step
creates its own project, so it needs none of the generated events:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aiw_insights_bench \\
        .venv/bin/python benchmarks/insights_bench.py --reuse --only recording
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workspace.settings")
os.environ.setdefault("DEBUG", "1")
# The test client sends Host: testserver.
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

STEPS = ("storage", "pages", "recording", "export")
APPLICATIONS = 50
KEYS = 500
DAYS = 90
MODELS = [
    ("gpt-4o-mini", "0.15", "0.075", "0.6"),
    ("gpt-4o", "2.5", "1.25", "10"),
    ("o4-mini", "1.1", "0.275", "4.4"),
]


def log(message):
    print(message, flush=True)


def recreate_database(url):
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "database": version,
    }


def create_workspace(slug):
    """Create a project with APPLICATIONS applications of KEYS / APPLICATIONS keys."""
    from decimal import Decimal

    from genai_apps.models import GenAIApplication, KeyMapping
    from workspace.models import (
        APIKey,
        Project,
        Provider,
        ProviderModel,
        Vendor,
        hash_secret,
    )

    project = Project.objects.create(name=slug, slug=slug)
    provider = Provider.objects.create(
        project=project,
        name="OpenAI",
        context_path="openai",
        vendor=Vendor.OPENAI,
        base_url="http://127.0.0.1:9/v1",
    )
    for name, input_price, cached, output in MODELS:
        ProviderModel.objects.create(
            provider=provider,
            name=name,
            input_price=Decimal(input_price),
            cached_input_price=Decimal(cached),
            output_price=Decimal(output),
        )
    apps = GenAIApplication.objects.bulk_create(
        [
            GenAIApplication(project=project, name=f"Application {i:02d}")
            for i in range(APPLICATIONS)
        ]
    )
    keys = APIKey.objects.bulk_create(
        [
            APIKey(
                project=project,
                name=f"key-{i:03d}",
                provider=provider,
                prefix=f"aiw-{slug[:4]}{i:04d}",
                secret_hash=hash_secret(f"{slug}-{i}"),
            )
            for i in range(KEYS)
        ]
    )
    per_app = KEYS // APPLICATIONS
    # The last key of every application stays unattached, so the overview
    # has usage from keys attached to no application.
    KeyMapping.objects.bulk_create(
        [
            KeyMapping(key=key, application=apps[i // per_app])
            for i, key in enumerate(keys)
            if i % per_app != per_app - 1
        ]
    )
    return project, provider, apps, keys


def generate_events(project, provider, count, end, chunk=1_000_000):
    """Insert `count` events spread evenly over DAYS days ending at `end`, in SQL."""
    from decimal import Decimal

    from django.db import connection

    from insights.recording import Prices, _price_ids

    price_ids = _price_ids(
        [Prices(Decimal(i), Decimal(c), Decimal(o), None) for _, i, c, o in MODELS]
    )
    model_price = [
        (
            name,
            price_ids[Prices(Decimal(i), Decimal(c), Decimal(o), None).signature],
            Decimal(i),
            Decimal(c),
            Decimal(o),
        )
        for name, i, c, o in MODELS
    ]
    start = end - datetime.timedelta(days=DAYS)
    step_ms = DAYS * 86_400_000 / count
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.id, m.application_id FROM workspace_apikey k "
            "LEFT JOIN genai_apps_keymapping m ON m.key_id = k.id WHERE k.project_id = %s ORDER BY k.id",
            [project.pk],
        )
        key_rows = cursor.fetchall()
    key_ids = [row[0] for row in key_rows]
    app_ids = [row[1] for row in key_rows]
    models = "ARRAY[" + ",".join(f"'{m[0]}'" for m in model_price) + "]"
    prices = "ARRAY[" + ",".join(str(m[1]) for m in model_price) + "]"
    # Per 1M tokens, times 1000, gives nano-dollars per token.
    input_nano = (
        "ARRAY[" + ",".join(str(m[2] * 1000) for m in model_price) + "]::numeric[]"
    )
    cached_nano = (
        "ARRAY[" + ",".join(str(m[3] * 1000) for m in model_price) + "]::numeric[]"
    )
    output_nano = (
        "ARRAY[" + ",".join(str(m[4] * 1000) for m in model_price) + "]::numeric[]"
    )
    sql = f"""
    INSERT INTO insights_usageevent (
        event_id, occurred_at, project_id, key_id, application_id, provider_id, proxy_id,
        cost_nanousd, price_id, prompt_tokens, completion_tokens, cached_tokens,
        reasoning_tokens, cache_write_tokens, latency_ms, ttft_ms, status_code, error_type, model)
    SELECT
        (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || substr(md5(%(project)s || ':' || i), 1, 20))::uuid,
        ts, %(project)s, keys[k], NULLIF(apps[k], 0), %(provider)s, NULL,
        CASE WHEN failed THEN 0 ELSE round(
            (prompt - cached) * ({input_nano})[m] + cached * ({cached_nano})[m] + completion * ({output_nano})[m]
        )::bigint END,
        ({prices})[m],
        CASE WHEN failed THEN 0 ELSE prompt END,
        CASE WHEN failed THEN 0 ELSE completion END,
        CASE WHEN failed THEN 0 ELSE cached END,
        CASE WHEN failed OR m <> 3 THEN 0 ELSE completion / 2 END,
        0,
        latency, latency / 4 + 50,
        CASE WHEN failed THEN 429 ELSE 200 END,
        CASE WHEN failed THEN 'rate_limit' ELSE '' END,
        ({models})[m]
    FROM (
        SELECT i, ts, k, m, failed, prompt, completion, (prompt * cache_share)::int AS cached, latency
        FROM (
            SELECT
                i,
                %(start)s::timestamptz + (i * %(step)s) * interval '1 millisecond' AS ts,
                1 + (hashint4(i) & 2147483647) %% %(keys)s AS k,
                1 + (hashint4(i + 7) & 2147483647) %% 3 AS m,
                random() < 0.02 AS failed,
                50 + (random() * random() * 4000)::int AS prompt,
                5 + (random() * random() * 800)::int AS completion,
                CASE WHEN random() < 0.3 THEN random() ELSE 0 END AS cache_share,
                (exp(6.2 + random() * 1.6 + random() * 0.8))::int AS latency
            FROM generate_series(%(first)s, %(last)s) AS i
        ) raw
    ) drawn,
    (SELECT %(key_ids)s::bigint[] AS keys, %(app_ids)s::bigint[] AS apps) lookup
    """
    done = 0
    with connection.cursor() as cursor:
        # Skip the foreign key triggers while generating: every id is valid
        # by construction, and the checks would triple the generation time.
        cursor.execute("SET session_replication_role = replica")
    try:
        while done < count:
            size = min(chunk, count - done)
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(
                    sql,
                    {
                        "project": project.pk,
                        "provider": provider.pk,
                        "start": start,
                        "step": step_ms,
                        "keys": KEYS,
                        "first": done,
                        "last": done + size - 1,
                        "key_ids": key_ids,
                        "app_ids": [a or 0 for a in app_ids],
                    },
                )
            done += size
            log(
                f"  {done:,} of {count:,} events generated ({time.monotonic() - started:.1f} s for this chunk)"
            )
    finally:
        # Without the triggers, the recording step of the same run would be
        # measured without its foreign key checks.
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


def time_requests(client, url, repeat):
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    samples = []
    cpu = []
    for _ in range(repeat):
        started = time.perf_counter()
        cpu_started = time.process_time()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert response.status_code == 200
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 1),
        # CPU time of the Django process alone (PostgreSQL's work excluded),
        # which other jobs on a shared machine inflate less than wall time.
        "python_cpu_p50_ms": round(statistics.median(cpu), 1),
        "runs": repeat,
    }


def page_times(project, apps, user, repeat):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    # The application with the median traffic is as good as any: keys are hashed uniformly.
    app = apps[len(apps) // 2]
    results = {}
    for preset in ("24h", "30d", "90d"):
        url = (
            reverse("insights:application", args=[project.slug, app.pk])
            + f"?range={preset}&tz=UTC"
        )
        results[f"application {preset}"] = time_requests(client, url, repeat)
    for preset in ("24h", "30d", "90d"):
        url = (
            reverse("insights:overview", args=[project.slug])
            + f"?range={preset}&tz=UTC"
        )
        results[f"overview {preset}"] = time_requests(client, url, repeat)
    url = (
        reverse("insights:application", args=[project.slug, app.pk])
        + "?range=90d&tz=Asia/Kolkata"
    )
    results["application 90d Asia/Kolkata"] = time_requests(client, url, repeat)
    return results


def storage(project_ids):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE insights_usageevent")
        cursor.execute("SELECT count(*) FROM insights_usageevent")
        events = cursor.fetchone()[0]
        sizes = {}
        for table in (
            "insights_usageevent",
            "insights_usagerollup",
            "insights_keyrollup",
            "insights_usagehistogram",
        ):
            cursor.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s)",
                [table, table],
            )
            total, heap = cursor.fetchone()
            sizes[table] = {"total_bytes": total, "heap_bytes": heap}
    event_bytes = sizes["insights_usageevent"]["total_bytes"]
    rollup_bytes = (
        sizes["insights_usagerollup"]["total_bytes"]
        + sizes["insights_keyrollup"]["total_bytes"]
        + sizes["insights_usagehistogram"]["total_bytes"]
    )
    return {
        "events": events,
        "bytes_per_event": round(event_bytes / events, 1),
        "heap_bytes_per_event": round(
            sizes["insights_usageevent"]["heap_bytes"] / events, 1
        ),
        "rollup_bytes_per_event": round(rollup_bytes / events, 1),
        "tables": sizes,
    }


def recording_throughput(batch_sizes, total):
    """Record `total` events per batch size through record_usage; return events/s."""
    import random

    from django.db import connection

    from insights.recording import UsageRecord, record_usage

    project, provider, apps, keys = create_workspace(f"bench-rec-{int(time.time())}")
    rng = random.Random(1)
    results = {}
    now = datetime.datetime.now(datetime.UTC)
    for batch in batch_sizes:
        records = [
            UsageRecord(
                project_id=project.pk,
                key_id=keys[rng.randrange(len(keys))].pk,
                # Consecutive events 50 µs apart, as a gateway's batch writer
                # sees 20,000 calls per second.
                occurred_at=now + datetime.timedelta(microseconds=50 * i),
                model=MODELS[rng.randrange(3)][0],
                prompt_tokens=rng.randrange(50, 4000),
                completion_tokens=rng.randrange(5, 800),
                latency_ms=rng.randrange(100, 20_000),
                ttft_ms=rng.randrange(50, 2000),
            )
            for i in range(total)
        ]
        started = time.perf_counter()
        cpu_started = time.process_time()
        for i in range(0, total, batch):
            record_usage(records[i : i + batch])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        results[f"batch {batch}"] = {
            "events": total,
            "seconds": round(elapsed, 2),
            "events_per_second": round(total / elapsed),
            # CPU time of this process alone, without PostgreSQL's work. A
            # gateway's event loop loses this time to record_usage (the GIL).
            "python_cpu_us_per_event": round(cpu / total * 1e6, 1),
        }
        log(
            f"  batches of {batch}: {total / elapsed:,.0f} events/s, "
            f"Python CPU {cpu / total * 1e6:.1f} µs per event"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return results


def rss_mb(pid="self"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# uvicorn for the export measured as production serves it, on 127.0.0.1.
EXPORT_SERVER_PORT = 8310


def export_memory(project, user):
    """Measure the events export in process (test client) and from uvicorn."""
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    url = (
        reverse("insights:overview-export", args=[project.slug])
        + "?range=90d&tz=UTC&table=events"
    )
    return {
        "test_client": _export_in_process(client, url),
        "uvicorn": _export_from_uvicorn(client.cookies["sessionid"].value, url),
    }


def _export_from_uvicorn(session_id, url):
    """Download the export from a uvicorn process, sampling that process's memory."""
    import httpx

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "workspace.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(EXPORT_SERVER_PORT),
            "--no-access-log",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{EXPORT_SERVER_PORT}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/accounts/login/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        before = rss_mb(server.pid)
        peak = before
        size = 0
        lines = 0
        first_byte = None
        started = time.perf_counter()
        with httpx.stream(
            "GET", base + url, cookies={"sessionid": session_id}, timeout=600
        ) as response:
            for chunk in response.iter_bytes():
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                lines += chunk.count(b"\n")
                peak = max(peak, rss_mb(server.pid))
        return {
            "rows": lines - 1,
            "megabytes_written": round(size / 1e6, 1),
            "seconds": round(time.perf_counter() - started, 1),
            "first_byte_seconds": round(first_byte or 0, 2),
            "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1),
            "extra_mb": round(peak - before, 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=15)


def _export_in_process(client, url):
    before = rss_mb()
    peak = before
    rows = 0
    size = 0
    started = time.perf_counter()
    response = client.get(url)
    for chunk in response.streaming_content:
        rows += 1
        size += len(chunk)
        if rows % 20_000 == 0:
            peak = max(peak, rss_mb())
    peak = max(peak, rss_mb())
    return {
        "rows": rows - 1,
        "megabytes_written": round(size / 1e6, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "extra_mb": round(peak - before, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="Events of the large project."
    )
    parser.add_argument(
        "--small-events",
        type=int,
        default=1_000_000,
        help="Events of the comparison project.",
    )
    parser.add_argument(
        "--repeat", type=int, default=30, help="Timed requests per page."
    )
    parser.add_argument(
        "--record-events",
        type=int,
        default=100_000,
        help="Events recorded per batch size.",
    )
    parser.add_argument(
        "--record-batches",
        type=int,
        nargs="+",
        default=[1000, 5000, 10_000],
        help="Batch sizes (events per record_usage call) of the recording step.",
    )
    parser.add_argument(
        "--only",
        choices=STEPS,
        help="Run this step alone. Without --reuse, a recording-only run "
        "creates an empty database and generates no events.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file of the results (default: benchmarks/results/insights.json, "
        "or insights_STEP.json with --only).",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the database of an earlier run and only measure pages, storage, recording and export.",
    )
    args = parser.parse_args()
    if args.output is None:
        name = f"insights_{args.only}.json" if args.only else "insights.json"
        args.output = ROOT / "benchmarks" / "results" / name

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql://"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database; it will be dropped and created again."
        )
    if not args.reuse:
        recreate_database(url)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    info = machine()
    log(f"Machine: {info}")
    if args.only == "recording":
        # The recording step creates its own project and needs no events.
        projects, user = {}, None
    elif args.reuse:
        projects = reused_projects()
        user = get_user_model().objects.get(username="bench")
    else:
        user = get_user_model().objects.create_user(
            "bench", password="bench-password-123"
        )
        projects = build_projects(args, user)
    measure(args, info, projects, user)


def reused_projects():
    from django.db.models import Count

    from genai_apps.models import GenAIApplication
    from insights.models import UsageEvent
    from workspace.models import Project

    projects = {}
    for label in ("small", "large"):
        project = Project.objects.get(slug=f"bench-{label}")
        apps = list(GenAIApplication.objects.filter(project=project).order_by("pk"))
        count = UsageEvent.objects.filter(project=project).aggregate(n=Count("pk"))["n"]
        projects[label] = (project, apps, count, None, None)
    return projects


def build_projects(args, user):
    from insights import rollups
    from workspace.models import Membership, Role

    end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    projects = {}
    for label, count in (("small", args.small_events), ("large", args.events)):
        project, provider, apps, keys = create_workspace(f"bench-{label}")
        Membership.objects.create(project=project, user=user, role=Role.VIEWER)
        log(f"Generating {count:,} events for {project.slug} …")
        started = time.monotonic()
        generate_events(project, provider, count, end)
        generated = time.monotonic() - started
        log(f"Building rollups for {project.slug} with the rebuild path …")
        started = time.monotonic()
        rollups.rebuild([project.pk])
        rebuilt = time.monotonic() - started
        log(f"  generated in {generated:.0f} s, rollups rebuilt in {rebuilt:.0f} s")
        projects[label] = (project, apps, count, round(generated), round(rebuilt))
    return projects


def measure(args, info, projects, user):
    from django.db import connection

    steps = (args.only,) if args.only else STEPS
    if steps != ("recording",):
        # Fresh statistics for the page queries; the recording step reads
        # none of the generated data.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    results = {
        "machine": info,
        "method": __doc__.split("Events are generated")[0].strip(),
        "load_average_at_start": os.getloadavg(),
    }
    if "storage" in steps:
        measure_storage(results, projects)
    if "pages" in steps:
        measure_pages(results, args, projects, user)
    if "recording" in steps:
        log("Recording throughput …")
        results["recording"] = recording_throughput(
            args.record_batches, args.record_events
        )
    if "export" in steps:
        log("CSV export of the small project's events …")
        results["export"] = export_memory(projects["small"][0], user)
        log(f"  {results['export']}")
    results["load_average_at_end"] = os.getloadavg()
    results["git_commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    results["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    log(f"Wrote {args.output}")


def measure_storage(results, projects):
    from django.db import connection

    results["storage"] = storage([p[0].pk for p in projects.values()])
    log(f"Storage: {results['storage']['bytes_per_event']} bytes per event")
    # The two projects' generated ids interleave in time, so the primary key
    # index was filled out of order and half-empty pages remain. Live ids are
    # time-ordered and append, which REINDEX reproduces.
    with connection.cursor() as cursor:
        cursor.execute("REINDEX TABLE insights_usageevent")
    results["storage_after_reindex"] = storage([p[0].pk for p in projects.values()])
    log(
        f"Storage after REINDEX: {results['storage_after_reindex']['bytes_per_event']} bytes per event"
    )


def measure_pages(results, args, projects, user):
    results["pages"] = {}
    for project, apps, count, generated, rebuilt in projects.values():
        log(f"Timing pages of {project.slug} ({count:,} events) …")
        results["pages"][f"{count:,} events"] = {
            "events": count,
            "generate_seconds": generated,
            "rollup_rebuild_seconds": rebuilt,
            **page_times(project, apps, user, args.repeat),
        }
        for name, figures in results["pages"][f"{count:,} events"].items():
            if isinstance(figures, dict):
                log(
                    f"  {name}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, Python CPU p50 {figures['python_cpu_p50_ms']} ms"
                )


if __name__ == "__main__":
    main()
