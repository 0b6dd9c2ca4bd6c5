from decimal import Decimal

from workspace import pricing
from workspace.models import ProviderModel, Vendor


def test_lookup_converts_per_token_to_per_million_exactly():
    price = pricing.lookup("gpt-4o-mini", Vendor.OPENAI)

    assert price.input_price == Decimal("0.15")
    assert price.cached_input_price == Decimal("0.075")
    assert price.output_price == Decimal("0.6")
    assert price.cache_write_price is None


def test_lookup_reads_anthropic_cache_write_price():
    price = pricing.lookup("claude-haiku-4-5", Vendor.ANTHROPIC)

    assert price.input_price == Decimal("1")
    assert price.cache_write_price == Decimal("1.25")


def test_lookup_prefers_azure_entry_for_azure_vendor():
    price = pricing.lookup("gpt-4o", Vendor.AZURE_OPENAI)

    assert price.catalogue_name == "azure/gpt-4o"


def test_lookup_returns_none_for_unknown_model():
    assert pricing.lookup("Qwen/Qwen2.5-7B-Instruct", Vendor.OPENAI_COMPATIBLE) is None


def test_fill_missing_prices_keeps_prices_entered_by_hand():
    model = ProviderModel(name="gpt-4o", input_price=Decimal("2"))

    assert pricing.fill_missing_prices(model, Vendor.OPENAI) is None

    assert model.input_price == Decimal("2")
    assert model.output_price is None


def test_catalogue_prices_fit_stored_decimal_places():
    # ProviderModel stores 6 decimal places; a finer catalogue price would
    # be rounded on save, so the bundled file must not contain one.
    places = Decimal("0.000001")

    for name in pricing.catalogue_names():
        price = pricing.lookup(name)
        for field in pricing.PRICE_FIELDS:
            value = getattr(price, field)
            assert value is None or value == value.quantize(places), (name, field)
