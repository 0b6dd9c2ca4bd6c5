"""Number formatting for the insights pages: dashes for missing values."""

from decimal import Decimal

from django import template

register = template.Library()

DASH = "—"


@register.filter
def count(value):
    if value is None:
        return DASH
    return f"{int(value):,}"


# Amounts under a cent show this many significant digits, so 3 millionths of
# a dollar read $0.000003 and never round to $0.00.
TINY_USD_DIGITS = 3


@register.filter
def usd(value):
    """Format USD; tiny amounts keep 3 significant digits, None is unknown."""
    if value is None:
        return "unknown"
    value = Decimal(value)
    if value == 0:
        return "$0.00"
    if abs(value) < Decimal("0.01"):
        exponent = value.adjusted() - TINY_USD_DIGITS + 1
        rounded = value.quantize(Decimal(1).scaleb(exponent))
        return f"${rounded.normalize():f}"
    return f"${value:,.2f}"


@register.filter
def percent(value):
    if value is None:
        return DASH
    return f"{float(value) * 100:.1f} %"


@register.filter
def ms(value):
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.0f} ms"


@register.filter
def change(item):
    """Format a Figure's change: +12.3 % / −4.0 %, or +0.4 pp for rates, or a dash."""
    value = item.change
    if value is None:
        return DASH
    unit = "pp" if item.kind == "percent" else "%"
    magnitude = f"{abs(value) * 100:.1f}"
    if float(magnitude) == 0:
        # A change that rounds to zero gets no sign: "−0.0 pp" reads as a fall.
        return f"0.0 {unit}"
    sign = "+" if value > 0 else "−"
    return f"{sign}{magnitude} {unit}"


@register.filter
def figure(item):
    """Format a reports.Figure value by its kind."""
    formatters = {"count": count, "cost": usd, "percent": percent, "ms": ms}
    return formatters[item.kind](item.value)


@register.filter
def change_class(item):
    if item.change is None or item.change == 0:
        return "flat"
    worse = (item.change > 0) == item.rise_is_bad
    return "worse" if worse else "better"
