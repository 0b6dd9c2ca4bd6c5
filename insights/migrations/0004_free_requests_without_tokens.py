from django.db import migrations


def price_requests_without_tokens(apps, schema_editor):
    """Set the cost of stored events that used no tokens to 0 instead of unknown.

    Rollups keep counting these events as unpriced until they are summed
    again: run `manage.py rebuild_rollups --since DATE` from the first
    such event's date (printed below when there is one).
    """
    UsageEvent = apps.get_model("insights", "UsageEvent")
    free = UsageEvent.objects.filter(
        cost_nanousd__isnull=True,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        cache_write_tokens=0,
    )
    first = free.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    updated = free.update(cost_nanousd=0)
    if updated:
        print(
            f"\n  {updated} events without tokens now cost $0; run "
            f"`manage.py rebuild_rollups --since {first:%Y-%m-%d}` to update "
            "the rollups."
        )


class Migration(migrations.Migration):
    dependencies = [("insights", "0003_split_key_rollups")]

    operations = [
        migrations.RunPython(price_requests_without_tokens, migrations.RunPython.noop)
    ]
