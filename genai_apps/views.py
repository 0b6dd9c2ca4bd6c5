"""Pages for GenAI applications: list, create, details, keys and history."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import reswap, retarget, trigger_client_event
from django_tables2 import RequestConfig

from genai_apps import services
from genai_apps.forms import ApplicationForm, AttachKeysForm, PickerFilterForm
from genai_apps.models import GenAIApplication, KeyMapping, KeyMappingEvent
from genai_apps.tables import ApplicationTable, HistoryTable, MappedKeyTable
from workspace.access import get_membership, require_editor
from workspace.ids import parse_id
from workspace.models import APIKey
from workspace.pagination import paginate_options
from workspace.rendering import render_page

logger = logging.getLogger(__name__)

PER_PAGE = 25
HISTORY_PER_PAGE = 20
# The picker lists at most this many keys; search narrows the rest down.
PICKER_LIMIT = 100


def _live_application(membership, application_id):
    return get_object_or_404(
        GenAIApplication.objects.live().select_related("created_by"),
        project=membership.project,
        pk=application_id,
    )


@require_GET
@login_required
def application_list(request, project_slug):
    membership = get_membership(request, project_slug)

    query = request.GET.get("q", "").strip()
    applications = (
        GenAIApplication.objects.live()
        .filter(project=membership.project)
        .annotate(key_count=Count("mappings"))
    )
    has_applications = applications.exists()
    if query:
        applications = applications.filter(
            Q(name__icontains=query) | Q(description__icontains=query)
        )
    attach_key = _key_to_attach(request, membership)
    table = ApplicationTable(
        applications, project_slug=project_slug, attach_key=attach_key, order_by="name"
    )
    RequestConfig(request, paginate=paginate_options(PER_PAGE)).configure(table)

    context = {
        "table": table,
        "attach_key": attach_key,
        "query": query,
        "has_applications": has_applications,
        "nav_section": "applications",
        "can_edit": membership.can_edit,
    }
    return render_page(
        request,
        "genai_apps/application_list.html",
        context,
        partial="application-table",
    )


def _key_to_attach(request, membership):
    """Return the key of ?attach_key= if this user can attach it, else None.

    The new-key page links here with it, so that each application offers
    its picker with that key ticked.
    """
    key_id = parse_id(request.GET.get("attach_key", ""))
    if key_id is None or not membership.can_edit:
        return None
    return _attachable_keys(membership.project).filter(pk=key_id).first()


@require_http_methods(["GET", "POST"])
@login_required
def application_create(request, project_slug):
    membership = get_membership(request, project_slug)
    require_editor(membership)

    form = ApplicationForm(
        request.POST if request.method == "POST" else None, project=membership.project
    )
    if request.method == "POST" and form.is_valid():
        form.instance.created_by = request.user
        application = _save_application(form)
        if application is not None:
            messages.success(request, f"Application “{application.name}” created.")
            return redirect(
                "genai_apps:application-detail",
                project_slug=project_slug,
                application_id=application.pk,
            )

    context = {"form": form, "nav_section": "applications"}
    return render_page(request, "genai_apps/application_form.html", context)


def _save_application(form):
    """Save the form, or add a name error if a concurrent save took the name."""
    try:
        with transaction.atomic():
            return form.save()
    except IntegrityError:
        form.add_error(
            "name",
            f"An application named “{form.cleaned_data['name']}” was created a "
            "moment ago. Choose another name.",
        )
        return None


@require_GET
@login_required
def application_detail(request, project_slug, application_id):
    membership = get_membership(request, project_slug)
    application = _live_application(membership, application_id)

    context = {
        "application": application,
        "nav_section": "applications",
        "can_edit": membership.can_edit,
        **_keys_and_history(request, application, membership.can_edit),
    }
    return render_page(request, "genai_apps/application_detail.html", context)


def _keys_and_history(request, application, can_edit):
    mappings = KeyMapping.objects.filter(application=application).select_related(
        "key__provider", "key__proxy", "key__created_by"
    )
    key_table = MappedKeyTable(
        mappings,
        application=application,
        can_edit=can_edit,
        order_by="name",
        prefix="keys-",
    )
    RequestConfig(request, paginate=False).configure(key_table)

    events = KeyMappingEvent.objects.filter(application=application).select_related(
        "actor"
    )
    history_table = HistoryTable(events, prefix="history-")
    RequestConfig(request, paginate=paginate_options(HISTORY_PER_PAGE)).configure(
        history_table
    )
    return {
        "key_table": key_table,
        "history_table": history_table,
        "key_count": len(key_table.rows),
    }


@require_http_methods(["GET", "POST"])
@login_required
def application_edit(request, project_slug, application_id):
    membership = get_membership(request, project_slug)
    application = _live_application(membership, application_id)
    require_editor(membership)

    form = ApplicationForm(
        request.POST if request.method == "POST" else None,
        instance=application,
        project=membership.project,
    )
    if request.method == "POST" and form.is_valid():
        if _save_application(form) is not None:
            messages.success(request, f"Application “{application.name}” saved.")
            return redirect(
                "genai_apps:application-detail",
                project_slug=project_slug,
                application_id=application.pk,
            )

    context = {"form": form, "application": application, "nav_section": "applications"}
    return render_page(request, "genai_apps/application_form.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def application_delete(request, project_slug, application_id):
    membership = get_membership(request, project_slug)
    application = _live_application(membership, application_id)
    require_editor(membership)

    if request.method == "POST":
        services.delete_application(application, request.user)
        logger.info(
            "Application %s deleted in project %s by user %s",
            application.pk,
            project_slug,
            request.user.pk,
        )
        messages.success(
            request,
            f"Application “{application.name}” deleted. Its keys were detached "
            "and kept; its usage history stays in Insights.",
        )
        return redirect("genai_apps:application-list", project_slug=project_slug)

    context = {
        "application": application,
        "key_count": application.mappings.count(),
        "nav_section": "applications",
    }
    return render_page(
        request, "genai_apps/application_delete.html", context, partial="confirm"
    )


def _attachable_keys(project):
    """Active keys of the project that belong to no application, newest first.

    Newest first also lets PostgreSQL walk the (project, created_at) index
    and stop after one page instead of sorting every free key.
    """
    return (
        APIKey.objects.active()
        .filter(project=project, mapping__isnull=True)
        .select_related("provider", "proxy", "created_by")
        .order_by("-created_at", "-pk")
    )


@require_http_methods(["GET", "POST"])
@login_required
def attach_keys(request, project_slug, application_id):
    """Show the key picker on GET and attach the selected keys on POST."""
    membership = get_membership(request, project_slug)
    application = _live_application(membership, application_id)
    require_editor(membership)

    form = AttachKeysForm(
        request.POST if request.method == "POST" else None, application=application
    )
    if request.method == "POST" and form.is_valid():
        attached = _attach(form, application, request.user)
        if attached is not None:
            return _attached_response(request, membership, application, attached)

    filter_form = PickerFilterForm(
        request.GET or request.POST, project=membership.project
    )
    attachable = _attachable_keys(membership.project)
    matching = list(filter_form.filter(attachable)[:PICKER_LIMIT])
    selected = request.POST.getlist("keys") or request.GET.getlist("keys")
    # Ticked keys stay listed while the search changes, so they are saved.
    ticked_ids = [key_id for key_id in map(parse_id, selected) if key_id is not None]
    ticked = attachable.filter(pk__in=ticked_ids).exclude(
        pk__in=[key.pk for key in matching]
    )
    keys = [*ticked, *matching]
    selected = set(selected)
    context = {
        "application": application,
        "form": form,
        "filter_form": filter_form,
        "keys": keys,
        "selected": selected,
        "selected_count": sum(str(key.pk) in selected for key in keys),
        "is_truncated": len(matching) == PICKER_LIMIT,
        "nav_section": "applications",
    }
    partial = "picker-rows" if request.htmx.target == "picker-rows" else "picker"
    return render_page(request, "genai_apps/attach_keys.html", context, partial=partial)


def _attach(form, application, user):
    """Attach the form's keys; return how many were new, or None on a rejection."""
    try:
        mappings = services.attach_keys(application, form.cleaned_data["keys"], user)
    except services.MappingError as error:
        form.add_error("keys", str(error))
        return None
    return len(mappings)


