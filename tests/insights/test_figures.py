from decimal import Decimal

from insights.reports import Figure
from insights.templatetags.insights_format import change


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
