"""Project scoping for the admin site.

A superuser sees and changes everything. Any other active staff user sees
and changes only the projects where they are an owner or admin
(MANAGER_ROLES): in every list, change page, action, inline, foreign-key
choice, autocomplete and list filter. Their project role is their
permission, so such users need no Django model permissions; a staff user
who manages no project sees no project data.
"""

from django import forms
from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from workspace.ids import parse_id
from workspace.models import MANAGER_ROLES, Membership


def managed_project_ids(user):
    """Return the ids of projects the user governs, or None for every project.

    The result is cached on the user object, which lives for one request.
    """
    if user.is_superuser:
        return None
    cached = getattr(user, "_managed_project_ids", None)
    if cached is None:
        cached = frozenset(
            Membership.objects.filter(
                user_id=user.pk, role__in=MANAGER_ROLES
            ).values_list("project_id", flat=True)
        )
        user._managed_project_ids = cached
    return cached


def is_project_manager(user):
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or bool(managed_project_ids(user))


def subquery_count(model, field, **filters):
    """Return an annotation counting `model` rows whose `field` is the outer row.

    A correlated subquery per counted model avoids the row multiplication of
    joining several reverse relations in one query.
    """
    counted = (
        model._default_manager.filter(**{field: OuterRef("pk")}, **filters)
        .order_by()
        .values(field)
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


class ProjectScopedMixin:
    """Scope a ModelAdmin or inline to the user's managed projects.

    `project_path` is the lookup from the model to its Project, e.g.
    "project" or "provider__project"; "pk" for Project itself.
    """

    project_path = "project"

    def scope(self, request, queryset):
        project_ids = managed_project_ids(request.user)
        if project_ids is None:
            return queryset
        return queryset.filter(**{f"{self.project_path}__in": project_ids})

    def project_id_of(self, obj):
        if self.project_path == "pk":
            return obj.pk
        *relations, last = self.project_path.split("__")
        for relation in relations:
            obj = getattr(obj, relation)
        return getattr(obj, f"{last}_id")

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related_admin = self.admin_site._registry.get(db_field.related_model)
        if isinstance(related_admin, ProjectScopedMixin) and "queryset" not in kwargs:
            kwargs["queryset"] = related_admin.scope(
                request, db_field.related_model._default_manager.all()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _may_manage(self, request, obj=None):
        if not is_project_manager(request.user):
            return False
        project_ids = managed_project_ids(request.user)
        if obj is None or project_ids is None:
            return True
        return self.project_id_of(obj) in project_ids

    def has_module_permission(self, request):
        if request.user.is_superuser:
            return super().has_module_permission(request)
        return is_project_manager(request.user)

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_view_permission(request, obj)
        return self._may_manage(request, obj)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_change_permission(request, obj)
        return self._may_manage(request, obj)

    def has_add_permission(self, request, *args):
        if request.user.is_superuser:
            return super().has_add_permission(request, *args)
        return is_project_manager(request.user)

    def has_delete_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_delete_permission(request, obj)
        return self._may_manage(request, obj)


class ProjectScopedAdmin(ProjectScopedMixin, admin.ModelAdmin):
    def get_object(self, request, object_id, from_field=None):
        """Raise 404 for objects outside the user's projects, as the UI does.

        Django's default redirects to the index with a message; a 404 keeps
        forged URLs indistinguishable from missing objects.
        """
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        return obj


class ProjectScopedInline(ProjectScopedMixin):
    """An inline shown inside an already scoped parent change page.

    The parent's get_object has checked the project, and `obj` here is the
    parent, so permissions only need the user to manage some project.
    """

    def _may_manage(self, request, obj=None):
        return is_project_manager(request.user)


def scoped_related_filter(field_path, title):
    """Build a list filter on a foreign key whose choices are scoped.

    Django's RelatedFieldListFilter lists every row of the related model, and
    RelatedOnlyFieldListFilter scans the filtered table, which is slow for
    usage events; this one lists the related model's scoped rows.
    """

    class ScopedRelatedFilter(admin.SimpleListFilter):
        parameter_name = field_path

        def lookups(self, request, model_admin):
            field = model_admin.model._meta.get_field(field_path)
            related_admin = model_admin.admin_site._registry[field.related_model]
            related = related_admin.scope(
                request, field.related_model._default_manager.all()
            )
            return [(str(obj.pk), str(obj)) for obj in related]

        def queryset(self, request, queryset):
            value = self.value()
            if value is None:
                return queryset
            pk = parse_id(value)
            if pk is None:
                return queryset.none()
            return queryset.filter(**{f"{field_path}_id": pk})

    ScopedRelatedFilter.title = title
    return ScopedRelatedFilter


class SameProjectForm(forms.ModelForm):
    """Reject related objects from another project than the form's project.

    `same_project_fields` lists foreign keys whose target has a `project`.
    """

    same_project_fields = ()

    def clean(self):
        cleaned_data = super().clean()
        project = cleaned_data.get("project") or getattr(self.instance, "project", None)
        if project is None:
            return cleaned_data
        for name in self.same_project_fields:
            value = cleaned_data.get(name)
            if value is not None and value.project_id != project.pk:
                self.add_error(
                    name,
                    f"“{value}” belongs to the project “{value.project}”, not "
                    f"“{project}”. Choose one from the same project.",
                )
        return cleaned_data
