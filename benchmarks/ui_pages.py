"""Benchmark the browser pages of a large project in PostgreSQL.

Builds one project with 20,000 API keys, 2,000 GenAI applications and
10,000 key mappings (sizes adjustable). Then it requests each list page, an
application's details page and the key picker through Django's test client.
For each page it prints the median and slowest response time and the number
of queries. The client runs in-process, so the times include the view, the
queries and the template rendering but no network or WSGI server.

Run from the repository root:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aiw_ui_bench \\
        .venv/bin/python benchmarks/ui_pages.py [--keys 20000] [--runs 20]

The database name must end in _bench because the script empties its tables.
It is created when missing and migrated. Results are printed and written to
benchmarks/results/ui_pages.json.
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
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/aiw_ui_bench"
PROJECT_SLUG = "bench-ui"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--applications", type=int, default=2_000)
    parser.add_argument("--mapped", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if min(args.keys, args.applications, args.runs) < 1:
        parser.error("--keys, --applications and --runs must be 1 or more.")
    if not args.applications <= args.mapped <= args.keys:
        parser.error("--mapped must be between --applications and --keys.")
    return args


def ensure_database(url):
    """Create the benchmark database when it does not exist yet."""
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?")[0]
    if not name.endswith("_bench"):
        sys.exit(f"Refusing to empty {name!r}: the database name must end in _bench.")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )


def build_project(args):
    """Create the project, its members, providers, keys and applications."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from genai_apps.demo import delete_demo_workspace
    from genai_apps.models import GenAIApplication, KeyMapping
    from workspace.models import (
        APIKey,
        AppProxy,
        Membership,
        Project,
        Provider,
        Role,
        Vendor,
        generate_secret,
        hash_secret,
    )

    existing = Project.objects.filter(slug=PROJECT_SLUG).first()
    if existing is not None:
        delete_demo_workspace(existing)
    project = Project.objects.create(name="Benchmark", slug=PROJECT_SLUG)
    user, _ = get_user_model().objects.get_or_create(username="bench-owner")
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    providers = [
        Provider.objects.create(
            project=project,
            name=f"Provider {index}",
            context_path=f"provider-{index}",
            vendor=Vendor.OPENAI,
            base_url="http://127.0.0.1:9/v1",
        )
        for index in range(5)
    ]
    proxies = [
        AppProxy.objects.create(
            project=project,
            name=f"Proxy {index}",
            context_path=f"proxy-{index}",
            provider=providers[index],
        )
        for index in range(5)
    ]

    now = timezone.now()
    keys = []
    for index in range(args.keys):
        secret = generate_secret()
        keys.append(
            APIKey(
                project=project,
                name=f"key-{index:06d}",
                provider=providers[index % 5] if index % 2 else None,
                proxy=None if index % 2 else proxies[index % 5],
                prefix=secret[:12],
                secret_hash=hash_secret(secret),
                created_by=user,
                created_at=now - datetime.timedelta(minutes=index),
                revoked_at=now if index % 50 == 0 else None,
            )
        )
    keys = APIKey.objects.bulk_create(keys, batch_size=2_000)
    applications = GenAIApplication.objects.bulk_create(
        [
            GenAIApplication(
                project=project,
                name=f"Application {index:05d}",
                description="Benchmark application.",
                created_by=user,
            )
            for index in range(args.applications)
        ],
        batch_size=2_000,
    )
    KeyMapping.objects.bulk_create(
        [
            KeyMapping(
                key=keys[index],
                application=applications[index % args.applications],
                attached_by=user,
            )
            for index in range(args.mapped)
        ],
        batch_size=2_000,
    )
    return project, user, applications[0]


def measure(client, url, runs, headers=None):
    """Request url `runs` times; return timings in ms and the query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, headers=headers or {})  # Warm caches and templates.
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, headers=headers or {})
        timings.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            sys.exit(f"GET {url} returned {response.status_code}.")
    with CaptureQueriesContext(connection) as queries:
        client.get(url, headers=headers or {})
    return {
        "median_ms": round(statistics.median(timings), 1),
        "max_ms": round(max(timings), 1),
        "queries": len(queries),
    }


def main():
    args = parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    project, user, application = build_project(args)
    # Fresh planner statistics, as autovacuum would gather after bulk inserts.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"Built the project in {time.perf_counter() - started:.1f} s.")

    client = Client()
    client.force_login(user)
    slug = project.slug
    pages = {
        "application list": reverse("genai_apps:application-list", args=[slug]),
        "application list, search": reverse("genai_apps:application-list", args=[slug])
        + "?q=Application%2001",
        "application details": reverse(
            "genai_apps:application-detail", args=[slug, application.pk]
        ),
        "key picker": reverse(
            "genai_apps:application-attach-keys", args=[slug, application.pk]
        ),
        "key list": reverse("workspace:key-list", args=[slug]),
        "key list, page 300": reverse("workspace:key-list", args=[slug]) + "?page=300",
        "key list, revoked": reverse("workspace:key-list", args=[slug])
        + "?status=revoked",
        "provider list": reverse("workspace:provider-list", args=[slug]),
        "proxy list": reverse("workspace:proxy-list", args=[slug]),
    }
    results = {}
    for name, url in pages.items():
        results[name] = measure(client, url, args.runs)
        figures = results[name]
        print(
            f"{name:<28} median {figures['median_ms']:>7.1f} ms  "
            f"max {figures['max_ms']:>7.1f} ms  {figures['queries']:>2} queries"
        )

    record = {
        "benchmark": "ui_pages",
        "method": "Django test client in-process, logged in as the owner; "
        f"{args.runs} timed GETs per page after one warm-up.",
        "sizes": {
            "keys": args.keys,
            "applications": args.applications,
            "mapped_keys": args.mapped,
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "database": settings.DATABASES["default"]["ENGINE"],
        },
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "pages": results,
    }
    output = REPO / "benchmarks" / "results" / "ui_pages.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"Wrote {output.relative_to(REPO)}.")


if __name__ == "__main__":
    main()
