"""Logging filters named in settings.LOGGING."""

from django.core.exceptions import PermissionDenied


class PermissionDeniedWithoutTraceback:
    """Log a 403 from PermissionDenied as one line instead of a traceback.

    Django logs "Forbidden (Permission denied)" with the exception attached,
    so every viewer who opened an edit page printed a traceback. A viewer's
    403 is expected behaviour, so the line with the path is enough.
    """

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
