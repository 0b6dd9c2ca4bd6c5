import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone

from genai_apps.models import GenAIApplication
from workspace.models import APIKey, AppProxy, Project, Provider

NANOUSD_PER_USD = Decimal(1_000_000_000)


class ErrorType(models.TextChoices):
    NONE = "", "None"
    RATE_LIMIT = "rate_limit", "Rate limit"
    UPSTREAM_4XX = "upstream_4xx", "Upstream 4xx"
    UPSTREAM_5XX = "upstream_5xx", "Upstream 5xx"
    TIMEOUT = "timeout", "Timeout"
    CONNECTION_ERROR = "connection_error", "Connection error"
    CLIENT_CANCELLED = "client_cancelled", "Client cancelled"
    BAD_REQUEST = "bad_request", "Bad request"
    GUARDRAIL = "guardrail", "Guardrail"
    AUTHENTICATION = "authentication", "Authentication"
    OTHER = "other", "Other"


def nanousd_to_usd(nanousd):
    """Return an integer nano-dollar amount as Decimal USD, or None if unknown."""
    if nanousd is None:
        return None
    return Decimal(nanousd) / NANOUSD_PER_USD


def _usd_or_unknown(price):
    """Return a price as $2.50 (at least two decimals, no trailing zeros past them)."""
    if price is None:
        return "unknown"
    exact = price.normalize()
    if exact.as_tuple().exponent >= -2:
        return f"${price:.2f}"
    return f"${exact:f}"


class UsagePrice(models.Model):
    """The prices, in USD per million tokens, that a usage event was costed with.

    Events point here instead of carrying four price columns, which keeps an
    event row small; identical price sets share one row, found by `signature`.
    """

    # A 4-byte key keeps the reference from every event small.
    id = models.AutoField(primary_key=True)
    signature = models.CharField(max_length=160, unique=True)
    input_price = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    cached_input_price = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    output_price = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    cache_write_price = models.DecimalField(max_digits=14, decimal_places=6, null=True)

    def __str__(self):
        parts = [
            ("input", self.input_price),
            ("cached input", self.cached_input_price),
            ("cache write", self.cache_write_price),
            ("output", self.output_price),
        ]
        prices = ", ".join(f"{name} {_usd_or_unknown(price)}" for name, price in parts)
        return f"{prices} per 1M tokens"


