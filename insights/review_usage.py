"""Usage figures for the scheduled key mapping review.

Both functions read the 15-minute rollups with one query each, whatever the
number of projects, keys or applications. A scheduled command can afford
to scan them; the pages use insights.queries, which reads coarser levels.
"""

from django.db.models import Max, Sum

from insights.models import KeyRollup, RollupLevel, nanousd_to_usd
from insights.rollups import bucket_start


def key_usage_since(project_ids, since):
    """Return {key_id: (requests, cost in USD or None)} from `since` until now.

    `since` is rounded down to its 15-minute bucket. Cost is None when every
    request of the key had no price; keys without usage are absent.
    """
    start = bucket_start(since, RollupLevel.QUARTER_HOUR)
    rows = (
        KeyRollup.objects.filter(
            project_id__in=project_ids,
            level=RollupLevel.QUARTER_HOUR,
            bucket_start__gte=start,
        )
        .exclude(key_id=0)
        .values("key_id")
        .annotate(
            requests=Sum("requests"),
            cost=Sum("cost_nanousd"),
            unpriced=Sum("unpriced_requests"),
        )
        .order_by()
    )
    usage = {}
    for row in rows:
        cost = (
            None if row["unpriced"] == row["requests"] else nanousd_to_usd(row["cost"])
        )
        usage[row["key_id"]] = (row["requests"], cost)
    return usage


def application_last_traffic(project_ids):
    """Return {application_id: start of the last 15-minute bucket with traffic}.

    The time is the start of the bucket, so it is at most 15 minutes early.
    """
    rows = (
        KeyRollup.objects.filter(
            project_id__in=project_ids, level=RollupLevel.QUARTER_HOUR
        )
        .exclude(application_id=0)
        .values("application_id")
        .annotate(last=Max("bucket_start"))
        .order_by()
    )
    return {row["application_id"]: row["last"] for row in rows}
