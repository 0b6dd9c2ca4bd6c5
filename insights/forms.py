"""The range and timezone options of the insights pages."""

import datetime
import urllib.parse
import zoneinfo

from django import forms

from insights import queries
from insights.reports import Period

PRESETS = {
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
    "90d": datetime.timedelta(days=90),
}
RANGE_CHOICES = [
    ("24h", "24 h"),
    ("7d", "7 d"),
    ("30d", "30 d"),
    ("90d", "90 d"),
    ("custom", "Custom"),
]
DEFAULT_RANGE = "7d"
# Custom ranges longer than this would read more daily buckets than a page should.
MAX_CUSTOM_DAYS = 400
# Custom dates outside these bounds are rejected: the year 0026 from a
# mistyped date picker, and local mean time offsets (before about 1970) that
# do not fall on the 15-minute boundaries the rollups are cut at.
EARLIEST_DATE = datetime.date(2000, 1, 1)
LATEST_DATE = datetime.date(2100, 12, 31)
TIMEZONE_COOKIE = "aiw_tz"
# Longer timezone values are rejected before lookup. The maximum length of a
# name in the tz database is 32 characters (America/Argentina/ComodRivadavia).
MAX_TIMEZONE_LENGTH = 64
# Messages repeat an invalid value up to this length and give the length of
# a longer one, so that a pasted page of text does not fill the page again.
MAX_QUOTED_LENGTH = 64
# Names in the tz database that are not places: "localtime" is the server's
# own zone and "Factory" an empty placeholder.
_NOT_PLACES = {"Factory", "localtime", "posixrules"}


_CANONICAL_TIMEZONES = {
    name.lower(): name for name in zoneinfo.available_timezones() - _NOT_PLACES
}


def canonical_timezone(name):
    """Return the IANA spelling of name, matched without regard to case.

    Raises ValueError for names that are not places in the tz database.
    """
    canonical = _CANONICAL_TIMEZONES.get(name.strip().lower())
    if canonical is None:
        raise ValueError(
            f"Unknown timezone {name!r}; use an IANA name such as Europe/Berlin."
        )
    return canonical


def describe_value(value):
    """Return value quoted for a message, or its length when it is too long to repeat."""
    if len(value) > MAX_QUOTED_LENGTH:
        return f"of {len(value)} characters"
    return repr(value)


class LabelledDateField(forms.DateField):
    """A date field whose message for an unreadable date names the label and the value."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(
                f"{self.label}: enter a date as YYYY-MM-DD, "
                f"not {describe_value(str(value))}.",
                code="invalid",
            ) from None


class RangeForm(forms.Form):
    # range and tz are plain fields because clean_range and clean_tz check
    # them. ChoiceField and CharField would first raise Django's default
    # messages, which name neither the field nor a valid value.
    range = forms.Field(required=False)
    start = LabelledDateField(
        required=False, label="Start date", widget=forms.DateInput({"type": "date"})
    )
    end = LabelledDateField(
        required=False, label="End date", widget=forms.DateInput({"type": "date"})
    )
    tz = forms.Field(required=False, label="Timezone")

    def clean_range(self):
        value = self.cleaned_data.get("range") or DEFAULT_RANGE
        if value not in dict(RANGE_CHOICES):
            raise forms.ValidationError(
                f"Unknown range {describe_value(value)}. "
                f"Use {', '.join(PRESETS)} or custom."
            )
        return value

    def clean_tz(self):
        name = self.cleaned_data.get("tz") or "UTC"
        if len(name) > MAX_TIMEZONE_LENGTH:
            raise forms.ValidationError(
                f"The timezone has {len(name)} characters, more than the maximum "
                f"of {MAX_TIMEZONE_LENGTH}. Use an IANA name such as Europe/Berlin."
            )
        if "\x00" in name:
            raise forms.ValidationError(
                f"The timezone {name!r} contains a null character. "
                "Use an IANA name such as Europe/Berlin."
            )
        try:
            return canonical_timezone(name)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def _clean_date(self, name, label):
        value = self.cleaned_data.get(name)
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise forms.ValidationError(
                f"{label}: enter a date between {EARLIEST_DATE} and {LATEST_DATE}, "
                f"not {value.isoformat()}."
            )
        return value

    def clean_start(self):
        return self._clean_date("start", "Start date")

    def clean_end(self):
        return self._clean_date("end", "End date")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("range") != "custom":
            return cleaned
        if "start" in self.errors or "end" in self.errors:
            # The invalid date has its own message; a second one would confuse.
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            raise forms.ValidationError(
                "A custom range needs a start and an end date. "
                "Enter both as YYYY-MM-DD."
            )
        if end < start:
            raise forms.ValidationError(
                f"The end date {end.isoformat()} is before the start date "
                f"{start.isoformat()}. Enter an end date on or after the start date."
            )
        days = (end - start).days + 1
        if days > MAX_CUSTOM_DAYS:
            raise forms.ValidationError(
                f"A custom range can span at most {MAX_CUSTOM_DAYS} days, but this "
                f"one spans {days}. Enter a later start date or an earlier end date."
            )
        return cleaned


def read_options(request):
    """Return (form, range key, timezone name) from the query string.

    The timezone comes from ?tz=, else the cookie the page's script sets from
    the browser, else UTC. An invalid timezone falls back to UTC, and an
    invalid range or custom dates to the default range, while the valid
    choices are kept. The form carries the errors to show.
    """
    data = request.GET.copy()
    if not data.get("tz"):
        data["tz"] = urllib.parse.unquote(request.COOKIES.get(TIMEZONE_COOKIE, "UTC"))
    if data.get("start") or data.get("end"):
        # Dates typed into the form mean a custom range, whatever preset was on.
        data["range"] = "custom"
    if not data.get("range"):
        data["range"] = DEFAULT_RANGE
    form = RangeForm(data)
    if form.is_valid():
        return form, form.cleaned_data["range"], form.cleaned_data["tz"]

    tz = form.cleaned_data.get("tz", "UTC")
    range_key = form.cleaned_data.get("range", DEFAULT_RANGE)
    # Every error except the timezone's concerns the range (an unknown range,
    # an invalid date, or custom dates that cannot be shown).
    if set(form.errors) - {"tz"}:
        range_key = DEFAULT_RANGE
    return form, range_key, tz


def make_period(form, range_key, tz_name, now):
    """Return the Period to show; ends are on 15-minute boundaries."""
    tz = queries.get_timezone(tz_name)
    if range_key == "custom":
        start_day = form.cleaned_data["start"]
        end_day = form.cleaned_data["end"] + datetime.timedelta(days=1)
        start = datetime.datetime.combine(
            start_day, datetime.time(), tzinfo=tz
        ).astimezone(datetime.UTC)
        end = datetime.datetime.combine(end_day, datetime.time(), tzinfo=tz).astimezone(
            datetime.UTC
        )
        start, end = queries.align_range(start, end)
        return Period(start, end, tz, queries.granularity_for(start, end))
    end = queries.ceil_to_quarter(now)
    length = PRESETS[range_key]
    if length > datetime.timedelta(days=7):
        # Long presets start at a local midnight, so every bar is a whole day.
        first_day = now.astimezone(tz).date() - datetime.timedelta(days=length.days - 1)
        start = datetime.datetime.combine(
            first_day, datetime.time(), tzinfo=tz
        ).astimezone(datetime.UTC)
        start = queries.align_range(start, end)[0]
        return Period(start, end, tz, queries.Granularity.DAY)
    return Period(end - length, end, tz, queries.Granularity.HOUR)