class UsageEvent(models.Model):
    """One gateway call. Append-only; written only by insights.recording.

    The fields are ordered 8-byte, 4-byte, 2-byte, then variable-length so
    PostgreSQL packs the row without alignment padding, and the foreign keys
    carry no index of their own: reads go through the rollups, and the only
    index besides the primary key is a BRIN index on occurred_at (see the
    migration). Deleting a key or an application therefore scans the table to
    null the reference, which is rare and acceptable.
    """

    # The event id is the primary key: a retried write conflicts on it, and a
    # separate serial id would add 8 bytes and a second index to every row.
    event_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.ForeignKey(
        APIKey,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    # The application that owned the key when the call was made.
    application = models.ForeignKey(
        GenAIApplication,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    provider = models.ForeignKey(
        Provider,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    proxy = models.ForeignKey(
        AppProxy,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    # Cost in nano-dollars (1e-9 USD); null when the model has no price.
    cost_nanousd = models.BigIntegerField(null=True, blank=True)
    price = models.ForeignKey(
        UsagePrice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Part of prompt_tokens, as in the OpenAI usage object.
    cached_tokens = models.PositiveIntegerField(default=0)
    # Part of completion_tokens, as in the OpenAI usage object.
    reasoning_tokens = models.PositiveIntegerField(default=0)
    # Part of prompt_tokens: prompt tokens written to the provider's cache
    # (Anthropic's cache_creation_input_tokens).
    cache_write_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(
        max_length=32, choices=ErrorType.choices, blank=True, default=ErrorType.NONE
    )
    model = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["occurred_at"]

    def __str__(self):
        return f"{self.event_id} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"

    @property
    def cost(self):
        """Cost in USD as a Decimal, or None when the model has no price."""
        return nanousd_to_usd(self.cost_nanousd)

    @property
    def is_error(self):
        return bool(self.error_type) or self.status_code >= 400


class RollupLevel(models.IntegerChoices):
    """Bucket widths in minutes; every bucket starts at a multiple in UTC."""

    QUARTER_HOUR = 15, "15 minutes"
    HOUR = 60, "1 hour"
    DAY = 1440, "1 day"


class RollupBase(models.Model):
    """Dimensions and metrics shared by the rollup tables.

    Every event is counted once at each level of each table. Dimension
    columns use 0 and "" instead of NULL so the unique constraints match them
    in INSERT ... ON CONFLICT. The metrics are declared once here and listed
    in insights.rollups.METRICS with how one event contributes to each.
    """

    level = models.PositiveSmallIntegerField(choices=RollupLevel.choices)
    bucket_start = models.DateTimeField()
    # Derived data: Django deletes it with the project, and skipping the
    # database constraint spares a foreign key check on every increment.
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # 0 when the key belonged to no application.
    application_id = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    # Sum of the known costs; unpriced_requests counts the events left out.
    cost_nanousd = models.BigIntegerField(default=0)
    unpriced_requests = models.BigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.get_level_display()} from {self.bucket_start:%Y-%m-%d %H:%M}"


class UsageRollup(RollupBase):
    """Usage per bucket, application, model, HTTP status and error type.

    Serves the headline figures, the charts, the model table and the overview.
    It has no key column, so a bucket has one row per model for most
    applications however many keys they use.
    """

    model = models.CharField(max_length=255, blank=True)
    status_code = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "project",
                    "application_id",
                    "level",
                    "bucket_start",
                    "model",
                    "status_code",
                    "error_type",
                ],
                name="usage_rollup_unique_dimensions",
            )
        ]
        # The unique constraint serves one application's page; this index
        # serves the project overview, which reads every application.
        indexes = [
            models.Index(
                fields=["project", "level", "bucket_start"],
                name="usage_rollup_project_bucket",
            )
        ]


class KeyRollup(RollupBase):
    """Usage per bucket, application and API key, for the tables by key."""

    # 0 when the event has no key.
    key_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "application_id", "level", "bucket_start", "key_id"],
                name="key_rollup_unique_dimensions",
            )
        ]
        indexes = [
            models.Index(
                fields=["project", "level", "bucket_start"],
                name="key_rollup_project_bucket",
            )
        ]


class HistogramMetric(models.IntegerChoices):
    LATENCY = 1, "Latency"
    TTFT = 2, "Time to first token"


# application_id of the histogram rows that sum every application of a
# project, so project-wide percentiles do not merge one row per application.
ALL_APPLICATIONS = -1


class UsageHistogram(models.Model):
    """A latency or TTFT distribution per bucket and application.

    `counts` is a sparse histogram over log-spaced bins, stored as text
    "bin count bin count ..." (see insights.histograms). Histograms add bin
    by bin, so any range's percentiles come from merging its buckets.
    """

    level = models.PositiveSmallIntegerField(choices=RollupLevel.choices)
    bucket_start = models.DateTimeField()
    # Derived data: Django deletes it with the project, and skipping the
    # database constraint spares a foreign key check on every increment.
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # 0 for keys attached to no application; ALL_APPLICATIONS for the project.
    application_id = models.BigIntegerField(default=0)
    metric = models.PositiveSmallIntegerField(choices=HistogramMetric.choices)
    counts = models.TextField(default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "application_id", "metric", "level", "bucket_start"],
                name="usage_histogram_unique_dimensions",
            )
        ]
        indexes = [
            models.Index(
                fields=["project", "metric", "level", "bucket_start"],
                name="usage_histogram_project_bucket",
            )
        ]

    def __str__(self):
        return f"{self.get_metric_display()} from {self.bucket_start:%Y-%m-%d %H:%M}"


class IngestionToken(models.Model):
    """A per-project bearer token for the ingestion API.

    Only the SHA-256 of the token is stored; the token is shown once.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="ingestion_tokens"
    )
    name = models.CharField(max_length=255)
    prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
