import logging
import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.db.models import Count, ProtectedError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods
from django_tables2 import RequestConfig

from workspace import pricing
from workspace.access import (
    get_membership,
    projects_for_user,
    require_editor,
    require_manager,
)
from workspace.forms import (
    APIKeyForm,
    AppProxyForm,
    KeyFilterForm,
    ProviderForm,
    ProviderModelFormSet,
)
from workspace.models import APIKey, AppProxy, Provider, Vendor
from workspace.pagination import paginate_options
from workspace.rendering import render_page, safe_next_url
from workspace.tables import APIKeyTable, AppProxyTable, ProviderTable

logger = logging.getLogger(__name__)

PER_PAGE = 25
# Section names of the left navigation, and the list page each one opens.
SECTION_URL_NAMES = {
    "applications": "genai_apps:application-list",
    "keys": "workspace:key-list",
    "providers": "workspace:provider-list",
    "proxies": "workspace:proxy-list",
    "insights": "insights:overview",
}
# The session remembers this many used key-form tokens, so a resubmitted
# "Generate key" form is recognised without ever storing a secret.
USED_KEY_FORM_TOKENS_KEPT = 20


@require_GET
@login_required
def home(request):
    """Send the user to the first project they belong to."""
    project = projects_for_user(request.user).first()
    if project is None:
        return render(request, "workspace/no_projects.html")
    return redirect("genai_apps:application-list", project_slug=project.slug)


@require_GET
@login_required
def project_home(request, project_slug):
    """Open a project's first section, GenAI Applications, at /p/<slug>/."""
    membership = get_membership(request, project_slug)
    return redirect("genai_apps:application-list", project_slug=membership.project.slug)


@require_GET
@login_required
def switch_project(request):
    """Open the project picked in the switcher, keeping the user's section."""
    slug = request.GET.get("project", "")
    project = projects_for_user(request.user).filter(slug=slug).first()
    if project is None:
        return redirect("home")
    url_name = SECTION_URL_NAMES.get(
        request.GET.get("section", ""), "genai_apps:application-list"
    )
    return redirect(url_name, project_slug=project.slug)


# LLM Providers


@require_GET
@login_required
def provider_list(request, project_slug):
    membership = get_membership(request, project_slug)

    providers = Provider.objects.filter(project=membership.project).annotate(
        model_count=Count("models")
    )
    table = ProviderTable(providers, project_slug=project_slug, order_by="name")
    RequestConfig(request, paginate=paginate_options(PER_PAGE)).configure(table)

    context = {
        "table": table,
        "nav_section": "providers",
        "can_edit": membership.can_manage,
        "read_only_reason": _provider_read_only_reason(membership),
    }
    return render(request, "workspace/provider_list.html", context)


# Providers hold the upstream credentials and decide where the gateway
# sends requests, so only owners and admins change them; see docs/ui.md.
PROVIDER_MANAGERS_ONLY = (
    "Only project owners and admins can add, change or delete LLM providers, "
    "because providers hold upstream credentials."
)


def _provider_read_only_reason(membership):
    if membership.can_manage:
        return ""
    if membership.can_edit:
        return PROVIDER_MANAGERS_ONLY
    return "You have read-only access to this project."


@sensitive_post_parameters("credential")
@require_http_methods(["GET", "POST"])
@login_required
def provider_create(request, project_slug):
    membership = get_membership(request, project_slug)
    require_manager(membership, PROVIDER_MANAGERS_ONLY)
    return _provider_form_page(
        request, membership, Provider(project=membership.project)
    )


@sensitive_post_parameters("credential")
@require_http_methods(["GET", "POST"])
@login_required
def provider_edit(request, project_slug, provider_id):
    membership = get_membership(request, project_slug)
    provider = get_object_or_404(Provider, project=membership.project, pk=provider_id)
    if request.method == "POST":
        require_manager(membership, PROVIDER_MANAGERS_ONLY)
    return _provider_form_page(request, membership, provider)


