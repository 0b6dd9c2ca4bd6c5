"""Benchmark `manage.py review_mappings` on a large project in PostgreSQL.

Builds one project with 100,000 keys, 5,000 applications and 10 million usage
events (sizes adjustable), then times the review over it and counts its
queries. Data is generated in SQL with generate_series, so building the full
set takes a few minutes rather than hours.

Run from the repository root:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aiw_governance_bench \\
        .venv/bin/python benchmarks/review_mappings.py [--events 1000000] [--reuse]

The database name must end in _bench because the script empties its tables.
It is created when missing and migrated. Results
are printed and written to benchmarks/results/review_mappings.json.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workspace.settings")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/aiw_governance_bench"
PROJECT_SLUG = "bench-review"
EVENT_SPAN = datetime.timedelta(days=90)
RUNS = 3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--applications", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the data of an earlier run with the same sizes.",
    )
    args = parser.parse_args()
    if min(args.keys, args.applications, args.events) < 1:
        parser.error("--keys, --applications and --events must be 1 or more.")
    if args.applications > args.keys:
        parser.error("--applications must not exceed --keys.")
    return args


def ensure_database(url):
    """Create the benchmark database when it does not exist yet."""
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )


def setup_django():
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not url.startswith("postgres"):
        sys.exit(f"DATABASE_URL must point to PostgreSQL, got {url!r}.")
    name = url.rsplit("/", 1)[1].split("?")[0]
    if not name.endswith("_bench"):
        sys.exit(
            f"The database name must end in _bench, got {name!r}: the benchmark "
            "empties its tables."
        )
    ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def table(model):
    return model._meta.db_table


def column(model, field_name):
    return model._meta.get_field(field_name).column


def generate(args):
    """Delete the old benchmark project and build a new one in SQL."""
    from django.db import connection
    from django.utils import timezone

    from workspace.models import Project, Provider

    with connection.cursor() as cursor:
        # TRUNCATE is instant, unlike deleting 10 million rows. It empties
        # every table that references projects or users, so setup_django
        # accepts only a database whose name ends in _bench.
        cursor.execute(f"TRUNCATE {table(Project)}, auth_user CASCADE")
    now = timezone.now()
    project = Project.objects.create(name="Benchmark review", slug=PROJECT_SLUG)
    provider = Provider.objects.create(
        project=project,
        name="Bench upstream",
        context_path="bench",
        vendor="openai",
        base_url="http://127.0.0.1:9/v1",
    )
    with connection.cursor() as cursor:
        users = insert_users(cursor, project)
        first_key = insert_keys(cursor, args.keys, project, provider, users, now)
        first_app = insert_applications(cursor, args.applications, project, now)
        insert_mappings(cursor, args, first_key, first_app, now)
        started = time.monotonic()
        insert_events(cursor, args, project, provider, first_key, first_app, now)
        print(
            f"  inserted {args.events:,} events in {time.monotonic() - started:.0f} s"
        )
    started = time.monotonic()
    build_rollups(project)
    print(f"  built rollups in {time.monotonic() - started:.0f} s")
    with connection.cursor() as cursor:
        # VACUUM sets the visibility map and hint bits that autovacuum keeps
        # set on a production table; right after a bulk load they are missing.
        cursor.execute("VACUUM ANALYZE")
    return project


def build_rollups(project):
    """Sum the events into the 15-minute rollups that insights.review_usage reads.

    `manage.py rebuild_rollups` summed in Python when this was written and
    needs over an hour for 10 million events on 2 cores, so each rollup
    table is filled here with one INSERT … SELECT instead. The grouping
    columns are read from the table's unique constraint, so the function
    follows changes to the rollup tables. Only the 15-minute level is built
    because the review reads no other.
    """
    from django.db import connection
    from django.db.models import UniqueConstraint

    from insights.models import RollupLevel, UsageEvent

    for model in rollup_tables():
        constraint = next(
            constraint
            for constraint in model._meta.constraints
            if isinstance(constraint, UniqueConstraint)
        )
        dimensions = [
            name
            for name in constraint.fields
            if name not in ("project", "level", "bucket_start")
        ]
        metrics = [
            field.column
            for field in model._meta.concrete_fields
            if not field.primary_key
            and field.name not in {*dimensions, "project", "level", "bucket_start"}
        ]
        columns = ["level", "bucket_start", "project_id", *dimensions, *metrics]
        selects = [
            "%(level)s",
            "date_bin('15 minutes', occurred_at, '2000-01-01 00:00+00')",
            "project_id",
            *[DIMENSION_SQL.get(name, name) for name in dimensions],
            *[METRIC_SQL.get(name, f"sum({name})") for name in metrics],
        ]
        group_by = ", ".join(str(n) for n in range(2, 4 + len(dimensions)))
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {table(model)} ({", ".join(columns)})
                SELECT {", ".join(selects)}
                FROM {table(UsageEvent)}
                WHERE project_id = %(project)s
                GROUP BY {group_by}
                """,
                {"level": RollupLevel.QUARTER_HOUR, "project": project.pk},
            )


