"""Admin site for API keys, GenAI applications, mappings and review runs.

Attaching and detaching go through genai_apps.services with
source=MappingSource.ADMIN, so the admin follows the same rules and leaves
the same audit trail as the browser UI.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from genai_apps.forms import find_live_application_by_name
from genai_apps.models import (
    GenAIApplication,
    KeyMapping,
    KeyMappingEvent,
    MappingReview,
    MappingSource,
)
from genai_apps.services import (
    MappingError,
    attach_keys,
    delete_application,
    detach_key,
)
from workspace.admin import KeyExpiryFilter, KeyStatusFilter
from workspace.admin_scope import (
    ProjectScopedAdmin,
    ProjectScopedInline,
    ReadOnlyAdminMixin,
    scoped_related_filter,
    subquery_count,
)
from workspace.ids import parse_id
from workspace.models import APIKey


class KeyApplicationFilter(admin.SimpleListFilter):
    title = "application"
    parameter_name = "application"

    def lookups(self, request, model_admin):
        application_admin = model_admin.admin_site._registry[GenAIApplication]
        applications = application_admin.scope(request, GenAIApplication.objects.live())
        return [("none", "No application")] + [
            (str(application.pk), application.name) for application in applications
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "none":
            return queryset.filter(mapping__isnull=True)
        application_id = parse_id(value)
        if application_id is None:
            return queryset.none()
        return queryset.filter(mapping__application_id=application_id)


@admin.register(APIKey)
class APIKeyAdmin(ProjectScopedAdmin):
    """API keys, without their secret hash.

    Keys are created in the project UI, where the secret is shown once, and
    revoked rather than deleted so that their usage and audit trail stay.
    """

    list_display = [
        "name",
        "prefix",
        "project",
        "target",
        "application",
        "status",
        "expires_at",
        "last_used_at",
        "created_by",
        "created_at",
    ]
    list_filter = [
        KeyStatusFilter,
        scoped_related_filter("project", "project"),
        scoped_related_filter("provider", "provider"),
        scoped_related_filter("proxy", "proxy"),
        KeyApplicationFilter,
        KeyExpiryFilter,
    ]
    list_select_related = [
        "project",
        "provider",
        "proxy",
        "mapping__application",
        "created_by",
    ]
    search_fields = ["name", "prefix", "mapping__application__name"]
    fields = [
        "name",
        "prefix",
        "project",
        "provider",
        "proxy",
        "application",
        "status",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "last_used_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [field for field in fields if field not in ("name", "expires_at")]
    actions = ["revoke_keys", "detach_keys"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("project", "provider", "proxy", "mapping__application")
        )

    @admin.display(description="provider or proxy")
    def target(self, obj):
        return f"{obj.target_kind}: {obj.target}"

    @admin.display(description="application", ordering="mapping__application__name")
    def application(self, obj):
        mapping = getattr(obj, "mapping", None)
        return mapping.application.name if mapping else "—"

    @admin.display(description="status")
    def status(self, obj):
        return obj.status.label

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm(
                request,
                queryset,
                action="revoke_keys",
                title="Revoke API keys",
                warning="Clients using these keys are rejected at once. Revoking "
                "cannot be undone.",
                button="Yes, revoke",
            )
        # APIKey.revoke saves each key, so post_save reaches the gateway's key
        # cache; a bulk update() would skip that signal.
        revoked = 0
        for key in queryset:
            if key.revoke(request.user):
                self.log_change(request, key, "Revoked with the admin action.")
                revoked += 1
        skipped = len(queryset) - revoked
        message = f"Revoked {_count_keys(revoked)}."
        if skipped:
            message += f" {_count_keys(skipped)} {_was(skipped)} already revoked."
        self.message_user(request, message, messages.SUCCESS)
        return None

    @admin.action(
        description="Detach selected API keys from their application",
        permissions=["change"],
    )
    def detach_keys(self, request, queryset):
        if request.POST.get("post") != "yes":
            return self._confirm(
                request,
                queryset,
                action="detach_keys",
                title="Detach API keys from their application",
                warning="The keys stay valid, but their new traffic belongs to no "
                "application. Past usage stays with the application.",
                button="Yes, detach",
            )
        detached = 0
        for key in queryset:
            mapping = getattr(key, "mapping", None)
            if mapping and detach_key(
                mapping.application, key, request.user, source=MappingSource.ADMIN
            ):
                self.log_change(
                    request, key, f"Detached from “{mapping.application.name}”."
                )
                detached += 1
        skipped = len(queryset) - detached
        message = ngettext(
            "Detached %(count)d API key from its application.",
            "Detached %(count)d API keys from their applications.",
            detached,
        ) % {"count": detached}
        if skipped:
            message += f" {_count_keys(skipped)} had no application."
        self.message_user(request, message, messages.SUCCESS)
        return None

    def _confirm(self, request, queryset, *, action, title, warning, button):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "warning": warning,
            "button": button,
            "action": action,
            "keys": queryset,
            "opts": self.opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/genai_apps/confirm_key_action.html", context
        )


def _count_keys(count):
    return f"{count} API key" if count == 1 else f"{count} API keys"


def _was(count):
    return "was" if count == 1 else "were"


class AttachKeyForm(forms.ModelForm):
    class Meta:
        model = KeyMapping
        fields = ["key"]

    def validate_unique(self):
        # AttachKeyFormSet.clean gives the attach rule's own message instead
        # of the generic "Key mapping with this Key already exists".
        pass


class AttachKeyFormSet(BaseInlineFormSet):
    """Check new rows against the attach rules before anything is saved."""

    def clean(self):
        super().clean()
        application = self.instance
        for form in self.forms:
            key = form.cleaned_data.get("key")
            if form.instance.pk or key is None or self._should_delete_form(form):
                continue
            if key.project_id != application.project_id:
                form.add_error(
                    "key",
                    f"API key “{key.name}” ({key.prefix}…) is in the project "
                    f"“{key.project}”, not in “{application.project}”.",
                )
                continue
            other = (
                KeyMapping.objects.filter(key=key)
                .exclude(application_id=application.pk)
                .select_related("application")
                .first()
            )
            if other is not None:
                form.add_error(
                    "key",
                    f"API key “{key.name}” ({key.prefix}…) already belongs to the "
                    f"application “{other.application.name}”. Remove it there first.",
                )


class MappedKeyInline(ProjectScopedInline, admin.TabularInline):
    """The application's keys; ticking "Delete" detaches a key, never deletes it."""

    model = KeyMapping
    project_path = "application__project"
    fields = ["key_link", "key_status", "key_last_used", "attached_by", "attached_at"]
    readonly_fields = fields
    extra = 0
    verbose_name = "mapped key"
    verbose_name_plural = "mapped keys"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("key", "attached_by")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="key")
    def key_link(self, obj):
        url = reverse("admin:workspace_apikey_change", args=[obj.key_id])
        return format_html('<a href="{}">{}</a>', url, obj.key)

    @admin.display(description="status")
    def key_status(self, obj):
        return obj.key.status.label

    @admin.display(description="last used")
    def key_last_used(self, obj):
        if obj.key.last_used_at is None:
            return "Never"
        return formats.localize(timezone.localtime(obj.key.last_used_at))


