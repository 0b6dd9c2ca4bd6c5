"""Usage figures for the mapping review, over raw usage events.

genai_apps may not import insights, so the review command loads this module
by the dotted path in settings.MAPPING_REVIEW_USAGE_SOURCE. Each function
runs one aggregate query, whatever the number of keys or applications.
"""

from decimal import Decimal

from django.db.models import Count, Max, Sum

from insights.models import UsageEvent

# The stored cost unit; this module and cost_to_usd are the only places in
# governance code that know it.
COST_FIELD = "cost_nanousd"
NANOUSD_PER_USD = Decimal(10**9)


def cost_to_usd(stored_cost):
    """Convert a stored cost (or a sum of them) to Decimal USD; None stays None."""
    if stored_cost is None:
        return None
    return Decimal(stored_cost) / NANOUSD_PER_USD


def key_usage_since(project_ids, since):
    """Return {key_id: (requests, cost_usd)} for calls made at or after `since`.

    Events without a key are left out. Unknown costs count as zero, so
    cost_usd is a lower bound when some models have no price.
    """
    rows = (
        UsageEvent.objects.filter(
            project_id__in=project_ids, occurred_at__gte=since, key_id__isnull=False
        )
        .values("key_id")
        .annotate(requests=Count("pk"), cost=Sum(COST_FIELD))
        .order_by()
        .values_list("key_id", "requests", "cost")
    )
    return {
        key_id: (requests, cost_to_usd(cost or 0)) for key_id, requests, cost in rows
    }


def application_last_traffic(project_ids):
    """Return {application_id: datetime of its latest call}.

    An event counts for the application that owned its key at call time.
    """
    rows = (
        UsageEvent.objects.filter(
            project_id__in=project_ids, application_id__isnull=False
        )
        .values("application_id")
        .annotate(last=Max("occurred_at"))
        .order_by()
        .values_list("application_id", "last")
    )
    return dict(rows)