# How a rollup column is computed from usage event columns; any other metric
# column is the sum of the event column of the same name.
DIMENSION_SQL = {
    "application_id": "coalesce(application_id, 0)",
    "key_id": "coalesce(key_id, 0)",
}
METRIC_SQL = {
    "requests": "count(*)",
    "errors": "count(*) FILTER (WHERE status_code >= 400 OR error_type <> '')",
    "cost_nanousd": "coalesce(sum(cost_nanousd), 0)",
    "unpriced_requests": "count(*) FILTER (WHERE cost_nanousd IS NULL)",
}


def rollup_tables():
    """Return the insights models that count requests per time bucket."""
    from django.apps import apps

    return [
        model
        for model in apps.get_app_config("insights").get_models()
        if {"bucket_start", "requests"}
        <= {field.name for field in model._meta.concrete_fields}
    ]


def insert_users(cursor, project):
    """Insert 60 users; the first 50 are members, so 10 count as departed."""
    from django.contrib.auth import get_user_model

    from workspace.models import Membership

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        user_model(username=f"bench-{n}", password="!") for n in range(60)
    )
    Membership.objects.bulk_create(
        Membership(project=project, user=user, role="developer") for user in users[:50]
    )
    return [user.pk for user in users]


def insert_keys(cursor, count, project, provider, users, now):
    """Insert keys with a mix of states; returns the first key id.

    Of every 100 keys, 5 are revoked, 5 expired and 3 expire within 14 days.
    Another 10 were last used 40 to 90 days ago, and the rest an hour ago.
    """
    from workspace.models import APIKey

    cursor.execute(
        f"""
        INSERT INTO {table(APIKey)}
            (project_id, name, provider_id, prefix, secret_hash, created_by_id,
             created_at, updated_at, expires_at, revoked_at, last_used_at)
        SELECT %(project)s, 'bench-key-' || n, %(provider)s,
               'aiw-' || lpad(to_hex(n), 8, '0'),
               md5(n::text) || md5('salt' || n::text),
               (%(users)s::bigint[])[1 + n %% 60],
               %(now)s - interval '120 days', %(now)s,
               CASE WHEN n %% 100 BETWEEN 5 AND 9 THEN %(now)s - interval '2 days'
                    WHEN n %% 100 BETWEEN 10 AND 12 THEN %(now)s + interval '5 days'
               END,
               CASE WHEN n %% 100 < 5 THEN %(now)s - interval '3 days' END,
               CASE WHEN n %% 100 BETWEEN 13 AND 22
                    THEN %(now)s - (40 + n %% 50) * interval '1 day'
                    ELSE %(now)s - interval '1 hour' END
        FROM generate_series(1, %(count)s) AS n
        """,
        {
            "project": project.pk,
            "provider": provider.pk,
            "users": users,
            "now": now,
            "count": count,
        },
    )
    cursor.execute(
        f"SELECT min(id) FROM {table(APIKey)} WHERE project_id = %s", [project.pk]
    )
    return cursor.fetchone()[0]


def insert_applications(cursor, count, project, now):
    from genai_apps.models import GenAIApplication

    cursor.execute(
        f"""
        INSERT INTO {table(GenAIApplication)}
            (project_id, name, description, created_at, updated_at)
        SELECT %s, 'bench-app-' || n, '', %s - interval '120 days', %s
        FROM generate_series(1, %s) AS n
        """,
        [project.pk, now, now, count],
    )
    cursor.execute(
        f"SELECT min(id) FROM {table(GenAIApplication)} WHERE project_id = %s",
        [project.pk],
    )
    return cursor.fetchone()[0]


