"""The periodic mapping review: what needs a platform team's attention.

build_report reads projects, keys, applications and usage figures with a
fixed number of queries (six), whatever the number of keys, and returns a
Report whose findings the review command prints, mails and records.
"""

import dataclasses
import datetime
import math
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    When,
)
from django.utils.module_loading import import_string

from genai_apps.models import GenAIApplication
from workspace.models import APIKey, Membership

# Finding kinds in report order. The strings are part of the JSON and CSV
# output, so they never change meaning; new kinds are appended.
REVOKED_KEY = "revoked_key"
EXPIRED_KEY = "expired_key"
EXPIRING_KEY = "expiring_key"
UNUSED_KEY = "unused_key"
APPLICATION_WITHOUT_KEYS = "application_without_keys"
APPLICATION_WITHOUT_TRAFFIC = "application_without_traffic"
UNMAPPED_KEY_WITH_TRAFFIC = "unmapped_key_with_traffic"
CREATOR_NOT_MEMBER = "creator_not_member"

KINDS = [
    REVOKED_KEY,
    EXPIRED_KEY,
    EXPIRING_KEY,
    UNUSED_KEY,
    APPLICATION_WITHOUT_KEYS,
    APPLICATION_WITHOUT_TRAFFIC,
    UNMAPPED_KEY_WITH_TRAFFIC,
    CREATOR_NOT_MEMBER,
]
KIND_LABELS = {
    REVOKED_KEY: ("revoked key", "revoked keys"),
    EXPIRED_KEY: ("expired key", "expired keys"),
    EXPIRING_KEY: ("expiring key", "expiring keys"),
    UNUSED_KEY: ("unused key", "unused keys"),
    APPLICATION_WITHOUT_KEYS: ("application without keys", "applications without keys"),
    APPLICATION_WITHOUT_TRAFFIC: (
        "application without traffic",
        "applications without traffic",
    ),
    UNMAPPED_KEY_WITH_TRAFFIC: (
        "unmapped key with traffic",
        "unmapped keys with traffic",
    ),
    CREATOR_NOT_MEMBER: (
        "key whose creator left the project",
        "keys whose creator left the project",
    ),
}
# Mapped keys of these kinds are what --detach removes from their application.
DETACHABLE_KINDS = frozenset({REVOKED_KEY, EXPIRED_KEY, UNUSED_KEY})

