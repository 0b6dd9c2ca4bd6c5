import urllib.parse

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from genai_apps.demo import (
    DASHBOARD_URL,
    SIMULATOR_URL,
    create_demo_workspace,
    delete_demo_workspace,
    demo_keys_path,
    point_demo_providers_at,
    sign_in_text,
    write_demo_keys,
)
from insights.demo import load_demo_traffic
from workspace.models import Project


class Command(BaseCommand):
    help = (
        "Load the demo project, its keys and applications, and real trace traffic. "
        "The demo keys' secrets go to var/demo-keys.json for `replay_trace --demo`."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Delete an existing demo project first and load it again.",
        )
        parser.add_argument(
            "--traffic-volume",
            type=float,
            default=1.0,
            help="Scale the demo traffic; 1 loads about 85,000 usage events "
            "(default 1).",
        )
        parser.add_argument(
            "--simulator-url",
            default=SIMULATOR_URL,
            help=f"Origin of the upstream simulator the demo providers call "
            f"(default {SIMULATOR_URL}).",
        )
        parser.add_argument(
            "--dashboard-url",
            default=DASHBOARD_URL,
            help=f"Address printed for signing in (default {DASHBOARD_URL}).",
        )

    def handle(self, *args, force=False, traffic_volume=1.0, **options):
        if traffic_volume <= 0:
            raise CommandError(f"--traffic-volume {traffic_volume:g} must be above 0.")
        simulator_url = options["simulator_url"]
        parts = urllib.parse.urlsplit(simulator_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path.strip("/")
        ):
            raise CommandError(
                f"--simulator-url {simulator_url!r} must be an origin such as "
                "http://127.0.0.1:8001, without a path."
            )
        self.dashboard_url = options["dashboard_url"]
        existing = Project.objects.filter(slug="demo").first()
        if existing and not force:
            self.stdout.write("Demo project already loaded; use --force to reload it.")
            if not demo_keys_path().exists():
                self.stderr.write(
                    f"{demo_keys_path()} is missing, so `replay_trace --demo` cannot "
                    "call with the demo keys; run `manage.py seed_demo --force` to "
                    "write it again (this deletes your changes to the demo project)."
                )
            self._point_providers(simulator_url)
            self._print_sign_in()
            return
        with transaction.atomic():
            if existing:
                delete_demo_workspace(existing)
            demo = create_demo_workspace(self.stdout)
            # Inside the transaction: if the file cannot be written, the demo
            # is not loaded either, and the next run tries again.
            path = write_demo_keys(demo)
        self.stdout.write(f"Wrote the demo keys' secrets to {path} (demo only).")
        load_demo_traffic(demo, self.stdout, volume=traffic_volume)
        self._point_providers(simulator_url)
        self._print_sign_in()

    def _point_providers(self, simulator_url):
        if point_demo_providers_at(simulator_url):
            self.stdout.write(
                f"Demo providers now call the simulator at {simulator_url}."
            )

    def _print_sign_in(self):
        self.stdout.write(self.style.SUCCESS(sign_in_text(self.dashboard_url)))