def _attached_response(request, membership, application, attached):
    messages.success(
        request,
        ngettext(
            "Attached %(count)d API key.", "Attached %(count)d API keys.", attached
        )
        % {"count": attached},
    )
    if not request.htmx:
        return redirect(
            "genai_apps:application-detail",
            project_slug=membership.project.slug,
            application_id=application.pk,
        )

    # For htmx, swap the refreshed keys and history into the details page
    # and close the picker, without a full page reload.
    context = {
        "application": application,
        "can_edit": membership.can_edit,
        **_keys_and_history(request, application, membership.can_edit),
    }
    response = render_page(
        request,
        "genai_apps/application_detail.html",
        context,
        partial="keys-and-history",
    )
    # The new message replaces the messages area out of band, so a message
    # from before (like "Application … created.") does not stay above it.
    response.content += render_to_string(
        "_messages.html", {"oob": True}, request=request
    ).encode()
    response = retarget(response, "#keys-and-history")
    response = reswap(response, "outerHTML")
    return trigger_client_event(response, "close-modal")


@require_http_methods(["GET", "POST"])
@login_required
def remove_key(request, project_slug, application_id, key_id):
    """Detach one key after a confirmation; the key itself is kept."""
    membership = get_membership(request, project_slug)
    application = _live_application(membership, application_id)
    mapping = get_object_or_404(
        KeyMapping.objects.select_related("key"), application=application, key_id=key_id
    )
    require_editor(membership)
    key = mapping.key

    if request.method == "POST":
        services.detach_key(application, key, request.user)
        messages.success(
            request,
            f"API key “{key.name}” ({key.prefix}…) removed from “{application.name}”. "
            "The key itself is unchanged.",
        )
        return redirect(
            "genai_apps:application-detail",
            project_slug=project_slug,
            application_id=application.pk,
        )

    context = {"application": application, "key": key, "nav_section": "applications"}
    return render_page(
        request, "genai_apps/remove_key.html", context, partial="confirm"
    )
