"""Forms for providers, App LLM Proxies and API keys, scoped to one project."""

from urllib.parse import urlsplit

from django import forms
from django.db.models import Q
from django.forms import inlineformset_factory
from django.forms.utils import pretty_name
from django.utils import timezone
from django.utils.text import Truncator

from workspace.ids import parse_id
from workspace.models import (
    MAX_TOKENS_LIMIT,
    MAX_TOKENS_MESSAGE,
    APIKey,
    AppProxy,
    KeyStatus,
    Provider,
    ProviderModel,
    Vendor,
)
from workspace.names import find_same_name, validate_visible_name
from workspace.validators import redact_url_user_info, validate_upstream_url


class FieldMessagesMixin:
    """Form mixin whose length and null-character errors name the field.

    Django's defaults ("Ensure this value has at most 255 characters (it
    has 300).", "Null characters are not allowed.") name neither the field
    nor the fix. Messages that a form sets itself are kept.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            label = field.label or pretty_name(name)
            field.error_messages.setdefault(
                "max_length",
                f"{label} is too long: enter at most %(limit_value)d characters "
                "(it has %(show_value)d).",
            )
            field.error_messages.setdefault(
                "null_characters_not_allowed",
                f"{label} contains a null character (U+0000), which cannot be "
                "stored; remove it.",
            )


def context_path_owner(project, context_path, exclude=None):
    """Return the provider or proxy of the project that uses a context path.

    Providers and proxies share one namespace because the gateway serves
    both under /gateway/<context path>/v1/.
    """
    for model in (Provider, AppProxy):
        queryset = model.objects.filter(project=project, context_path=context_path)
        if isinstance(exclude, model):
            queryset = queryset.exclude(pk=exclude.pk)
        owner = queryset.first()
        if owner is not None:
            return owner
    return None


def find_by_name(model, project, name, exclude=None):
    """Return the project's provider or proxy named name, ignoring case.

    Names are compared by workspace.names.name_key, which is stricter than
    the constraints provider_unique_name_ci and proxy_unique_name_ci.
    """
    return find_same_name(model.objects.filter(project=project), name, exclude=exclude)


class UniqueNameMixin:
    """Form mixin that rejects a name used by another provider or proxy.

    It also rejects a name without a visible character before the lookup.
    """

    kind_with_article = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].validators.append(validate_visible_name)

    def clean_name(self):
        # CharField has already stripped surrounding whitespace.
        name = self.cleaned_data["name"]
        model = self._meta.model
        existing = find_by_name(model, self.project, name, exclude=self.instance)
        if existing is not None:
            raise forms.ValidationError(
                f"{self.kind_with_article} named “{existing.name}” already exists "
                "in this project (names are compared without regard to case). "
                "Choose another name."
            )
        return name


class ContextPathMixin:
    """Form mixin that rejects a context path used elsewhere in the project."""

    def clean_context_path(self):
        context_path = self.cleaned_data["context_path"].strip().lower()
        owner = context_path_owner(self.project, context_path, exclude=self.instance)
        if owner is not None:
            kind = "provider" if isinstance(owner, Provider) else "App LLM Proxy"
            raise forms.ValidationError(
                f"The context path “{context_path}” is already used by the {kind} "
                f"“{owner.name}”. Choose another one."
            )
        return context_path


BASE_URL_HELP = (
    "OpenAI and OpenAI-compatible: the URL including /v1, like the OpenAI SDK's "
    "base_url (https://api.openai.com/v1). Anthropic: without /v1, like the "
    "Anthropic SDK's base_url (https://api.anthropic.com). Azure OpenAI: the "
    "resource endpoint (https://NAME.openai.azure.com)."
)


class ProviderForm(
    FieldMessagesMixin, UniqueNameMixin, ContextPathMixin, forms.ModelForm
):
    kind_with_article = "A provider"
    base_url = forms.URLField(
        label="Base URL",
        max_length=500,
        assume_scheme="https",
        help_text=BASE_URL_HELP,
        validators=[validate_upstream_url],
        error_messages={
            "required": "Enter the base URL of the upstream API.",
            "invalid": "Enter a full URL, like https://api.openai.com/v1.",
        },
    )
    credential = forms.CharField(
        label="Upstream credential",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=(
            "The vendor's API key. Stored encrypted and never shown again. "
            "Leave empty for a server that needs none."
        ),
    )
    remove_credential = forms.BooleanField(
        label="Remove the stored credential",
        required=False,
    )

    class Meta:
        model = Provider
        fields = ["name", "context_path", "vendor", "base_url", "api_version"]
        labels = {"api_version": "API version"}
        help_texts = {"name": "Unique in the project, without regard to case."}
        error_messages = {
            "name": {"required": "Enter a name for the provider."},
            "context_path": {"required": "Enter a context path, like openai-prod."},
            "vendor": {"required": "Choose the vendor of the upstream API."},
        }

    def __init__(self, *args, project, read_only=False, **kwargs):
        self.project = project
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True
        self.fields["vendor"].choices = [("", "Choose…"), *Vendor.choices]
        has_credential = self.instance.pk and self.instance.has_credential
        if read_only:
            # Editing instructions mean nothing to someone who cannot edit.
            del self.fields["remove_credential"]
            self.fields["name"].help_text = ""
            self.fields["credential"].help_text = (
                "A credential is stored; it is never shown."
                if has_credential
                else "No credential is stored."
            )
            for field in self.fields.values():
                field.disabled = True
            self.initial["base_url"] = redact_url_user_info(self.instance.base_url)
        elif has_credential:
            self.fields["credential"].help_text = (
                "A credential is stored. Leave empty to keep it, or enter a new "
                "one to replace it. It is never shown again."
            )
        else:
            del self.fields["remove_credential"]

    def clean_base_url(self):
        return self.cleaned_data["base_url"].strip().rstrip("/")

    def clean(self):
        cleaned = super().clean()
        vendor = cleaned.get("vendor")
        base_url = cleaned.get("base_url")
        if vendor and base_url:
            self._check_base_url(vendor, base_url)
        if vendor == Vendor.AZURE_OPENAI and not cleaned.get("api_version"):
            self.add_error(
                "api_version",
                "Azure OpenAI needs an API version, for example 2024-10-21.",
            )
        if vendor and vendor != Vendor.AZURE_OPENAI:
            cleaned["api_version"] = ""
        return cleaned

    def _check_base_url(self, vendor, base_url):
        path = urlsplit(base_url).path.rstrip("/")
        if vendor == Vendor.OPENAI and not path.endswith("/v1"):
            self.add_error(
                "base_url",
                f"An OpenAI base URL ends with /v1, like https://api.openai.com/v1; "
                f"“{base_url}” does not.",
            )
        elif vendor == Vendor.ANTHROPIC and path.endswith("/v1"):
            self.add_error(
                "base_url",
                "An Anthropic base URL is given without /v1, like "
                "https://api.anthropic.com; remove the trailing /v1.",
            )
        elif vendor == Vendor.AZURE_OPENAI and "/openai" in path:
            self.add_error(
                "base_url",
                "Give the Azure OpenAI resource endpoint only, like "
                "https://NAME.openai.azure.com, without /openai/deployments/….",
            )

    def save(self, commit=True):
        provider = super().save(commit=False)
        provider.project = self.project
        if self.cleaned_data.get("credential"):
            provider.set_credential(self.cleaned_data["credential"])
        elif self.cleaned_data.get("remove_credential"):
            provider.set_credential("")
        if commit:
            provider.save()
        return provider


PRICE_FIELDS = (
    "input_price",
    "cached_input_price",
    "output_price",
    "cache_write_price",
)


def format_price(value):
    """Format a Decimal price without trailing zeros or an exponent."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# Names of the price fields of a model row, as its error messages call them.
