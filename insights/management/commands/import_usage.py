import datetime
import json
import random
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.template.defaultfilters import pluralize

from insights import importers
from insights.canonical import RecordError, check_not_future, parse_timestamp
from workspace.models import APIKey, Project


class Command(BaseCommand):
    help = "Import usage from a public LLM trace or a canonical NDJSON/CSV file."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--format", required=True, choices=importers.FORMATS)
        parser.add_argument(
            "--project", required=True, help="Slug of the project to import into."
        )
        parser.add_argument(
            "--key",
            action="append",
            default=[],
            help="API key id or display prefix (aiw-…) to attribute trace rows to; repeat for several.",
        )
        parser.add_argument(
            "--key-mode",
            choices=("round-robin", "client", "mapping"),
            default="round-robin",
            help="round-robin: rows cycle through the keys; client: each trace client keeps one key; "
            "mapping: clients map to keys by --mapping.",
        )
        parser.add_argument(
            "--mapping",
            type=Path,
            help='JSON file {"client": key id or prefix}; clients are file names such as chunk-143 '
            "or AzureLLMInferenceTrace_code.",
        )
        parser.add_argument(
            "--end-at",
            help="Shift times so the last row is at this ISO 8601 time, or 'now'. "
            "Relative traces (mooncake, servegen) end now by default.",
        )
        parser.add_argument(
            "--model", default="", help="Model name to record for trace rows."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="Records per transaction (default 1000).",
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="Seed for drawn and synthesised values."
        )
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="servegen: fraction of the trace's request rate to draw (default 1.0).",
        )
        parser.add_argument(
            "--dataset", type=Path, help="servegen: the dataset JSON of token PMFs."
        )
        parser.add_argument(
            "--failure-rate",
            type=float,
            default=0.02,
            help="Traces only: probability of a synthesised failed attempt before a request "
            "(default 0.02; 0 adds none).",
        )
        parser.add_argument(
            "--no-latency",
            action="store_true",
            help="Traces only: leave latency and TTFT empty instead of synthesising them.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read and check every row, report, and store nothing.",
        )

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(
                f"Project {options['project']!r} not found. Pass a project slug as "
                "shown in the admin's project list."
            )
        if options["batch_size"] < 1 or options["batch_size"] > 10_000:
            raise CommandError("--batch-size must be between 1 and 10000.")
        if not 0 <= options["failure_rate"] < 1:
            raise CommandError("--failure-rate must be at least 0 and below 1.")
        if options["scale"] <= 0:
            raise CommandError("--scale must be above 0.")
        end_at = self._end_at(options["end_at"])

        trace = options["format"] in importers.TRACE_FORMATS
        mapper = self._mapper(project, options) if trace else None
        synthetic = None
        if trace:
            synthetic = importers.SyntheticModel(
                failure_rate=options["failure_rate"], latency=not options["no_latency"]
            )
            self.stdout.write(
                "This trace has no latency or failures: "
                + ("latency and TTFT are synthesised, " if synthetic.latency else "")
                + f"and failed attempts are added at rate {synthetic.failure_rate:g} "
                "(see docs/insights.md, Synthesised values)."
            )

        with transaction.atomic():
            for path in options["files"]:
                report = self._import_file(
                    Path(path), project, mapper, synthetic, end_at, options
                )
                self._print_report(path, report, options["dry_run"])
            if options["dry_run"]:
                transaction.set_rollback(True)

    def _end_at(self, value):
        if value is None:
            return None
        if value == "now":
            return datetime.datetime.now(datetime.UTC)
        try:
            moment = parse_timestamp(value, "--end-at")
            check_not_future(moment, "--end-at")
            return moment
        except RecordError as error:
            raise CommandError(str(error)) from None

    def _resolve_key(self, project, token):
        keys = APIKey.objects.filter(project=project)
        if str(token).isdigit():
            key = keys.filter(pk=int(token)).first()
        else:
            matches = list(keys.filter(prefix__startswith=str(token).rstrip("…"))[:2])
            if len(matches) > 1:
                raise CommandError(
                    f"Key prefix {token!r} matches several keys; give more characters or the id."
                )
            key = matches[0] if matches else None
        if key is None:
            raise CommandError(
                f"API key {token!r} not found in project {project.slug}."
            )
        return key.pk

    def _mapper(self, project, options):
        if options["key_mode"] == "mapping":
            if not options["mapping"]:
                raise CommandError("--key-mode mapping needs --mapping FILE.")
            try:
                raw = json.loads(options["mapping"].read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise CommandError(
                    f"Cannot read mapping file {options['mapping']}: {error}"
                ) from None
            if not isinstance(raw, dict):
                raise CommandError(
                    "The mapping file must be a JSON object {client: key}."
                )
            mapping = {
                client: self._resolve_key(project, key) for client, key in raw.items()
            }
            return importers.KeyMapper([], "mapping", mapping)
        if not options["key"]:
            raise CommandError(
                "Give at least one --key for trace rows, or --key-mode mapping."
            )
        key_ids = [self._resolve_key(project, token) for token in options["key"]]
        return importers.KeyMapper(key_ids, options["key_mode"])

    def _rows(self, path, options, rng):
        fmt = options["format"]
        if not path.is_file():
            raise CommandError(f"File not found: {path}")
        try:
            if fmt == "azure":
                return list(importers.read_azure(path))
            if fmt == "mooncake":
                return list(importers.read_mooncake(path))
            if fmt == "servegen":
                dataset = options["dataset"] or path.with_name(
                    path.name.replace("-trace.csv", "-dataset.json")
                )
                if not dataset.is_file():
                    raise CommandError(
                        f"No dataset for {path.name}: pass --dataset with a chunk-N-dataset.json file."
                    )
                return list(
                    importers.read_servegen(path, dataset, rng, scale=options["scale"])
                )
            if fmt == "ndjson":
                return list(importers.read_ndjson(path))
            return list(importers.read_canonical_csv(path))
        except (ValueError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {path} as {fmt}: {error}") from None

    def _import_file(self, path, project, mapper, synthetic, end_at, options):
        self.stdout.write(f"Reading {path} …")
        rows = self._rows(path, options, random.Random(options["seed"]))
        total = len(rows)

        verb = "would be imported" if options["dry_run"] else "imported"

        def progress(report):
            self.stdout.write(
                f"  {report.read:,} of {total:,} rows read, {report.imported:,} {verb}"
            )

        importer = importers.Importer(
            project,
            mapper,
            model=options["model"],
            end_at=end_at,
            batch_size=options["batch_size"],
            synthetic=synthetic,
            seed=options["seed"],
            progress=progress,
            source=f"{options['format']}:{path.name}",
        )
        if options["format"] in importers.TRACE_FORMATS:
            return importer.import_trace(rows)
        return importer.import_canonical(rows)

    def _print_report(self, path, report, dry_run):
        verb = "would be imported" if dry_run else "imported"
        self.stdout.write(
            f"{path}: {report.read:,} rows read, {report.imported:,} {verb}, "
            f"{report.duplicates:,} already stored, {report.skipped_total:,} skipped"
            + (
                f", {report.synthesized_failures:,} synthesised failed attempts"
                if report.synthesized_failures
                else ""
            )
            + f" ({report.batches:,} batch{pluralize(report.batches, 'es')})."
        )
        for reason, count in report.skipped.most_common(10):
            lines = report.skipped_lines[reason]
            where = ", ".join(str(line) for line in lines)
            if count > len(lines):
                where += f" and {count - len(lines):,} more"
            self.stdout.write(f"  line{pluralize(count)} {where}: {reason}")
        if len(report.skipped) > 10:
            self.stdout.write(f"  … and {len(report.skipped) - 10} more reasons")