class AttachKeyInline(ProjectScopedInline, admin.TabularInline):
    """Empty rows that attach more keys; existing mappings are listed above."""

    model = KeyMapping
    project_path = "application__project"
    form = AttachKeyForm
    formset = AttachKeyFormSet
    fields = ["key"]
    autocomplete_fields = ["key"]
    extra = 0
    can_delete = False
    verbose_name = "key to attach"
    verbose_name_plural = "attach keys"

    def get_queryset(self, request):
        return super().get_queryset(request).none()


class ApplicationStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("deleted", "Deleted")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class GenAIApplicationAdminForm(forms.ModelForm):
    class Meta:
        model = GenAIApplication
        fields = ["project", "name", "description"]

    def clean(self):
        # The model form skips the unique-name constraint because its
        # condition reads deleted_at, which is not a form field.
        cleaned_data = super().clean()
        project = cleaned_data.get("project") or getattr(self.instance, "project", None)
        name = cleaned_data.get("name")
        if project is None or not name:
            return cleaned_data
        existing = find_live_application_by_name(project, name, exclude=self.instance)
        if existing is not None:
            self.add_error(
                "name",
                f"An application named “{existing.name}” already exists in the "
                f"project “{project}”. Choose another name.",
            )
        return cleaned_data


@admin.register(GenAIApplication)
class GenAIApplicationAdmin(ProjectScopedAdmin):
    form = GenAIApplicationAdminForm
    list_display = [
        "name",
        "project",
        "key_count",
        "created_by",
        "created_at",
        "deleted_at",
    ]
    list_filter = [
        scoped_related_filter("project", "project"),
        ApplicationStateFilter,
    ]
    list_select_related = ["project", "created_by"]
    search_fields = ["name", "description", "project__name"]
    autocomplete_fields = ["project"]
    fields = [
        "project",
        "name",
        "description",
        "created_by",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    readonly_fields = ["created_by", "created_at", "updated_at", "deleted_at"]
    inlines = [MappedKeyInline, AttachKeyInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(key_count=subquery_count(KeyMapping, "application"))
        )

    def get_search_results(self, request, queryset, search_term):
        # Autocomplete offers live applications only.
        queryset, may_have_duplicates = super().get_search_results(
            request, queryset, search_term
        )
        if request.path.endswith("/autocomplete/"):
            queryset = queryset.filter(deleted_at__isnull=True)
        return queryset, may_have_duplicates

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["project", *self.readonly_fields]
        return self.readonly_fields

    @admin.display(description="keys", ordering="key_count")
    def key_count(self, obj):
        return obj.key_count

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_deleted:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_deleted:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if formset.model is not KeyMapping:
            return super().save_formset(request, form, formset, change)
        application = form.instance
        formset.save(commit=False)
        for mapping in formset.deleted_objects:
            detach_key(application, mapping.key, request.user, MappingSource.ADMIN)
        new_keys = [mapping.key for mapping in formset.new_objects]
        if new_keys:
            try:
                attach_keys(application, new_keys, request.user, MappingSource.ADMIN)
            except MappingError as error:
                # Another request attached the key after the formset checked it.
                self.message_user(request, str(error), messages.ERROR)
        return None

    def get_deleted_objects(self, objs, request):
        """List only the applications: deleting detaches keys and keeps usage."""
        objs = list(objs)
        names = [str(obj) for obj in objs]
        return names, {self.opts.verbose_name_plural: len(objs)}, set(), []

    def delete_model(self, request, obj):
        delete_application(obj, request.user)

    def delete_queryset(self, request, queryset):
        for application in queryset.filter(deleted_at__isnull=True):
            delete_application(application, request.user)


@admin.register(KeyMapping)
class KeyMappingAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    """Current mappings; change them on the application or the key list."""

    project_path = "application__project"
    list_display = ["key", "application", "project", "attached_by", "attached_at"]
    list_filter = [scoped_related_filter("application", "application")]
    list_select_related = ["key", "application__project", "attached_by"]
    search_fields = ["key__name", "key__prefix", "application__name"]
    date_hierarchy = "attached_at"

    @admin.display(description="project", ordering="application__project__name")
    def project(self, obj):
        return obj.application.project


@admin.register(KeyMappingEvent)
class KeyMappingEventAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = [
        "created_at",
        "action",
        "source",
        "project",
        "application_name",
        "key_name",
        "key_prefix",
        "actor",
    ]
    list_filter = [
        scoped_related_filter("project", "project"),
        "action",
        "source",
    ]
    list_select_related = ["project", "actor"]
    search_fields = ["application_name", "key_name", "key_prefix", "actor__username"]
    date_hierarchy = "created_at"


@admin.register(MappingReview)
class MappingReviewAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    """Runs of review_mappings.

    Runs over every project are shown to superusers only, because their
    counts cover projects that other staff may not see.
    """

    list_display = [
        "started_at",
        "scope_label",
        "finding_count",
        "detached_count",
        "duration_ms",
        "options",
    ]
    list_filter = [scoped_related_filter("project", "project")]
    list_select_related = ["project"]
    date_hierarchy = "started_at"

    @admin.display(description="scope", ordering="project__name")
    def scope_label(self, obj):
        return obj.project or "All projects"
