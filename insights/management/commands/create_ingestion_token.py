from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from insights.models import IngestionToken
from insights.tokens import create_ingestion_token
from workspace.models import Project


class Command(BaseCommand):
    help = "Create, list or revoke ingestion API tokens of a project."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Slug of the project.")
        parser.add_argument(
            "--name", help="Name of the new token, e.g. the gateway that uses it."
        )
        parser.add_argument(
            "--list", action="store_true", help="List the project's tokens."
        )
        parser.add_argument(
            "--revoke", metavar="PREFIX", help="Revoke the token with this prefix."
        )

    def handle(self, *args, **options):
        project, name, revoke = options["project"], options["name"], options["revoke"]
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(
                f"Project {project!r} not found. Pass a project slug as shown in "
                "the admin's project list."
            )
        if options["list"]:
            tokens = IngestionToken.objects.filter(project=found)
            for token in tokens:
                state = "revoked" if token.revoked_at else "active"
                used = token.last_used_at.isoformat() if token.last_used_at else "never"
                self.stdout.write(
                    f"{token.prefix}…  {state:<8} last used {used}  {token.name}"
                )
            count = tokens.count()
            self.stdout.write(f"{count} token{pluralize(count)}.")
            return
        if revoke:
            from django.utils import timezone

            updated = IngestionToken.objects.filter(
                project=found, prefix=revoke.rstrip("…"), revoked_at__isnull=True
            ).update(revoked_at=timezone.now())
            if not updated:
                raise CommandError(
                    f"No active token with prefix {revoke!r} in project {project}."
                )
            self.stdout.write(self.style.SUCCESS(f"Revoked token {revoke}."))
            return
        if not name:
            raise CommandError("Give --name for the new token (or --list / --revoke).")
        token, secret = create_ingestion_token(found, name)
        self.stdout.write(
            "Ingestion token (shown once; store it in your gateway's secrets):"
        )
        self.stdout.write(secret)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created token {token.prefix}… for project {found.slug}."
            )
        )
