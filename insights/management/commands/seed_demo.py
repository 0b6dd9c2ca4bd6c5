from django.core.management.base import BaseCommand
from django.db import transaction

from genai_apps.demo import DEMO_SIGN_IN, create_demo_workspace, delete_demo_workspace
from insights.demo import load_demo_traffic
from workspace.models import Project


class Command(BaseCommand):
    help = "Load the demo project, its keys and applications, and real trace traffic."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Delete an existing demo project first and load it again.",
        )

    def handle(self, *args, force=False, **options):
        existing = Project.objects.filter(slug="demo").first()
        if existing and not force:
            self.stdout.write("Demo project already loaded; use --force to reload it.")
            self._print_sign_in()
            return
        with transaction.atomic():
            if existing:
                delete_demo_workspace(existing)
            demo = create_demo_workspace(self.stdout)
        load_demo_traffic(demo, self.stdout)
        self._print_sign_in()

    def _print_sign_in(self):
        self.stdout.write(self.style.SUCCESS(DEMO_SIGN_IN))
