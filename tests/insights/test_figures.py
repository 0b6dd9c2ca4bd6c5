from decimal import Decimal

import pytest

from insights.reports import Figure
from insights.templatetags.insights_format import change, usd


def test_error_rate_change_is_in_percentage_points():
    error_rate = Figure("Error rate", 0.020, 0.016, kind="percent")

    assert change(error_rate) == "+0.4 pp"


def test_error_rate_change_from_zero_is_shown():
    error_rate = Figure("Error rate", 0.01, 0.0, kind="percent")

    assert change(error_rate) == "+1.0 pp"


def test_count_change_stays_relative():
    requests = Figure("Requests", 1200, 1000)

    assert change(requests) == "+20.0 %"


def test_cost_change_stays_relative():
    cost = Figure("Cost", Decimal("0.9"), Decimal("1.2"), kind="cost")

    assert change(cost) == "−25.0 %"


def test_change_rounding_to_zero_has_no_sign():
    error_rate = Figure("Error rate", 0.10001, 0.10002, kind="percent")

    assert change(error_rate) == "0.0 pp"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0.000003", "$0.000003"),
        ("0.0032408", "$0.00324"),
        ("0.00003975", "$0.0000398"),
        ("0.009999", "$0.01"),
        ("0.24", "$0.24"),
        ("1234.5", "$1,234.50"),
        ("0", "$0.00"),
        (None, "unknown"),
    ],
)
def test_usd_keeps_three_digits_under_a_cent(amount, shown):
    value = None if amount is None else Decimal(amount)

    assert usd(value) == shown
