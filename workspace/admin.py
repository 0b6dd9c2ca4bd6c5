"""Admin site for projects, memberships, providers and proxies.

Every admin here is scoped to the user's managed projects; see
workspace.admin_scope for the rule. API keys are registered by genai_apps,
because their admin shows and changes key mappings.
"""

import datetime

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils import timezone

from workspace.admin_scope import (
    ProjectScopedAdmin,
    ProjectScopedInline,
    SameProjectForm,
    scoped_related_filter,
    subquery_count,
)
from workspace.models import (
    APIKey,
    AppProxy,
    KeyStatus,
    Membership,
    Project,
    Provider,
    ProviderModel,
)
from workspace.validators import validate_upstream_url

admin.site.site_header = "AI Workspace administration"
admin.site.site_title = "AI Workspace admin"
admin.site.index_title = "Governance"


class MembershipForm(forms.ModelForm):
    """Membership with the user entered by username, so staff need not browse
    every user of the installation."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        to_field_name="username",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        error_messages={
            "invalid_choice": "No active user has this username. Check the "
            "spelling or create the user first."
        },
        help_text="Username of an existing, active user.",
    )

    class Meta:
        model = Membership
        fields = ["project", "user", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # model_to_dict gives the user's id; the field shows the username.
            self.initial["user"] = self.instance.user.username


class MembershipInline(ProjectScopedInline, admin.TabularInline):
    model = Membership
    form = MembershipForm
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    project_path = "pk"
    list_display = [
        "name",
        "slug",
        "member_count",
        "key_count",
        "created_at",
    ]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=subquery_count(Membership, "project"),
                key_count=subquery_count(APIKey, "project"),
            )
        )

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description="API keys", ordering="key_count")
    def key_count(self, obj):
        return obj.key_count

    def has_add_permission(self, request):
        # A new project has no members yet, so only a superuser could see it.
        return request.user.is_superuser and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = [scoped_related_filter("project", "project"), "role"]
    list_select_related = ["user", "project"]
    search_fields = ["user__username", "user__email", "project__name"]
    form = MembershipForm
    autocomplete_fields = ["project"]
    readonly_fields = ["created_at"]


class ProviderModelInline(ProjectScopedInline, admin.TabularInline):
    model = ProviderModel
    project_path = "provider__project"
    fields = [
        "name",
        "input_price",
        "cached_input_price",
        "output_price",
        "cache_write_price",
    ]
    extra = 0


class ProviderAdminForm(SameProjectForm):
    new_credential = forms.CharField(
        label="New upstream credential",
        required=False,
        strip=True,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
        help_text="Write-only: the stored credential is never shown. Leave empty "
        "to keep it.",
    )
    remove_credential = forms.BooleanField(
        label="Remove the stored credential",
        required=False,
    )

    base_url = forms.URLField(
        label="Base URL",
        max_length=500,
        assume_scheme="https",
        validators=[validate_upstream_url],
    )

    class Meta:
        model = Provider
        fields = [
            "project",
            "name",
            "vendor",
            "context_path",
            "base_url",
            "api_version",
        ]

    def clean(self):
        cleaned_data = super().clean()
        if cleaned_data.get("new_credential") and cleaned_data.get("remove_credential"):
            self.add_error(
                "remove_credential",
                "Either enter a new credential or remove the stored one, not both.",
            )
        return cleaned_data


@admin.register(Provider)
class ProviderAdmin(ProjectScopedAdmin):
    form = ProviderAdminForm
    list_display = [
        "name",
        "project",
        "vendor",
        "context_path",
        "base_url",
        "has_credential",
        "model_count",
        "updated_at",
    ]
    list_filter = [scoped_related_filter("project", "project"), "vendor"]
    list_select_related = ["project"]
    search_fields = ["name", "context_path", "base_url", "project__name"]
    autocomplete_fields = ["project"]
    readonly_fields = ["credential_status", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["project", "name", "vendor", "context_path"]}),
        ("Upstream", {"fields": ["base_url", "api_version"]}),
        (
            "Upstream credential",
            {"fields": ["credential_status", "new_credential", "remove_credential"]},
        ),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]
    inlines = [ProviderModelInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(model_count=subquery_count(ProviderModel, "provider"))
        )

    @admin.display(description="models", ordering="model_count")
    def model_count(self, obj):
        return obj.model_count

    @admin.display(description="credential", boolean=True)
    def has_credential(self, obj):
        return obj.has_credential

    @admin.display(description="stored credential")
    def credential_status(self, obj):
        return "Stored, encrypted" if obj.has_credential else "None"

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("new_credential"):
            obj.set_credential(form.cleaned_data["new_credential"])
        elif form.cleaned_data.get("remove_credential"):
            obj.set_credential("")
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ProviderModel)
class ProviderModelAdmin(ProjectScopedAdmin):
    project_path = "provider__project"
    list_display = [
        "name",
        "provider",
        "input_price",
        "cached_input_price",
        "output_price",
        "cache_write_price",
        "updated_at",
    ]
    list_filter = [scoped_related_filter("provider", "provider")]
    list_select_related = ["provider"]
    search_fields = ["name", "provider__name"]
    autocomplete_fields = ["provider"]


class AppProxyAdminForm(SameProjectForm):
    same_project_fields = ("provider",)

    class Meta:
        model = AppProxy
        fields = [
            "project",
            "name",
            "context_path",
            "provider",
            "allowed_models",
            "max_tokens",
        ]


@admin.register(AppProxy)
class AppProxyAdmin(ProjectScopedAdmin):
    form = AppProxyAdminForm
    list_display = [
        "name",
        "project",
        "provider",
        "context_path",
        "max_tokens",
        "updated_at",
    ]
    list_filter = [
        scoped_related_filter("project", "project"),
        scoped_related_filter("provider", "provider"),
    ]
    list_select_related = ["project", "provider"]
    search_fields = ["name", "context_path", "provider__name", "project__name"]
    autocomplete_fields = ["project", "provider"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return KeyStatus.choices

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.with_status(self.value())


class KeyExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [
            ("7", "Expires within 7 days"),
            ("30", "Expires within 30 days"),
            ("past", "Expiry date passed"),
            ("none", "No expiry date"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value in ("7", "30"):
            return queryset.filter(
                expires_at__gt=now,
                expires_at__lte=now + datetime.timedelta(days=int(value)),
            )
        if value == "past":
            return queryset.filter(expires_at__lte=now)
        if value == "none":
            return queryset.filter(expires_at__isnull=True)
        return queryset
