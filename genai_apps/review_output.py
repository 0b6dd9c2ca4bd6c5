"""Renderings of a mapping review Report: table, JSON and CSV.

The JSON payload and the CSV columns are a stable interface for scripts and
alerting; docs/governance.md documents them. Add fields, never rename them.
"""

import csv
import io
import json
from decimal import Decimal

from genai_apps.review import KIND_LABELS, KINDS, plural

JSON_VERSION = 1
COST_QUANTUM = Decimal("0.000000001")
CSV_COLUMNS = [
    "project",
    "application_id",
    "application",
    "key_id",
    "key_name",
    "key_prefix",
    "kind",
    "at",
    "requests",
    "cost_usd",
    "request_share",
    "cost_share",
    "message",
]
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
TABLE_NAME_WIDTH = 32


def format_cost(cost):
    """Format Decimal USD with nine decimals, the resolution of stored costs."""
    if cost is None:
        return None
    return format(cost.quantize(COST_QUANTUM), "f")


def format_time(moment):
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def finding_payload(finding):
    usage = None
    if finding.requests is not None:
        usage = {
            "requests": finding.requests,
            "cost_usd": format_cost(finding.cost_usd),
            "request_share": finding.request_share,
            "cost_share": finding.cost_share,
        }
    return {
        "kind": finding.kind,
        "application": finding.application,
        "key": finding.key,
        "at": format_time(finding.at),
        "usage": usage,
        "message": finding.message,
    }


def report_payload(report, options, detach):
    """Return the report as the documented JSON structure (a dict)."""
    return {
        "version": JSON_VERSION,
        "generated_at": format_time(report.generated_at),
        "options": options,
        "finding_count": len(report.findings),
        "counts": report.counts(),
        "projects": [
            {
                "slug": project.slug,
                "name": project.name,
                "findings": [
                    finding_payload(finding) for finding in report.findings_for(project)
                ],
            }
            for project in report.projects
        ],
        "detach": {
            "requested": detach.requested,
            "applied": detach.applied,
            "keys": [_detach_payload(finding) for finding in detach.findings],
        },
    }


def _detach_payload(finding):
    return {
        "project": finding.project.slug,
        "application": finding.application,
        "key": finding.key,
        "reason": finding.kind,
    }


def render_json(report, options, detach):
    # Compact on purpose: json.dumps with indent falls back to the pure-Python
    # encoder, which takes seconds on a report with tens of thousands of
    # findings. Pipe the output through `jq .` to read it.
    return json.dumps(report_payload(report, options, detach)) + "\n"


def neutralise_cell(value):
    """Prefix a quote to text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def render_csv(report):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for finding in report.findings:
        application = finding.application or {}
        key = finding.key or {}
        row = [
            finding.project.slug,
            application.get("id", ""),
            application.get("name", ""),
            key.get("id", ""),
            key.get("name", ""),
            key.get("prefix", ""),
            finding.kind,
            format_time(finding.at) or "",
            "" if finding.requests is None else finding.requests,
            format_cost(finding.cost_usd) or "",
            "" if finding.request_share is None else finding.request_share,
            "" if finding.cost_share is None else finding.cost_share,
            finding.message,
        ]
        writer.writerow([neutralise_cell(cell) for cell in row])
    return buffer.getvalue()


def render_table(report):
    """Return an aligned text table grouped by project and application."""
    if not report.findings:
        return ""
    rows = [("PROJECT", "APPLICATION", "KEY", "FINDING", "DETAIL")]
    for finding in report.findings:
        key = finding.key
        rows.append(
            (
                finding.project.slug,
                finding.application["name"] if finding.application else "—",
                f"{key['name']} ({key['prefix']}…)" if key else "—",
                KIND_LABELS[finding.kind][0],
                finding.message,
            )
        )
    rows = [(row[0], _shorten(row[1]), _shorten(row[2]), *row[3:]) for row in rows]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)
        )
        + "  "
        + row[4]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _shorten(text):
    if len(text) <= TABLE_NAME_WIDTH:
        return text
    return text[: TABLE_NAME_WIDTH - 1] + "…"


def summary_line(report, detach):
    """Return the one line that ends every run."""
    scope = (
        f"Reviewed {_count(len(report.projects), 'project')}, "
        f"{_count(report.key_count, 'key')} and "
        f"{_count(report.application_count, 'application')}"
    )
    if not report.findings:
        return f"{scope}: nothing to report."
    counts = report.counts()
    parts = [plural(counts[kind], kind) for kind in KINDS if counts[kind]]
    line = f"{scope}: {_count(len(report.findings), 'finding')} ({', '.join(parts)})"
    if detach.applied:
        line += f"; detached {_count(detach.detached_count, 'key')}"
    elif detach.requested:
        line += (
            f"; would detach {_count(len(detach.findings), 'key')} "
            "(dry run, add --apply to detach)"
        )
    return line + "."


def _count(number, noun):
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
