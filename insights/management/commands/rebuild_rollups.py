import datetime

from django.core.management.base import BaseCommand, CommandError

from insights import rollups
from insights.models import UsageEvent
from workspace.models import Project


class Command(BaseCommand):
    help = "Recompute usage rollups and latency histograms from the stored events."

    def add_arguments(self, parser):
        parser.add_argument(
            "--project",
            action="append",
            default=[],
            help="Project slug to rebuild; repeat for several. Default: every project.",
        )
        parser.add_argument(
            "--since",
            help="Rebuild only from this UTC date (YYYY-MM-DD) on.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count the events that would be summed and change nothing.",
        )

    def handle(self, *args, project, since, dry_run, **options):
        project_ids = None
        if project:
            found = dict(
                Project.objects.filter(slug__in=project).values_list("slug", "pk")
            )
            missing = sorted(set(project) - set(found))
            if missing:
                raise CommandError(
                    f"Project not found: {', '.join(missing)}. Pass project slugs "
                    "as shown in the admin's project list."
                )
            project_ids = list(found.values())
        since_at = None
        if since is not None:
            try:
                since_date = datetime.date.fromisoformat(since)
            except ValueError:
                raise CommandError(
                    f"--since {since!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-01."
                ) from None
            since_at = datetime.datetime.combine(
                since_date, datetime.time(), tzinfo=datetime.UTC
            )

        if dry_run:
            events = UsageEvent.objects.all()
            if project_ids is not None:
                events = events.filter(project_id__in=project_ids)
            if since_at is not None:
                events = events.filter(occurred_at__gte=since_at)
            self.stdout.write(f"Would rebuild rollups from {events.count():,} events.")
            return

        self.stdout.write("Rebuilding rollups …")
        total = rollups.rebuild(project_ids, since_at, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Rebuilt rollups from {total:,} events."))
