"""Admin site for usage events: read-only, scoped to the user's projects.

Events are deleted only by the purge_usage retention command.
"""

from django.contrib import admin

from insights.models import UsageEvent
from workspace.admin_scope import ProjectScopedAdmin, scoped_related_filter


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
class UsageEventAdmin(ProjectScopedAdmin):
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
    # Counting every event for "N total" is a full scan on large tables.
    show_full_result_count = False

    @admin.display(description="cost (USD)", ordering="cost_nanousd")
    def cost(self, obj):
        cost = obj.cost
        return "unknown" if cost is None else f"{cost:.6f}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