PRICE_NAMES = {
    "input_price": "input price",
    "cached_input_price": "cached input price",
    "output_price": "output price",
    "cache_write_price": "cache write price",
}


def price_error_messages(price_name, model_name):
    """Return the error messages of one price field of the row for model_name."""
    if model_name:
        subject = f"The {price_name} of “{model_name}”"
    else:
        subject = f"The {price_name} of a row without a model"
    hint = "in US dollars per 1M tokens, like 2.50, or leave it empty if unknown"
    too_precise = (
        f"{subject} has too many digits: enter at most 8 digits before the "
        f"decimal point and 6 after it, {hint}."
    )
    return {
        "invalid": f"{subject} is not a number: enter it {hint}.",
        "min_value": f"{subject} cannot be negative: enter 0 or more {hint}.",
        "max_digits": too_precise,
        "max_decimal_places": too_precise,
        "max_whole_digits": too_precise,
    }


class ProviderModelForm(FieldMessagesMixin, forms.ModelForm):
    class Meta:
        model = ProviderModel
        fields = [
            "name",
            "input_price",
            "cached_input_price",
            "output_price",
            "cache_write_price",
        ]
        labels = {
            "name": "Model",
            "input_price": "Input",
            "cached_input_price": "Cached input",
            "output_price": "Output",
            "cache_write_price": "Cache write",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["placeholder"] = "e.g. gpt-4o-mini"
        self.fields["name"].error_messages["required"] = (
            "Enter the model id, like gpt-4o-mini, or clear this row's prices."
        )
        model_name = self._submitted_model_name()
        for name in PRICE_FIELDS:
            self.fields[name].error_messages.update(
                price_error_messages(PRICE_NAMES[name], model_name)
            )
            self.fields[name].widget.attrs["placeholder"] = "unknown"
            value = self.initial.get(name)
            if value is not None:
                # Show 2.5, not the stored 2.500000.
                self.initial[name] = format_price(value)

    def _submitted_model_name(self):
        """Return the row's model name as submitted, or as stored when unbound."""
        if self.is_bound:
            name = self.data.get(self.add_prefix("name"), "")
        else:
            name = self.initial.get("name") or ""
        return Truncator(str(name).strip()).chars(80)

    def clean_name(self):
        return self.cleaned_data["name"].strip()


class BaseProviderModelFormSet(forms.BaseInlineFormSet):
    def clean(self):
        # Checked before Django's own unique check, whose message ("Please
        # correct the duplicate data for name.") does not say which model.
        self._check_duplicate_names()
        super().clean()
        if not self.instance.pk:
            return
        for name, proxy in self._removed_models_in_use():
            raise forms.ValidationError(
                f"The model “{name}” is allowed by the App LLM Proxy “{proxy.name}”. "
                "Remove it from the proxy's allowed models first, or keep it here."
            )

    def _check_duplicate_names(self):
        seen = set()
        for form in self.forms:
            if not form.has_changed() and not form.initial:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            name = getattr(form, "cleaned_data", {}).get("name")
            if not name:
                continue
            if name in seen:
                raise forms.ValidationError(
                    f"The model “{name}” is listed more than once; keep one row for it."
                )
            seen.add(name)

    def _removed_models_in_use(self):
        """Yield (model name, proxy) for removed or renamed models a proxy allows."""
        removed = set()
        for form in self.initial_forms:
            original = form.initial.get("name")
            if self._should_delete_form(form):
                removed.add(original)
            elif form.cleaned_data.get("name") not in (None, original):
                removed.add(original)
        if not removed:
            return
        for proxy in self.instance.proxies.all():
            for name in sorted(removed.intersection(proxy.allowed_models)):
                yield name, proxy


ProviderModelFormSet = inlineformset_factory(
    Provider,
    ProviderModel,
    form=ProviderModelForm,
    formset=BaseProviderModelFormSet,
    extra=2,
    can_delete=True,
)


def _models_by_provider(project):
    """Map each provider id of the project to its "<provider id>:<model>" choices."""
    providers = Provider.objects.filter(project=project).prefetch_related("models")
    return {
        provider.pk: (
            provider,
            [
                (f"{provider.pk}:{model.name}", model.name)
                for model in provider.models.all()
            ],
        )
        for provider in providers
    }


class AppProxyForm(
    FieldMessagesMixin, UniqueNameMixin, ContextPathMixin, forms.ModelForm
):
    kind_with_article = "An App LLM Proxy"
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Pick models of the chosen provider; none picked allows all its models.",
    )
    max_tokens = forms.IntegerField(
        label="Max tokens guardrail",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_TOKENS_LIMIT}),
        help_text="Largest max_tokens a request may ask for; empty for no limit.",
        error_messages={"invalid": MAX_TOKENS_MESSAGE},
    )

    class Meta:
        model = AppProxy
        fields = ["name", "context_path", "provider", "max_tokens"]
        help_texts = {"name": "Unique in the project, without regard to case."}
        error_messages = {
            "name": {"required": "Enter a name for the App LLM Proxy."},
            "provider": {
                "required": "Choose the provider this proxy forwards to.",
                "invalid_choice": "Choose a provider of this project.",
            },
        }

    def __init__(self, *args, project, **kwargs):
        self.project = project
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True
        self.fields["provider"].queryset = Provider.objects.filter(project=project)
        self.fields["provider"].empty_label = "Choose…"
        models = _models_by_provider(project)
        # Every provider's models stay valid choices, so that clean() can name
        # the model that belongs elsewhere; only the chosen provider's are shown.
        self.fields["allowed_models"].choices = [
            (provider.name, choices) for provider, choices in models.values() if choices
        ]
        self.chosen_provider, shown = models.get(self._chosen_provider_id(), (None, []))
        self.fields["allowed_models"].widget.choices = shown
        if self.instance.pk:
            self.initial["allowed_models"] = [
                f"{self.instance.provider_id}:{name}"
                for name in self.instance.allowed_models
            ]

    def _chosen_provider_id(self):
        if self.is_bound:
            return parse_id(self.data.get(self.add_prefix("provider"), ""))
        chosen = self.initial.get("provider")
        if isinstance(chosen, Provider):
            return chosen.pk
        return parse_id(chosen) if chosen else None

    def clean_max_tokens(self):
        max_tokens = self.cleaned_data.get("max_tokens")
        if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise forms.ValidationError(MAX_TOKENS_MESSAGE)
        return max_tokens

    def clean(self):
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if provider is None:
            return cleaned
        names = []
        for value in cleaned.get("allowed_models", []):
            provider_id, _, name = value.partition(":")
            if provider_id != str(provider.pk):
                self.add_error(
                    "allowed_models",
                    f"The model “{name}” belongs to another provider; pick models "
                    f"of “{provider.name}” only.",
                )
                continue
            names.append(name)
        cleaned["allowed_model_names"] = names
        return cleaned

    def save(self, commit=True):
        proxy = super().save(commit=False)
        proxy.project = self.project
        proxy.allowed_models = self.cleaned_data.get("allowed_model_names", [])
        if commit:
            proxy.save()
        return proxy


