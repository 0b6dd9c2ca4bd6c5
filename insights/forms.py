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
TIMEZONE_COOKIE = "aiw_tz"


def timezone_choices():
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class RangeForm(forms.Form):
    range = forms.ChoiceField(choices=RANGE_CHOICES, required=False)
    start = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Start date: enter a date as YYYY-MM-DD."},
    )
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "End date: enter a date as YYYY-MM-DD."},
    )
    tz = forms.CharField(required=False, label="Timezone", max_length=64)

    def clean_tz(self):
        name = self.cleaned_data.get("tz") or "UTC"
        try:
            queries.get_timezone(name)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return name

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("range") != "custom":
            return cleaned
        if "start" in self.errors or "end" in self.errors:
            # The invalid date has its own message; a second one would confuse.
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            raise forms.ValidationError("A custom range needs a start and an end date.")
        if end < start:
            raise forms.ValidationError("The end date is before the start date.")
        if (end - start).days + 1 > MAX_CUSTOM_DAYS:
            raise forms.ValidationError(
                f"A custom range can span at most {MAX_CUSTOM_DAYS} days."
            )
        return cleaned


def read_options(request):
    """Return (form, range key, timezone name) from the query string.

    The timezone comes from ?tz=, else the cookie the page's script sets from
    the browser, else UTC. Invalid input falls back to the defaults and the
    form carries the errors to show.
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
    tz = form.cleaned_data.get("tz") if "tz" not in form.errors else "UTC"
    return form, DEFAULT_RANGE, tz or "UTC"


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
