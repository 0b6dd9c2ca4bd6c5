"""Ingestion tokens: per-project bearer tokens for the ingestion API."""

import secrets

from django.utils import timezone

from insights.models import IngestionToken
from workspace.models import hash_secret

TOKEN_PREFIX = "aiwi-"


def generate_ingestion_token():
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_ingestion_token(project, name):
    """Create a token for the project; return (IngestionToken, plain token).

    Only the SHA-256 of the token is stored, so it cannot be shown again.
    """
    token = generate_ingestion_token()
    instance = IngestionToken.objects.create(
        project=project,
        name=name,
        prefix=token[:12],
        token_hash=hash_secret(token),
    )
    return instance, token


def authenticate(token):
    """Return the active IngestionToken for a plain token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    instance = (
        IngestionToken.objects.select_related("project")
        .filter(token_hash=hash_secret(token), revoked_at__isnull=True)
        .first()
    )
    if instance is not None:
        IngestionToken.objects.filter(pk=instance.pk).update(
            last_used_at=timezone.now()
        )
    return instance