def target_choices(project):
    """Providers and proxies of the project as grouped "kind:id" choices.

    Labels show the context path too, like "OpenAI (/openai)", because the
    gateway URL and the docs name a target by its context path.
    """
    providers = Provider.objects.filter(project=project).only("name", "context_path")
    proxies = AppProxy.objects.filter(project=project).only("name", "context_path")
    return [
        ("LLM Providers", [(f"provider:{p.pk}", target_label(p)) for p in providers]),
        ("App LLM Proxies", [(f"proxy:{p.pk}", target_label(p)) for p in proxies]),
    ]


def target_label(target):
    return f"{target.name} (/{target.context_path})"


def resolve_target(project, value):
    """Return (provider, proxy) for a "kind:id" value, one of them None."""
    kind, _, raw_pk = value.partition(":")
    pk = parse_id(raw_pk)
    if pk is None:
        return None, None
    if kind == "provider":
        return Provider.objects.filter(project=project, pk=pk).first(), None
    if kind == "proxy":
        return None, AppProxy.objects.filter(project=project, pk=pk).first()
    return None, None


class ExpiryField(forms.DateTimeField):
    """A DateTimeField whose "invalid" message can show the rejected text.

    A date that does not exist, like 2026-02-30T10:00, is invalid too.
    """

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError as error:
            if error.code != "invalid":
                raise
            raise forms.ValidationError(
                self.error_messages["invalid"],
                code="invalid",
                params={"value": Truncator(str(value)).chars(40)},
            ) from error


