from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from genai_apps.demo import (
    DEMO_SIGN_IN,
    create_demo_workspace,
    delete_demo_workspace,
    demo_keys_path,
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

    def handle(self, *args, force=False, traffic_volume=1.0, **options):
        if traffic_volume <= 0:
            raise CommandError(f"--traffic-volume {traffic_volume:g} must be above 0.")
        existing = Project.objects.filter(slug="demo").first()
        if existing and not force:
            self.stdout.write("Demo project already loaded; use --force to reload it.")
            if not demo_keys_path().exists():
                self.stderr.write(
                    f"{demo_keys_path()} is missing, so `replay_trace --demo` cannot "
                    "call with the demo keys; run `manage.py seed_demo --force`."
                )
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
        self._print_sign_in()

    def _print_sign_in(self):
        self.stdout.write(self.style.SUCCESS(DEMO_SIGN_IN))
