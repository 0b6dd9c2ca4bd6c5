"""The rules for attaching and detaching keys, shared by the UI, the admin
and the management commands."""

from django.db import transaction
from django.utils import timezone

from genai_apps.models import KeyMapping, KeyMappingEvent, MappingAction, MappingSource
from genai_apps.signals import mapping_changed
from workspace.models import APIKey, KeyStatus


class MappingError(Exception):
    """A key cannot be attached; the message names the key and the reason."""


def _record(action, application, key, user, source, when):
    return KeyMappingEvent(
        project_id=application.project_id,
        application=application,
        application_name=application.name,
        key=key,
        key_name=key.name,
        key_prefix=key.prefix,
        action=action,
        source=source,
        actor=user if user and user.is_authenticated else None,
        created_at=when,
    )


@transaction.atomic
def attach_keys(application, keys, user, source=MappingSource.UI):
    """Attach keys to the application and record each attach.

    Only active keys may be attached: a revoked or expired key makes no
    calls, and attaching it would not move its past usage, which stays with
    the application that owned the key at the time of each call. A key that
    is revoked or expires while attached stays attached. Raises
    MappingError, and attaches nothing, when a key is in another project,
    already belongs to another application, or is revoked or expired.
    Attaching a key that is already in this application is a no-op.
    Returns the newly created mappings.
    """
    if application.is_deleted:
        raise MappingError(f"The application “{application.name}” has been deleted.")

    now = timezone.now()
    key_ids = [key.pk for key in keys]
    # Lock the keys so two concurrent attaches of one key cannot both pass
    # the ownership check below; the unique key_id on KeyMapping backs this.
    locked = list(
        APIKey.objects.select_for_update(of=("self",))
        .filter(pk__in=key_ids)
        .select_related("mapping__application")
        .order_by("pk")
    )
    for key in locked:
        if key.project_id != application.project_id:
            raise MappingError(f"API key {key.prefix}… is not in this project.")
        mapping = getattr(key, "mapping", None)
        if mapping is not None and mapping.application_id != application.pk:
            raise MappingError(
                f"API key “{key.name}” ({key.prefix}…) already belongs to the "
                f"application “{mapping.application.name}”. Remove it there first."
            )
        if mapping is None and key.status_at(now) != KeyStatus.ACTIVE:
            raise MappingError(
                f"API key “{key.name}” ({key.prefix}…) is "
                f"{key.status_at(now).label.lower()}; only active keys can be attached."
            )
    missing = set(key_ids) - {key.pk for key in locked}
    if missing:
        raise MappingError(f"API key id {min(missing)} does not exist.")

    new_keys = [key for key in locked if getattr(key, "mapping", None) is None]
    mappings = KeyMapping.objects.bulk_create(
        [
            KeyMapping(
                key=key, application=application, attached_by=user, attached_at=now
            )
            for key in new_keys
        ]
    )
    KeyMappingEvent.objects.bulk_create(
        [
            _record(MappingAction.ATTACH, application, key, user, source, now)
            for key in new_keys
        ]
    )
    if new_keys:
        transaction.on_commit(
            lambda: mapping_changed.send(sender=KeyMapping, keys=new_keys)
        )
    return mappings


@transaction.atomic
def detach_key(application, key, user, source=MappingSource.UI):
    """Detach one key from the application; the key itself is untouched.

    Returns False when the key was not attached to this application.
    """
    deleted, _ = KeyMapping.objects.filter(application=application, key=key).delete()
    if not deleted:
        return False
    _record(MappingAction.DETACH, application, key, user, source, timezone.now()).save()
    transaction.on_commit(lambda: mapping_changed.send(sender=KeyMapping, keys=[key]))
    return True


@transaction.atomic
def delete_application(application, user, source=MappingSource.DELETE):
    """Mark the application deleted after detaching all its keys.

    Its usage history stays, attributed to it.
    """
    for mapping in application.mappings.select_related("key"):
        detach_key(application, mapping.key, user, source=source)
    application.deleted_at = timezone.now()
    application.save(update_fields=["deleted_at", "updated_at"])