class APIKeyForm(FieldMessagesMixin, forms.Form):
    name = forms.CharField(
        max_length=255,
        validators=[validate_visible_name],
        help_text="Say who or what uses this key.",
        error_messages={"required": "Enter a name for the key."},
    )
    target = forms.ChoiceField(
        label="Provider or proxy",
        help_text="The key can call exactly this provider or App LLM Proxy.",
        error_messages={
            "invalid_choice": "Choose a provider or proxy of this project.",
            "required": "Choose the provider or proxy this key may call.",
        },
    )
    expires_at = ExpiryField(
        label="Expires at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Leave empty for a key that does not expire.",
        error_messages={
            "invalid": "Expires at: “%(value)s” is not a valid date and time. "
            "Enter one like 2026-03-31 18:00 (UTC), or leave the field empty "
            "for a key that does not expire."
        },
    )

    def __init__(self, *args, project, **kwargs):
        self.project = project
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True
        self.fields["target"].choices = [("", "Choose…"), *target_choices(project)]

    def clean_target(self):
        provider, proxy = resolve_target(self.project, self.cleaned_data["target"])
        if provider is None and proxy is None:
            raise forms.ValidationError("Choose a provider or proxy of this project.")
        self.cleaned_data["provider"] = provider
        self.cleaned_data["proxy"] = proxy
        return self.cleaned_data["target"]

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError(
                "The expiry must be in the future; leave it empty for no expiry."
            )
        return expires_at

    def create_key(self, user):
        """Create the key and return (key, secret); the secret is not stored."""
        return APIKey.create_with_secret(
            project=self.project,
            name=self.cleaned_data["name"],
            provider=self.cleaned_data["provider"],
            proxy=self.cleaned_data["proxy"],
            expires_at=self.cleaned_data["expires_at"],
            created_by=user,
        )