KEY_FIELDS = [
    "id",
    "name",
    "prefix",
    "project_id",
    "expires_at",
    "revoked_at",
    "last_use_before_window",
    "creation_if_never_used",
    "used_in_window",
    "created_in_window",
    "created_by__username",
    "mapping__application_id",
    "creator_left",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewOptions:
    stale_days: int = 30
    expiring_days: int = 14


@dataclasses.dataclass(slots=True)
class Finding:
    kind: str
    project: object
    application: dict | None = None
    key: dict | None = None
    # The moment the finding refers to, which depends on the kind: when the
    # key was revoked or expires, when it or the application was last used.
    at: datetime.datetime | None = None
    requests: int | None = None
    cost_usd: Decimal | None = None
    request_share: float | None = None
    cost_share: float | None = None
    message: str = ""

    @property
    def detachable(self):
        return self.kind in DETACHABLE_KINDS and self.application is not None


@dataclasses.dataclass(slots=True)
class Report:
    projects: list
    options: ReviewOptions
    generated_at: datetime.datetime
    findings: list
    key_count: int = 0
    application_count: int = 0

    def counts(self):
        counts = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    def findings_for(self, project):
        return [f for f in self.findings if f.project.pk == project.pk]

    def detachable(self):
        return [f for f in self.findings if f.detachable]


def load_usage_source():
    """Import the module named by settings.MAPPING_REVIEW_USAGE_SOURCE."""
    path = settings.MAPPING_REVIEW_USAGE_SOURCE
    return (
        import_string(f"{path}.key_usage_since"),
        import_string(f"{path}.application_last_traffic"),
    )


def build_report(projects, options, now):
    """Review the given projects and return a Report of every finding."""
    projects = list(projects)
    project_ids = [project.pk for project in projects]
    since = now - datetime.timedelta(days=options.stale_days)
    horizon = now + datetime.timedelta(days=options.expiring_days)
    key_usage_since, application_last_traffic = load_usage_source()

    key_projects = dict(
        APIKey.objects.filter(project_id__in=project_ids)
        .order_by()
        .values_list("id", "project_id")
    )
    keys = list(
        _candidate_keys(project_ids, now, since, horizon).order_by().values(*KEY_FIELDS)
    )
    applications = list(
        GenAIApplication.objects.live()
        .filter(project_id__in=project_ids)
        .annotate(key_count=Count("mappings"))
        .order_by()
        .values("id", "name", "project_id", "created_at", "key_count")
    )
    usage = key_usage_since(project_ids, since)
    last_traffic = application_last_traffic(project_ids)

    context = _Context(
        projects={project.pk: project for project in projects},
        applications={app["id"]: app for app in applications},
        options=options,
        now=now,
        since=since,
    )
    findings = [
        *_key_findings(context, keys, usage),
        *_application_findings(context, applications, last_traffic),
        *_unmapped_traffic_findings(
            context, keys, usage, _project_totals(key_projects, usage)
        ),
    ]
    findings.sort(key=_report_order)
    return Report(
        projects=sorted(projects, key=lambda project: project.name.lower()),
        options=options,
        generated_at=now,
        findings=findings,
        key_count=len(key_projects),
        application_count=len(applications),
    )


def _candidate_keys(project_ids, now, since, horizon):
    """Return the keys that may lead to a finding, leaving out healthy ones.

    Healthy mapped keys are most keys in a well-run project, and reading
    their details would take most of the review's time. Whether the creator
    is still a member is decided here too, in SQL.
    """
    creator_is_member = Exists(
        Membership.objects.filter(
            project_id=OuterRef("project_id"), user_id=OuterRef("created_by_id")
        )
    )
    active = Q(revoked_at__isnull=True) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    creator_left = Q(created_by__isnull=False) & active & ~creator_is_member
    needs_review = (
        Q(revoked_at__isnull=False)
        | Q(expires_at__lte=horizon)
        | Q(last_used_at__isnull=True)
        | Q(last_used_at__lt=since)
    )
    return (
        APIKey.objects.filter(project_id__in=project_ids)
        .annotate(
            creator_left=_boolean(creator_left),
            used_in_window=_boolean(Q(last_used_at__gte=since)),
            created_in_window=_boolean(Q(created_at__gte=since)),
            # Times only where a message shows them: parsing a timestamp per
            # key costs more than the rest of the review on large projects.
            last_use_before_window=Case(
                When(last_used_at__lt=since, then=F("last_used_at"))
            ),
            creation_if_never_used=Case(
                When(last_used_at__isnull=True, then=F("created_at"))
            ),
        )
        .filter(Q(mapping__isnull=True) | needs_review | Q(creator_left=True))
    )


def _boolean(condition):
    return ExpressionWrapper(condition, output_field=BooleanField())


@dataclasses.dataclass(slots=True)
class _Context:
    projects: dict
    applications: dict
    options: ReviewOptions
    now: datetime.datetime
    since: datetime.datetime


def _report_order(finding):
    application_name = finding.application["name"] if finding.application else None
    return (
        finding.project.name.lower(),
        finding.project.pk,
        application_name is None,
        (application_name or "").lower(),
        KINDS.index(finding.kind),
        (finding.key["name"].lower() if finding.key else ""),
        finding.key["id"] if finding.key else 0,
    )


def _application_ref(context, application_id):
    if application_id is None:
        return None
    application = context.applications[application_id]
    return {"id": application["id"], "name": application["name"]}


def _key_ref(key):
    return {
        "id": key["id"],
        "name": key["name"],
        "prefix": key["prefix"],
        "created_by": key["created_by__username"],
    }


def _key_findings(context, keys, usage):
    for key in keys:
        mapped = key["mapping__application_id"] is not None
        if mapped:
            yield from _mapped_key_findings(context, key, usage)
        if key["creator_left"]:
            yield _finding(
                context,
                CREATOR_NOT_MEMBER,
                key,
                message=(
                    f"Created by {key['created_by__username']}, who is no longer "
                    "a member of the project; the key is still active."
                ),
            )


def _mapped_key_findings(context, key, usage):
    now = context.now
    if key["revoked_at"] is not None:
        yield _finding(
            context,
            REVOKED_KEY,
            key,
            at=key["revoked_at"],
            message=f"Revoked on {_day(key['revoked_at'])} but still attached.",
        )
        return
    if key["expires_at"] is not None and key["expires_at"] <= now:
        yield _finding(
            context,
            EXPIRED_KEY,
            key,
            at=key["expires_at"],
            message=f"Expired on {_day(key['expires_at'])} but still attached.",
        )
        return
    expiring_before = now + datetime.timedelta(days=context.options.expiring_days)
    if key["expires_at"] is not None and key["expires_at"] <= expiring_before:
        # Rounded up, so a key expiring in 30 hours is "in 2 days", never "0".
        days_left = math.ceil((key["expires_at"] - now) / datetime.timedelta(days=1))
        yield _finding(
            context,
            EXPIRING_KEY,
            key,
            at=key["expires_at"],
            message=(
                f"Expires on {_day(key['expires_at'])} "
                f"(in {days_left} day{'' if days_left == 1 else 's'})."
            ),
        )
    if _is_unused(key, usage):
        last_used = key["last_use_before_window"]
        stale_days = context.options.stale_days
        yield _finding(
            context,
            UNUSED_KEY,
            key,
            at=last_used,
            message=(
                f"Not used for {stale_days} days; last used on {_day(last_used)}."
                if last_used
                else f"Never used since it was created on {_day(key['creation_if_never_used'])}."
            ),
        )


def _is_unused(key, usage):
    """A key is unused when it made no call in the window and is older than it.

    A key that was never used counts as unused from its creation.
    """
    if key["id"] in usage:
        return False
    return not (key["created_in_window"] or key["used_in_window"])


def _application_findings(context, applications, last_traffic):
    for application in applications:
        if application["key_count"] == 0:
            yield _application_finding(
                context,
                APPLICATION_WITHOUT_KEYS,
                application,
                message="Has no keys, so no traffic can be attributed to it.",
            )
            continue
        last = last_traffic.get(application["id"])
        if application["created_at"] < context.since and (
            last is None or last < context.since
        ):
            stale_days = context.options.stale_days
            yield _application_finding(
                context,
                APPLICATION_WITHOUT_TRAFFIC,
                application,
                at=last,
                message=(
                    f"No traffic for {stale_days} days; last call on {_day(last)}."
                    if last
                    else "Has keys but no recorded traffic."
                ),
            )


def _unmapped_traffic_findings(context, keys, usage, totals):
    for key in keys:
        if key["mapping__application_id"] is not None or key["id"] not in usage:
            continue
        requests, cost = usage[key["id"]]
        total_requests, total_cost = totals[key["project_id"]]
        request_share = round(requests / total_requests, 4)
        cost_share = None
        if cost is not None and total_cost:
            cost_share = round(float(cost / total_cost), 4)
        yield _finding(
            context,
            UNMAPPED_KEY_WITH_TRAFFIC,
            key,
            requests=requests,
            cost_usd=cost,
            request_share=request_share,
            cost_share=cost_share,
            message=(
                f"Made {requests:,} request{'' if requests == 1 else 's'} "
                f"({request_share:.1%} of the project's) "
                f"in the last {context.options.stale_days} days but belongs to "
                "no application."
            ),
        )


def _project_totals(key_projects, usage):
    """Return {project_id: (requests, cost_usd)} over the keys' recent traffic.

    The cost sums the known costs; a key whose cost is unknown (None) adds
    only its requests.
    """
    totals = {}
    for key_id, (requests, cost) in usage.items():
        project_id = key_projects.get(key_id)
        if project_id is None:
            continue
        total_requests, total_cost = totals.get(project_id, (0, Decimal(0)))
        totals[project_id] = (total_requests + requests, total_cost + (cost or 0))
    return totals


def _finding(context, kind, key, **fields):
    return Finding(
        kind=kind,
        project=context.projects[key["project_id"]],
        application=_application_ref(context, key["mapping__application_id"]),
        key=_key_ref(key),
        **fields,
    )


def _application_finding(context, kind, application, **fields):
    return Finding(
        kind=kind,
        project=context.projects[application["project_id"]],
        application={"id": application["id"], "name": application["name"]},
        **fields,
    )


def _day(moment):
    return f"{moment:%Y-%m-%d}"


def plural(count, kind):
    singular, many = KIND_LABELS[kind]
    return f"{count:,} {singular if count == 1 else many}"