def _provider_form_page(request, membership, provider):
    project = membership.project
    data = request.POST if request.method == "POST" else None
    form = ProviderForm(
        data, instance=provider, project=project, read_only=not membership.can_manage
    )
    formset = ProviderModelFormSet(data, instance=provider, prefix="models")
    if not membership.can_manage:
        for model_form in formset:
            _disable_form(model_form)

    if data is not None and form.is_valid() and formset.is_valid():
        verb = "created" if provider._state.adding else "saved"
        try:
            filled = _save_provider(form, formset)
        except IntegrityError:
            form.add_error(
                None,
                "Another change to this provider was saved at the same time; "
                "check the values and save again.",
            )
        else:
            messages.success(request, f"Provider “{form.instance.name}” {verb}.")
            if filled:
                messages.info(
                    request,
                    "Prices filled from the LiteLLM price catalogue for "
                    f"{', '.join(filled)}; edit them if your contract differs.",
                )
            return redirect("workspace:provider-list", project_slug=project.slug)

    context = {
        "form": form,
        "formset": formset,
        "provider": provider if provider.pk else None,
        "nav_section": "providers",
        "can_edit": membership.can_manage,
        "read_only_reason": _provider_read_only_reason(membership),
    }
    return render(request, "workspace/provider_form.html", context)


@transaction.atomic
def _save_provider(form, formset):
    """Save the provider and its models; return the models priced from the catalogue."""
    provider = form.save()
    formset.instance = provider
    models = formset.save(commit=False)
    for model in formset.deleted_objects:
        model.delete()
    filled = []
    for model in models:
        if model.pk is None and pricing.fill_missing_prices(model, provider.vendor):
            filled.append(model.name)
        model.save()
    return filled


@require_http_methods(["GET", "POST"])
@login_required
def provider_delete(request, project_slug, provider_id):
    membership = get_membership(request, project_slug)
    provider = get_object_or_404(Provider, project=membership.project, pk=provider_id)
    require_manager(membership, PROVIDER_MANAGERS_ONLY)
    blockers = _delete_blockers(provider)
    proxies = sorted(provider.proxies.values_list("name", flat=True))
    if proxies:
        names = ", ".join(f"“{name}”" for name in proxies)
        blockers.append(
            f"{len(proxies)} App LLM "
            f"{'Proxy forwards' if len(proxies) == 1 else 'Proxies forward'} to it: "
            f"{names}. Delete {'it' if len(proxies) == 1 else 'them'} first."
        )
    return _delete_page(
        request,
        membership,
        provider,
        kind="Provider",
        blockers=blockers,
        list_url_name="workspace:provider-list",
        nav_section="providers",
    )


def _delete_blockers(target):
    """Return why target (a provider or proxy) cannot be deleted: keys issued for it.

    Keys protect their target, because a key keeps its usage history and
    stays listed after it is revoked.
    """
    keys = target.api_keys.count()
    if not keys:
        return []
    return [
        f"{keys} API {'key was' if keys == 1 else 'keys were'} generated for it, "
        "revoked ones included. Keys keep their usage history, so they are never "
        "deleted, and a target with keys stays. Revoke its keys to stop its traffic."
    ]


def _delete_page(
    request, membership, target, kind, blockers, list_url_name, nav_section
):
    """Confirm and delete a provider or proxy that nothing depends on."""
    project = membership.project
    if request.method == "POST" and not blockers:
        name, target_id = target.name, target.pk
        try:
            with transaction.atomic():
                target.delete()
        except ProtectedError:
            # A key or proxy was created for it since the page was shown.
            blockers = _delete_blockers(target) or [
                "Something was created for it a moment ago. Reload the page."
            ]
        else:
            logger.info(
                "%s %s deleted in project %s by user %s",
                kind,
                target_id,
                project.slug,
                request.user.pk,
            )
            messages.success(request, f"{kind} “{name}” deleted.")
            return redirect(list_url_name, project_slug=project.slug)
    target_kind = "provider" if isinstance(target, Provider) else "proxy"
    keys_url = reverse("workspace:key-list", args=[project.slug])
    context = {
        "target": target,
        "kind": kind,
        "blockers": blockers,
        "has_keys": target.api_keys.exists(),
        "keys_url": f"{keys_url}?target={target_kind}:{target.pk}",
        "nav_section": nav_section,
        "cancel_url": request.path.removesuffix("delete/"),
    }
    status = 409 if request.method == "POST" and blockers else 200
    return render(request, "workspace/target_delete.html", context, status=status)