class KeySearchForm(forms.Form):
    """Search by name or prefix and a provider/proxy filter over API keys.

    A filter value that matches nothing in the project, like a stale link
    to a deleted proxy, selects no keys instead of being dropped, and
    `invalid_filters` lists a message for each such value.
    """

    # Messages for filter values that are not choices, formatted with {value}.
    invalid_filter_messages = {
        "target": "Provider or proxy filter: “{value}” is not a provider or App "
        "LLM Proxy of this project.",
    }

    q = forms.CharField(
        label="Search",
        required=False,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name or prefix"}
        ),
    )
    target = forms.ChoiceField(label="Provider or proxy", required=False)

    def __init__(self, *args, project, **kwargs):
        self.project = project
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [
            ("", "Any provider or proxy"),
            *target_choices(project),
        ]

    def full_clean(self):
        super().full_clean()
        self.invalid_filters = []
        for name in self.invalid_filter_messages:
            if name not in self.errors:
                continue
            value = self.data.get(self.add_prefix(name), "")
            short_value = Truncator(value).chars(40)
            self.invalid_filters.append(
                self.invalid_filter_messages[name].format(value=short_value)
            )
            # Keep the value selected, so the select shows why no key is listed.
            field = self.fields[name]
            field.widget.choices = [*field.choices, (value, f"Unknown: {short_value}")]

    def filter(self, queryset):
        if not self.is_valid():
            return queryset.none()

        query = self.cleaned_data["q"].strip()
        if query:
            queryset = queryset.filter(
                Q(name__icontains=query) | Q(prefix__startswith=query)
            )
        if self.cleaned_data["target"]:
            provider, proxy = resolve_target(self.project, self.cleaned_data["target"])
            queryset = queryset.filter(provider=provider, proxy=proxy)
        return queryset


class KeyFilterForm(KeySearchForm):
    """Search and filters of the API Keys page, adding status and application."""

    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *KeyStatus.choices]
    )
    application = forms.ChoiceField(required=False)

    invalid_filter_messages = {
        **KeySearchForm.invalid_filter_messages,
        "status": "Status filter: “{value}” is not a key status; choose active, "
        "revoked or expired.",
        "application": "Application filter: “{value}” is not an application of "
        "this project; it may have been deleted.",
    }

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, project=project, **kwargs)
        self.fields["application"].choices = [
            ("", "Any application"),
            (NO_APPLICATION, "No application"),
            *application_choices(project),
        ]

    def filter(self, queryset):
        queryset = super().filter(queryset)
        if not self.is_valid():
            return queryset.none()

        if self.cleaned_data["status"]:
            queryset = queryset.with_status(self.cleaned_data["status"])
        application = self.cleaned_data["application"]
        if application == NO_APPLICATION:
            queryset = queryset.filter(mapping__isnull=True)
        elif application:
            queryset = queryset.filter(mapping__application_id=int(application))
        return queryset


# The API Keys filter value for keys that belong to no application:
# /p/<slug>/keys/?application=none
NO_APPLICATION = "none"


def application_choices(project):
    """Return the project's live applications as (id, name) choices, by name."""
    # Reached through the reverse relation, because workspace does not
    # import genai_apps. The related manager sets each row's project, so
    # project_id is loaded too, or every row would load it in a query.
    applications = (
        project.applications.filter(deleted_at__isnull=True)
        .order_by("name")
        .only("name", "project_id")
    )
    return [(str(application.pk), application.name) for application in applications]