def mapped_applications(args):
    """The first 98 % of applications get keys; the rest have none."""
    return max(1, args.applications * 98 // 100)


def insert_mappings(cursor, args, first_key, first_app, now):
    """Map the first 80 % of keys round-robin over the mapped applications."""
    from genai_apps.models import KeyMapping

    cursor.execute(
        f"""
        INSERT INTO {table(KeyMapping)} (key_id, application_id, attached_at)
        SELECT %(first_key)s + k, %(first_app)s + k %% %(apps)s, %(now)s
        FROM generate_series(0, %(mapped)s - 1) AS k
        """,
        {
            "first_key": first_key,
            "first_app": first_app,
            "apps": mapped_applications(args),
            "mapped": args.keys * 80 // 100,
            "now": now,
        },
    )


def insert_events(cursor, args, project, provider, first_key, first_app, now):
    """Insert the usage events in one INSERT … SELECT over generate_series.

    Events are evenly spaced over the last 90 days and inserted oldest
    first, as a gateway appends them, so the BRIN index on occurred_at
    works as in production. Event n uses key number (n * 7919) mod keys,
    except that in the last 40 days the keys which insert_keys marks as
    last used 40 to 90 days ago are replaced by the key 10 places on. The
    application follows the mapping rule of insert_mappings. Adapt this
    function, and only this one, when the usage event table changes.
    """
    from insights.models import UsageEvent

    columns = [
        "event_id",
        "occurred_at",
        "project",
        "key",
        "application",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cache_write_tokens",
        "latency_ms",
        "status_code",
        "error_type",
        "cost_nanousd",
    ]
    column_list = ", ".join(column(UsageEvent, name) for name in columns)
    cursor.execute(
        f"""
        INSERT INTO {table(UsageEvent)} ({column_list})
        SELECT gen_random_uuid(),
               %(now)s - (%(count)s - n) * %(step_ms)s * interval '1 millisecond',
               %(project)s,
               %(first_key)s + k,
               CASE WHEN k < %(mapped)s THEN %(first_app)s + k %% %(apps)s END,
               %(provider)s, 'gpt-4o-mini', 200, 40, 0, 0, 0, 350 + n %% 500,
               CASE WHEN n %% 50 = 0 THEN 500 ELSE 200 END,
               CASE WHEN n %% 50 = 0 THEN 'upstream_5xx' ELSE '' END,
               (n %% 1000) * 1000
        FROM generate_series(1::bigint, %(count)s) AS n,
             LATERAL (SELECT (n * 7919) %% %(keys)s AS drawn) AS draw,
             LATERAL (
                 SELECT CASE WHEN n > %(recent_from)s
                              AND (drawn + 1) %% 100 BETWEEN 13 AND 22
                             THEN (drawn + 10) %% %(keys)s
                             ELSE drawn END AS k
             ) AS picked
        """,
        {
            "now": now,
            "project": project.pk,
            "provider": provider.pk,
            "first_key": first_key,
            "first_app": first_app,
            "apps": mapped_applications(args),
            "mapped": args.keys * 80 // 100,
            "keys": args.keys,
            "count": args.events,
            "step_ms": EVENT_SPAN.total_seconds() * 1000 / args.events,
            "recent_from": args.events - args.events * 40 // 90,
        },
    )


def existing_sizes():
    from genai_apps.models import GenAIApplication
    from insights.models import UsageEvent
    from workspace.models import APIKey, Project

    project = Project.objects.filter(slug=PROJECT_SLUG).first()
    if project is None:
        return None, None
    sizes = {
        "keys": APIKey.objects.filter(project=project).count(),
        "applications": GenAIApplication.objects.filter(project=project).count(),
        "events": UsageEvent.objects.filter(project=project).count(),
    }
    return project, sizes


def time_review():
    """Run the review RUNS times; return (seconds per run, queries, findings)."""
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from genai_apps.models import MappingReview

    timings = []
    for _ in range(RUNS):
        with open(os.devnull, "w") as devnull:
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                call_command(
                    "review_mappings",
                    "--project",
                    PROJECT_SLUG,
                    "--format",
                    "json",
                    stdout=devnull,
                    stderr=devnull,
                )
                timings.append(time.perf_counter() - started)
    review = MappingReview.objects.latest("started_at")
    queries = [
        {"seconds": float(query["time"]), "sql": query["sql"][:120]}
        for query in captured.captured_queries
    ]
    return timings, queries, review


def machine():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": server_version,
    }


def main():
    args = parse_args()
    setup_django()
    wanted = {
        "keys": args.keys,
        "applications": args.applications,
        "events": args.events,
    }

    project, sizes = existing_sizes()
    if not (args.reuse and sizes == wanted):
        print(
            f"Generating {args.keys:,} keys, {args.applications:,} applications "
            f"and {args.events:,} events…"
        )
        started = time.monotonic()
        generate(args)
        print(f"  generated in {time.monotonic() - started:.0f} s")
    else:
        print("Reusing the data of an earlier run.")

    timings, queries, review = time_review()
    result = {
        "benchmark": "review_mappings",
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "machine": machine(),
        "method": (
            f"One project generated in SQL (benchmarks/review_mappings.py); "
            f"`review_mappings --project {PROJECT_SLUG} --format json` run "
            f"{RUNS} times in one process after ANALYZE, wall time per run."
        ),
        "sizes": wanted,
        "seconds": {
            "min": round(min(timings), 3),
            "median": round(statistics.median(timings), 3),
            "max": round(max(timings), 3),
        },
        "query_count": len(queries),
        "queries": queries,
        "findings": review.counts,
        "target_seconds": 10,
    }
    print(
        json.dumps({key: result[key] for key in result if key != "queries"}, indent=2)
    )
    for query in queries:
        print(f"  {query['seconds']:7.3f} s  {query['sql']}")
    results_dir = REPO / "benchmarks" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "review_mappings.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(f"Wrote {results_dir / 'review_mappings.json'}")


if __name__ == "__main__":
    main()
