import uuid

from django.db import models
from django.utils import timezone

from genai_apps.models import GenAIApplication
from workspace.models import APIKey, AppProxy, Project, Provider


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


class UsageEvent(models.Model):
    """One gateway call. Append-only; written only by insights.recording."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    key = models.ForeignKey(
        APIKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The application that owned the key when the call was made.
    application = models.ForeignKey(
        GenAIApplication,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    provider = models.ForeignKey(
        Provider, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    proxy = models.ForeignKey(
        AppProxy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=255, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Part of prompt_tokens, as in the OpenAI usage object.
    cached_tokens = models.PositiveIntegerField(default=0)
    # Part of completion_tokens, as in the OpenAI usage object.
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(
        max_length=32, choices=ErrorType.choices, blank=True, default=ErrorType.NONE
    )
    # Cost in nano-dollars (1e-9 USD); null when the model has no price.
    cost_nanousd = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "occurred_at"])]