def _disable_form(form):
    """Show the form read-only, without the help text that explains editing."""
    for field in form.fields.values():
        field.disabled = True
        field.help_text = ""


# App LLM Proxies


@require_GET
@login_required
def proxy_list(request, project_slug):
    membership = get_membership(request, project_slug)

    proxies = AppProxy.objects.filter(project=membership.project).select_related(
        "provider"
    )
    table = AppProxyTable(proxies, project_slug=project_slug, order_by="name")
    RequestConfig(request, paginate=paginate_options(PER_PAGE)).configure(table)

    context = {
        "table": table,
        "nav_section": "proxies",
        "can_edit": membership.can_edit,
        "has_providers": Provider.objects.filter(project=membership.project).exists(),
    }
    return render(request, "workspace/proxy_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def proxy_create(request, project_slug):
    membership = get_membership(request, project_slug)
    require_editor(membership)
    return _proxy_form_page(request, membership, AppProxy(project=membership.project))


@require_http_methods(["GET", "POST"])
@login_required
def proxy_edit(request, project_slug, proxy_id):
    membership = get_membership(request, project_slug)
    proxy = get_object_or_404(AppProxy, project=membership.project, pk=proxy_id)
    if request.method == "POST":
        require_editor(membership)
    return _proxy_form_page(request, membership, proxy)


def _proxy_form_page(request, membership, proxy):
    project = membership.project
    data = request.POST if request.method == "POST" else None
    # The provider select reloads the model choices with ?provider=<id>.
    initial = {"provider": request.GET["provider"]} if "provider" in request.GET else {}
    form = AppProxyForm(data, instance=proxy, project=project, initial=initial)
    if not membership.can_edit:
        _disable_form(form)

    if data is not None and form.is_valid():
        adding = proxy._state.adding
        if adding:
            form.instance.created_by = request.user
        try:
            with transaction.atomic():
                proxy = form.save()
        except IntegrityError:
            form.add_error(
                "context_path",
                "This context path was taken a moment ago; choose another one.",
            )
        else:
            verb = "created" if adding else "saved"
            messages.success(request, f"App LLM Proxy “{proxy.name}” {verb}.")
            return redirect("workspace:proxy-list", project_slug=project.slug)

    context = {
        "form": form,
        "proxy": proxy if proxy.pk else None,
        "nav_section": "proxies",
        "can_edit": membership.can_edit,
    }
    return render_page(
        request, "workspace/proxy_form.html", context, partial="allowed-models"
    )


@require_http_methods(["GET", "POST"])
@login_required
def proxy_delete(request, project_slug, proxy_id):
    membership = get_membership(request, project_slug)
    proxy = get_object_or_404(AppProxy, project=membership.project, pk=proxy_id)
    require_editor(membership)
    return _delete_page(
        request,
        membership,
        proxy,
        kind="App LLM Proxy",
        blockers=_delete_blockers(proxy),
        list_url_name="workspace:proxy-list",
        nav_section="proxies",
    )


# API keys


def key_queryset(project):
    """Return the project's keys joined with what the keys table shows, in one query."""
    return APIKey.objects.filter(project=project).select_related(
        "provider", "proxy", "created_by", "mapping__application"
    )


@require_GET
@login_required
def key_list(request, project_slug):
    membership = get_membership(request, project_slug)

    filter_form = KeyFilterForm(request.GET, project=membership.project)
    keys = filter_form.filter(key_queryset(membership.project))
    table = APIKeyTable(
        keys,
        project_slug=project_slug,
        can_edit=membership.can_edit,
        order_by="-created_at",
    )
    RequestConfig(request, paginate=paginate_options(PER_PAGE)).configure(table)

    context = {
        "table": table,
        "filter_form": filter_form,
        "is_filtered": any(
            request.GET.get(name) for name in ("q", "status", "target", "application")
        ),
        "has_keys": APIKey.objects.filter(project=membership.project).exists(),
        "nav_section": "keys",
        "can_edit": membership.can_edit,
    }
    return render_page(request, "workspace/key_list.html", context, partial="key-table")


@sensitive_variables("secret")
@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def key_create(request, project_slug):
    membership = get_membership(request, project_slug)
    require_editor(membership)
    project = membership.project

    if request.method == "POST":
        form = APIKeyForm(request.POST, project=project)
        if _key_form_token_used(request):
            messages.warning(
                request,
                "That form was already submitted and its key created. A secret is "
                "shown only once; revoke the key and generate a new one if you "
                "did not copy it.",
            )
            return redirect("workspace:key-list", project_slug=project.slug)
        if form.is_valid():
            key, secret = form.create_key(request.user)
            logger.info(
                "API key %s created in project %s by user %s",
                key.prefix,
                project.slug,
                request.user.pk,
            )
            # The secret goes into this one response only: not into the
            # session, a message or a redirect, and the page is not cached.
            context = {
                "key": key,
                "secret": secret,
                "base_urls": _gateway_base_urls(request, key),
                "nav_section": "keys",
            }
            return render(request, "workspace/key_created.html", context)
    else:
        form = APIKeyForm(project=project, initial=_initial_target(request))

    context = {
        "form": form,
        "form_token": secrets.token_urlsafe(16),
        "nav_section": "keys",
        "has_targets": Provider.objects.filter(project=project).exists(),
    }
    return render(request, "workspace/key_form.html", context)


def _gateway_base_urls(request, key):
    """Return [(label, URL)] of the base URLs a client SDK needs for key.

    The OpenAI SDK takes the path with /v1 and the Anthropic SDK without it,
    because it appends /v1/messages itself (docs/gateway.md).
    """
    host = f"{request.scheme}://{request.get_host()}"
    root = f"{host}/gateway/{key.target.context_path}"
    provider = key.provider if key.provider_id else key.proxy.provider
    if provider.vendor != Vendor.ANTHROPIC:
        return [("Gateway base URL", f"{root}/v1")]
    return [
        ("Base URL for the Anthropic SDK", root),
        ("Base URL for the OpenAI SDK", f"{root}/v1"),
    ]


def _initial_target(request):
    target = request.GET.get("target", "")
    return {"target": target} if target else {}


def _key_form_token_used(request):
    """Record the form's one-time token; return True if it was used before."""
    token = request.POST.get("form_token", "")
    if not token:
        return False
    used = request.session.get("used_key_form_tokens", [])
    if token in used:
        return True
    request.session["used_key_form_tokens"] = [
        *used[-(USED_KEY_FORM_TOKENS_KEPT - 1) :],
        token,
    ]
    return False


@require_http_methods(["GET", "POST"])
@login_required
def key_revoke(request, project_slug, key_id):
    membership = get_membership(request, project_slug)
    key = get_object_or_404(key_queryset(membership.project), pk=key_id)
    require_editor(membership)

    if request.method == "POST":
        if key.revoke(request.user):
            logger.info(
                "API key %s revoked in project %s by user %s",
                key.prefix,
                project_slug,
                request.user.pk,
            )
            messages.success(request, f"API key “{key.name}” ({key.prefix}…) revoked.")
        else:
            messages.info(request, f"API key “{key.name}” was already revoked.")
        default = reverse("workspace:key-list", args=[project_slug])
        return redirect(safe_next_url(request, default))

    context = {
        "key": key,
        "nav_section": "keys",
        "next": request.GET.get("next", ""),
        "cancel_url": safe_next_url(
            request, reverse("workspace:key-list", args=[project_slug])
        ),
    }
    return render_page(request, "workspace/key_revoke.html", context, partial="confirm")
