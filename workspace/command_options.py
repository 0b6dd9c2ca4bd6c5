"""Checks shared by the management commands' options."""

from django.core.management.base import CommandError

# 100 years: past any retention or review window, and well inside the dates
# Python and the databases can represent.
MAX_DAYS = 36_500


def check_days(option, value, minimum):
    """Raise a CommandError naming the option unless minimum <= value <= MAX_DAYS."""
    if not minimum <= value <= MAX_DAYS:
        raise CommandError(
            f"{option} must be between {minimum} and {MAX_DAYS:,} days, got {value:,}."
        )
