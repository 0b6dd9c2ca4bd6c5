"""Admin site for usage data and ingestion tokens, scoped to the user's projects.

Events and rollups are read-only here: events are written only by
insights.recording and deleted only by the purge_usage retention command.
"""

import datetime

from django.contrib import admin, messages
from django.utils import timezone

from insights.models import (
    IngestionToken,
    KeyRollup,
    UsageEvent,
    UsageHistogram,
    UsagePrice,
    UsageRollup,
)
from workspace.admin_scope import ProjectScopedAdmin, scoped_related_filter


class ReadOnlyMixin:
    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def recent_filter(field_name):
    """Build a list filter that shows the last 24 hours unless another window is chosen.

    Listing, counting or drawing the date hierarchy over every row of a
    10-million-row table takes tens of seconds, so the list opens on a
    recent window. Choosing a date in the date hierarchy replaces it.
    """

    class RecentFilter(admin.SimpleListFilter):
        title = "time"
        parameter_name = "recent"
        default = "24h"
        windows = {
            "1h": datetime.timedelta(hours=1),
            "24h": datetime.timedelta(days=1),
            "7d": datetime.timedelta(days=7),
            "30d": datetime.timedelta(days=30),
        }

        def __init__(self, request, params, model, model_admin):
            self.date_chosen = any(
                name.startswith(f"{field_name}__") for name in params
            )
            super().__init__(request, params, model, model_admin)

        def lookups(self, request, model_admin):
            return [
                ("1h", "Last hour"),
                ("24h", "Last 24 hours"),
                ("7d", "Last 7 days"),
                ("30d", "Last 30 days"),
                ("all", "All time"),
            ]

        def value(self):
            value = super().value()
            if value is None and not self.date_chosen:
                return self.default
            return value

        def choices(self, changelist):
            # Skip Django's "All" entry: "All time" replaces it, and no entry
            # stands for "no filter" because the default applies then.
            yield from list(super().choices(changelist))[1:]

        def queryset(self, request, queryset):
            window = self.windows.get(self.value())
            if window is None:
                return queryset
            since = timezone.now() - window
            return queryset.filter(**{f"{field_name}__gte": since})

    return RecentFilter


class StatusClassFilter(admin.SimpleListFilter):
    title = "HTTP status"
    parameter_name = "status_class"

    def lookups(self, request, model_admin):
        return [("2", "2xx success"), ("4", "4xx client error"), ("5", "5xx error")]

    def queryset(self, request, queryset):
        if self.value() not in ("2", "4", "5"):
            return queryset
        low = int(self.value()) * 100
        return queryset.filter(status_code__gte=low, status_code__lt=low + 100)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyMixin, ProjectScopedAdmin):
    list_display = [
        "occurred_at",
        "project",
        "application",
        "key",
        "model",
        "status_code",
        "error_type",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "cost",
    ]
    list_filter = [
        recent_filter("occurred_at"),
        scoped_related_filter("project", "project"),
        scoped_related_filter("application", "application"),
        scoped_related_filter("provider", "provider"),
        scoped_related_filter("proxy", "proxy"),
        StatusClassFilter,
        "error_type",
    ]
    list_select_related = ["project", "application", "key"]
    search_fields = ["model", "key__prefix", "key__name", "application__name"]
    date_hierarchy = "occurred_at"
    ordering = ["-occurred_at"]
    # Counting every event for "N total" is a full scan on large tables.
    show_full_result_count = False

    @admin.display(description="cost (USD)", ordering="cost_nanousd")
    def cost(self, obj):
        cost = obj.cost
        return "unknown" if cost is None else f"{cost:.6f}"


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyMixin, ProjectScopedAdmin):
    list_display = [
        "bucket_start",
        "level",
        "project",
        "application_id",
        "model",
        "status_code",
        "requests",
        "errors",
        "cost_nanousd",
    ]
    list_filter = [
        recent_filter("bucket_start"),
        scoped_related_filter("project", "project"),
        "level",
    ]
    list_select_related = ["project"]
    search_fields = ["model"]
    date_hierarchy = "bucket_start"
    show_full_result_count = False


@admin.register(KeyRollup)
class KeyRollupAdmin(ReadOnlyMixin, ProjectScopedAdmin):
    list_display = [
        "bucket_start",
        "level",
        "project",
        "application_id",
        "key_id",
        "requests",
        "errors",
        "cost_nanousd",
    ]
    list_filter = [
        recent_filter("bucket_start"),
        scoped_related_filter("project", "project"),
        "level",
    ]
    list_select_related = ["project"]
    date_hierarchy = "bucket_start"
    show_full_result_count = False


@admin.register(UsageHistogram)
class UsageHistogramAdmin(ReadOnlyMixin, ProjectScopedAdmin):
    list_display = ["bucket_start", "level", "metric", "project", "application_id"]
    list_filter = [
        recent_filter("bucket_start"),
        scoped_related_filter("project", "project"),
        "level",
        "metric",
    ]
    list_select_related = ["project"]
    date_hierarchy = "bucket_start"
    show_full_result_count = False


@admin.register(UsagePrice)
class UsagePriceAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Price sets that events were costed with; shared by every project, so
    only superusers see them."""

    list_display = [
        "signature",
        "input_price",
        "cached_input_price",
        "output_price",
        "cache_write_price",
    ]
    search_fields = ["signature"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_module_permission(self, request):
        return request.user.is_superuser


@admin.register(IngestionToken)
class IngestionTokenAdmin(ProjectScopedAdmin):
    """Ingestion API tokens, without their hash.

    Tokens are created with `manage.py create_ingestion_token`, which shows
    the token once, so the admin only renames and revokes them.
    """

    list_display = [
        "name",
        "prefix",
        "project",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [scoped_related_filter("project", "project")]
    list_select_related = ["project"]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "project", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "project", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(
        description="Revoke selected ingestion tokens", permissions=["change"]
    )
    def revoke_tokens(self, request, queryset):
        # The ingestion API reads revoked_at on every request, so an update()
        # takes effect at once.
        revoked = queryset.filter(revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.message_user(
            request,
            f"Revoked {revoked} ingestion token{'' if revoked == 1 else 's'}.",
            messages.SUCCESS,
        )
