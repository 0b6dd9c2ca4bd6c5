from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from workspace.models import APIKey, Project
from workspace.names import validate_visible_name

APPLICATION_NAME_MAX_LENGTH = 255


class GenAIApplicationQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted_at__isnull=True)


class GenAIApplication(models.Model):
    """A named group of API keys whose usage is reported together.

    Deleting an application from the UI only marks it deleted: its mappings
    are removed (keys stay) and its usage history stays readable.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="applications"
    )
    name = models.CharField(
        max_length=APPLICATION_NAME_MAX_LENGTH, validators=[validate_visible_name]
    )
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = GenAIApplicationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "GenAI application"
        constraints = [
            models.UniqueConstraint(
                "project",
                Lower("name"),
                condition=models.Q(deleted_at__isnull=True),
                name="application_unique_name_ci",
                violation_error_message=(
                    "An application with this name already exists in the project."
                ),
            )
        ]

    def __str__(self):
        return self.name

    @property
    def is_deleted(self):
        return self.deleted_at is not None


class KeyMapping(models.Model):
    """Links one key to one application; a key has at most one mapping."""

    key = models.OneToOneField(APIKey, on_delete=models.CASCADE, related_name="mapping")
    application = models.ForeignKey(
        GenAIApplication, on_delete=models.CASCADE, related_name="mappings"
    )
    attached_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    attached_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-attached_at"]
        verbose_name = "key mapping"

    def __str__(self):
        return f"{self.key} → {self.application}"


class MappingAction(models.TextChoices):
    ATTACH = "attach", "Attached"
    DETACH = "detach", "Detached"


class MappingSource(models.TextChoices):
    UI = "ui", "Browser UI"
    ADMIN = "admin", "Admin site"
    REVIEW = "review", "Mapping review"
    DELETE = "delete", "Application deleted"
    COMMAND = "command", "Management command"


class KeyMappingEvent(models.Model):
    """One attach or detach, kept after keys and applications are gone.

    The names and prefix are copied so the trail stays readable when the
    referenced rows are deleted.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="mapping_events"
    )
    application = models.ForeignKey(
        GenAIApplication,
        on_delete=models.SET_NULL,
        null=True,
        related_name="mapping_events",
    )
    application_name = models.CharField(max_length=APPLICATION_NAME_MAX_LENGTH)
    key = models.ForeignKey(
        APIKey, on_delete=models.SET_NULL, null=True, related_name="mapping_events"
    )
    key_name = models.CharField(max_length=255)
    key_prefix = models.CharField(max_length=16)
    action = models.CharField(max_length=8, choices=MappingAction.choices)
    source = models.CharField(
        max_length=16, choices=MappingSource.choices, default=MappingSource.UI
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "key mapping event"

    def __str__(self):
        return (
            f"{self.get_action_display()} {self.key_prefix} / {self.application_name}"
        )


class MappingReview(models.Model):
    """One run of `manage.py review_mappings`: its options and what it found.

    `project` is empty when the run covered every project.
    """

    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mapping_reviews",
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The command-line options, e.g. {"stale_days": 30, "detach": true}.
    options = models.JSONField(default=dict)
    finding_count = models.PositiveIntegerField(default=0)
    # Findings per kind, e.g. {"revoked_key": 2, "unused_key": 0, ...}.
    counts = models.JSONField(default=dict)
    detached_count = models.PositiveIntegerField(
        default=0, help_text="Keys detached by this run; 0 for a dry run."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "mapping review"

    def __str__(self):
        return f"Mapping review at {self.started_at:%Y-%m-%d %H:%M} UTC"
