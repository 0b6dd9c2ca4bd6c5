import dataclasses
import sys
import time

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.utils import timezone

from genai_apps.models import MappingReview, MappingSource
from genai_apps.review import ReviewOptions, build_report
from genai_apps.review_output import (
    render_csv,
    render_json,
    render_table,
    summary_line,
)
from genai_apps.services import detach_key
from workspace.command_options import MAX_DAYS, check_days
from workspace.models import APIKey, Project


@dataclasses.dataclass(slots=True)
class DetachPlan:
    requested: bool
    applied: bool
    findings: list
    detached_count: int = 0


class Command(BaseCommand):
    help = (
        "Report stale, revoked, expired and unmapped keys and idle applications "
        "per project, and optionally detach the keys that should go."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--project",
            metavar="SLUG",
            help="Review only the project with this slug (default: every project).",
        )
        parser.add_argument(
            "--stale-days",
            type=int,
            default=30,
            help="Days without traffic after which a key or application counts as "
            f"unused, 1 to {MAX_DAYS:,} (default: 30).",
        )
        parser.add_argument(
            "--expiring-days",
            type=int,
            default=14,
            help="Report keys that expire within this many days, 0 to "
            f"{MAX_DAYS:,} (default: 14).",
        )
        parser.add_argument(
            "--format",
            choices=["table", "json", "csv"],
            default="table",
            help="Output format (default: table). With json and csv, stdout holds "
            "only the report and the summary line goes to stderr.",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Detach revoked, expired and unused keys from their applications. "
            "A dry run unless --apply is given.",
        )
        parser.add_argument(
            "--apply",
            action="store_true",
            help="With --detach: make the changes instead of printing them.",
        )
        parser.add_argument(
            "--fail-on-findings",
            action="store_true",
            help="Exit with status 1 when anything is found.",
        )
        parser.add_argument(
            "--email",
            action="append",
            default=[],
            metavar="ADDRESS",
            help="Send the report to this address through Django's email "
            "settings; repeat for several recipients.",
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        now = timezone.now()
        self._check_options(options)
        project = self._get_project(options["project"])
        projects = [project] if project else Project.objects.order_by("name")
        review_options = ReviewOptions(
            stale_days=options["stale_days"], expiring_days=options["expiring_days"]
        )

        report = build_report(projects, review_options, now)
        detach = DetachPlan(
            requested=options["detach"],
            applied=options["detach"] and options["apply"],
            findings=report.detachable() if options["detach"] else [],
        )
        recorded_options = self._recorded_options(options)
        self._write_report(report, recorded_options, detach, options["format"])
        if detach.requested:
            self._detach(detach, options["format"])
        summary = summary_line(report, detach)
        if options["email"]:
            self._send_email(report, recorded_options, detach, summary, options)
        self._notice(options["format"]).write(summary)

        self._record_run(project, recorded_options, report, detach, started)
        if options["fail_on_findings"] and report.findings:
            raise CommandError(
                f"Found {len(report.findings)} finding(s); exiting with status 1 "
                "because of --fail-on-findings.",
                returncode=1,
            )

    def _check_options(self, options):
        check_days("--stale-days", options["stale_days"], minimum=1)
        check_days("--expiring-days", options["expiring_days"], minimum=0)
        if options["apply"] and not options["detach"]:
            raise CommandError("--apply only works with --detach.")
        for address in options["email"]:
            try:
                validate_email(address)
            except ValidationError:
                raise CommandError(
                    f"--email {address!r} is not a valid email address."
                ) from None

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

    def _recorded_options(self, options):
        return {
            "project": options["project"],
            "stale_days": options["stale_days"],
            "expiring_days": options["expiring_days"],
            "detach": options["detach"],
            "apply": options["apply"],
        }

    def _notice(self, output_format):
        """Return the stream for progress and summary lines.

        JSON and CSV keep stdout machine-readable, so their notices go to
        stderr.
        """
        return self.stdout if output_format == "table" else self.stderr

    def _write_report(self, report, options, detach, output_format):
        if output_format == "json":
            self.stdout.write(render_json(report, options, detach), ending="")
        elif output_format == "csv":
            self.stdout.write(render_csv(report), ending="")
        else:
            self.stdout.write(render_table(report), ending="")

    def _detach(self, detach, output_format):
        notice = self._notice(output_format)
        if not detach.applied:
            for finding in detach.findings:
                notice.write(f"Would detach {_describe(finding)}.")
            return
        keys = APIKey.objects.select_related("mapping__application").in_bulk(
            [finding.key["id"] for finding in detach.findings]
        )
        for finding in detach.findings:
            key = keys.get(finding.key["id"])
            mapping = getattr(key, "mapping", None) if key else None
            if mapping is None or mapping.application_id != finding.application["id"]:
                notice.write(f"Skipped {_describe(finding)}: no longer attached.")
                continue
            if detach_key(mapping.application, key, None, source=MappingSource.REVIEW):
                detach.detached_count += 1
                notice.write(f"Detached {_describe(finding)}.")

    def _send_email(self, report, options, detach, summary, command_options):
        count = len(report.findings)
        subject = (
            f"Mapping review: {count:,} finding{'' if count == 1 else 's'}"
            if count
            else "Mapping review: nothing to report"
        )
        body = render_table(report) + "\n" + summary + "\n"
        connection = get_connection()
        to_console = isinstance(connection, ConsoleEmailBackend)
        if to_console:
            # The console backend writes to stdout by default. Stdout must
            # contain only the report, so the message goes to the raw stderr
            # stream (call_command passes it in the options).
            stream = command_options.get("stderr") or sys.stderr
            connection = get_connection(stream=stream)
        message = EmailMessage(
            subject=subject,
            body=body,
            to=command_options["email"],
            connection=connection,
        )
        message.attach(
            "mapping-review.json",
            render_json(report, options, detach),
            "application/json",
        )
        message.send()
        recipients = ", ".join(command_options["email"])
        if to_console:
            self.stderr.write(
                f"Warning: the report for {recipients} was written to the console "
                "(stderr), not sent, because EMAIL_BACKEND is the console backend. "
                "Set EMAIL_BACKEND and EMAIL_HOST to send mail."
            )
        else:
            self._notice(command_options["format"]).write(
                f"Sent the report to {recipients}."
            )

    def _record_run(self, project, options, report, detach, started):
        MappingReview.objects.create(
            project=project,
            started_at=report.generated_at,
            duration_ms=round((time.monotonic() - started) * 1000),
            options=options,
            finding_count=len(report.findings),
            counts=report.counts(),
            detached_count=detach.detached_count,
        )


def _describe(finding):
    key = finding.key
    reason = finding.kind.removesuffix("_key")
    return (
        f"{reason} key “{key['name']}” ({key['prefix']}…) from "
        f"“{finding.application['name']}” in {finding.project.slug}"
    )
