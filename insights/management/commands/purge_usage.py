import datetime

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from insights.models import UsageEvent
from workspace.command_options import MAX_DAYS, check_days
from workspace.models import Project

DEFAULT_BATCH_SIZE = 10_000


def rollup_models():
    """Return the insights models that --rollups purges.

    Every pre-aggregated table in insights has a `bucket_start` time and a
    project, so new rollup tables take part without a change here.
    """
    models = []
    for model in apps.get_app_config("insights").get_models():
        field_names = {field.name for field in model._meta.get_fields()}
        if {"bucket_start", "project"} <= field_names:
            models.append(model)
    return models


class Command(BaseCommand):
    help = (
        "Delete usage events older than a retention period; rollups stay "
        "unless --rollups is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days",
            type=int,
            required=True,
            metavar="DAYS",
            help="Delete events recorded more than this many days ago, 1 to "
            f"{MAX_DAYS:,}.",
        )
        parser.add_argument(
            "--project",
            metavar="SLUG",
            help="Delete only this project's events (default: every project).",
        )
        parser.add_argument(
            "--rollups",
            action="store_true",
            help="Also delete rollup rows whose time bucket is before the cutoff. "
            "Charts over that period then show nothing.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted and change nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per transaction (default: {DEFAULT_BATCH_SIZE:,}).",
        )

    def handle(self, *args, **options):
        days = options["older_than_days"]
        check_days("--older-than-days", days, minimum=1)
        if options["batch_size"] < 1:
            raise CommandError(
                f"--batch-size must be 1 or more, got {options['batch_size']}."
            )
        project = self._get_project(options["project"])
        cutoff = timezone.now() - datetime.timedelta(days=days)

        targets = [(UsageEvent, "occurred_at")]
        if options["rollups"]:
            targets += [(model, "bucket_start") for model in rollup_models()]
        counts = {}
        for model, time_field in targets:
            queryset = model._default_manager.filter(**{f"{time_field}__lt": cutoff})
            if project is not None:
                queryset = queryset.filter(project=project)
            counts[model] = self._purge(
                queryset, model, options["dry_run"], options["batch_size"]
            )
        self.stdout.write(self._summary(counts, cutoff, options))

    def _get_project(self, slug):
        if slug is None:
            return None
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(
                f"Project {slug!r} not found. Pass a project slug as shown in the "
                "admin's project list."
            )
        return project

    def _purge(self, queryset, model, dry_run, batch_size):
        total = queryset.count()
        if dry_run or not total:
            return total
        label = model._meta.verbose_name_plural
        deleted = 0
        while True:
            # Short transactions keep locks and WAL growth small on big tables.
            with transaction.atomic():
                ids = list(
                    queryset.order_by().values_list("pk", flat=True)[:batch_size]
                )
                if not ids:
                    break
                batch, _ = model._default_manager.filter(pk__in=ids).delete()
            deleted += batch
            self.stdout.write(f"Deleted {deleted:,} of {total:,} {label}…")
        return deleted

    def _summary(self, counts, cutoff, options):
        verb = "Would delete" if options["dry_run"] else "Deleted"
        parts = [
            f"{count:,} {model._meta.verbose_name_plural}"
            for model, count in counts.items()
        ]
        listed = (
            parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
        )
        line = f"{verb} {listed} from before {cutoff:%Y-%m-%d %H:%M} UTC"
        if options["project"]:
            line += f" in {options['project']}"
        if not options["rollups"]:
            line += "; rollups kept"
        elif len(counts) == 1:
            line += "; no rollup tables are defined"
        if options["dry_run"]:
            line += " (dry run, nothing was deleted)"
        return line + "."
