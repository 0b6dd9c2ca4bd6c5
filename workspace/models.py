import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from workspace import crypto
from workspace.names import validate_visible_name
from workspace.validators import validate_azure_api_version, validate_upstream_url

KEY_SECRET_PREFIX = "aiw-"
# The prefix shown after creation: "aiw-" plus 8 characters of the secret.
KEY_DISPLAY_PREFIX_LENGTH = 12

context_path_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use lowercase letters, digits and hyphens, starting with a letter or digit "
    "(at most 63 characters).",
)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


# Roles that may create and change objects in a project; viewers read only.
EDITOR_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
# Roles that govern a project in the admin site.
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Project(models.Model):
    name = models.CharField(max_length=255, validators=[validate_visible_name])
    slug = models.SlugField(max_length=63, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class MembershipQuerySet(models.QuerySet):
    def editors(self):
        return self.filter(role__in=EDITOR_ROLES)


class Membership(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"], name="membership_unique_project_user"
            )
        ]

    def __str__(self):
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def can_edit(self):
        return self.role in EDITOR_ROLES

    @property
    def can_manage(self):
        """Owners and admins; only they change providers, which hold credentials."""
        return self.role in MANAGER_ROLES


class Vendor(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    AZURE_OPENAI = "azure_openai", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"


class Provider(models.Model):
    """An upstream model service that the gateway forwards to."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="providers"
    )
    name = models.CharField(max_length=255, validators=[validate_visible_name])
    context_path = models.CharField(
        max_length=63,
        validators=[context_path_validator],
        help_text="The gateway serves this provider under /gateway/{context path}/v1/.",
    )
    vendor = models.CharField(max_length=32, choices=Vendor.choices)
    base_url = models.URLField(max_length=500, validators=[validate_upstream_url])
    api_version = models.CharField(
        max_length=32,
        blank=True,
        validators=[validate_azure_api_version],
        help_text="Azure OpenAI only: the api-version query parameter, e.g. 2024-10-21.",
    )
    # Fernet token of the upstream credential; see workspace.crypto.
    credential_encrypted = models.TextField(blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "context_path"],
                name="provider_unique_context_path",
            ),
            models.UniqueConstraint(
                "project",
                Lower("name"),
                name="provider_unique_name_ci",
                violation_error_message=(
                    "A provider with this name already exists in the project."
                ),
            ),
        ]

    def __str__(self):
        return self.name

    def set_credential(self, plain_text):
        self.credential_encrypted = crypto.encrypt(plain_text) if plain_text else ""

    def get_credential(self):
        if not self.credential_encrypted:
            return ""
        return crypto.decrypt(self.credential_encrypted)

    @property
    def has_credential(self):
        return bool(self.credential_encrypted)


PRICE_FIELD_OPTIONS = {
    "max_digits": 14,
    "decimal_places": 6,
    "null": True,
    "blank": True,
    "validators": [MinValueValidator(0)],
}


class ProviderModel(models.Model):
    """A model a provider serves, with its prices in USD per million tokens.

    A price left empty means unknown: usage of that kind is recorded with an
    unknown cost, never as $0.
    """

    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, related_name="models"
    )
    name = models.CharField(
        max_length=255,
        help_text="The model id clients send; for Azure OpenAI, the deployment name.",
    )
    input_price = models.DecimalField(
        "input price (USD / 1M tokens)", **PRICE_FIELD_OPTIONS
    )
    cached_input_price = models.DecimalField(
        "cached input price (USD / 1M tokens)", **PRICE_FIELD_OPTIONS
    )
    output_price = models.DecimalField(
        "output price (USD / 1M tokens)", **PRICE_FIELD_OPTIONS
    )
    cache_write_price = models.DecimalField(
        "cache write price (USD / 1M tokens)", **PRICE_FIELD_OPTIONS
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "name"], name="provider_model_unique_name"
            )
        ]

    def __str__(self):
        return self.name


# The largest max_tokens guardrail a proxy accepts; no model produces
# anywhere near this many tokens in one response.
MAX_TOKENS_LIMIT = 1_000_000
MAX_TOKENS_MESSAGE = (
    f"Enter a whole number from 1 to {MAX_TOKENS_LIMIT:,}, or leave empty for no limit."
)


class AppProxy(models.Model):
    """An application-specific endpoint over one provider, with guardrails."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="proxies"
    )
    name = models.CharField(max_length=255, validators=[validate_visible_name])
    context_path = models.CharField(
        max_length=63,
        validators=[context_path_validator],
        help_text="The gateway serves this proxy under /gateway/{context path}/v1/.",
    )
    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="proxies"
    )
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Model ids this proxy accepts; empty allows every model of the provider.",
    )
    max_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(1, MAX_TOKENS_MESSAGE),
            MaxValueValidator(MAX_TOKENS_LIMIT, MAX_TOKENS_MESSAGE),
        ],
        help_text="Largest max_tokens a request may ask for; empty for no limit.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "App LLM Proxy"
        verbose_name_plural = "App LLM Proxies"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "context_path"], name="proxy_unique_context_path"
            ),
            models.UniqueConstraint(
                "project",
                Lower("name"),
                name="proxy_unique_name_ci",
                violation_error_message=(
                    "An App LLM Proxy with this name already exists in the project."
                ),
            ),
        ]

    def __str__(self):
        return self.name


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class APIKeyQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def revoked(self):
        return self.filter(revoked_at__isnull=False)

    def expired(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__lte=now)

    def with_status(self, status, now=None):
        if status == KeyStatus.ACTIVE:
            return self.active(now)
        if status == KeyStatus.REVOKED:
            return self.revoked()
        if status == KeyStatus.EXPIRED:
            return self.expired(now)
        return self.none()


def hash_secret(secret):
    """Return the SHA-256 hex digest that identifies a key secret.

    Key secrets carry 256 bits of randomness, so a fast unsalted hash is
    enough to make the stored value useless to an attacker, and it lets the
    gateway and the ingestion API look a key up by its hash.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret():
    return KEY_SECRET_PREFIX + secrets.token_urlsafe(32)


class APIKey(models.Model):
    """A secret issued for exactly one provider or one proxy.

    Only the SHA-256 of the secret is stored; the secret itself is returned
    once by `create_with_secret` and never again.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=255, validators=[validate_visible_name])
    provider = models.ForeignKey(
        Provider,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    proxy = models.ForeignKey(
        AppProxy,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    prefix = models.CharField(max_length=KEY_DISPLAY_PREFIX_LENGTH, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="created_api_keys",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(provider__isnull=False, proxy__isnull=True)
                    | Q(provider__isnull=True, proxy__isnull=False)
                ),
                name="api_key_exactly_one_target",
            )
        ]
        indexes = [models.Index(fields=["project", "created_at"])]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def create_with_secret(cls, **fields):
        """Create a key and return (key, secret); the secret is not stored."""
        secret = generate_secret()
        key = cls.objects.create(
            prefix=secret[:KEY_DISPLAY_PREFIX_LENGTH],
            secret_hash=hash_secret(secret),
            **fields,
        )
        return key, secret

    @property
    def target(self):
        return self.provider if self.provider_id else self.proxy

    @property
    def target_kind(self):
        return "provider" if self.provider_id else "proxy"

    def status_at(self, now):
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    @property
    def status(self):
        return self.status_at(timezone.now())

    @property
    def is_active(self):
        return self.status == KeyStatus.ACTIVE

    def revoke(self, user=None):
        """Revoke the key; returns False when it was already revoked."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = timezone.now()
        self.revoked_by = user
        self.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
        return True
