"""Model prices from the bundled LiteLLM price catalogue.

The catalogue (workspace/data/litellm_model_prices_major_providers.json,
MIT, see workspace/data/README.md) gives USD per single token. Providers
store USD per million tokens, so each price is multiplied by 1,000,000.
The file is parsed with Decimal so the conversion is exact: "2.5e-06"
becomes Decimal("2.5"), never a binary float.
"""

import dataclasses
import functools
import json
from decimal import Decimal
from pathlib import Path

from workspace.models import Vendor

CATALOGUE_PATH = (
    Path(__file__).resolve().parent
    / "data"
    / "litellm_model_prices_major_providers.json"
)
TOKENS_PER_MILLION = Decimal(1_000_000)

# Catalogue names are bare model ids for OpenAI and Anthropic; Azure OpenAI
# entries carry an "azure/" prefix. The bare id is the fallback for every
# vendor, because Azure deployments are often named after the model.
_NAME_PREFIXES = {
    Vendor.AZURE_OPENAI: ("azure/", ""),
}


@dataclasses.dataclass(frozen=True)
class ModelPrice:
    """Prices in USD per million tokens; None where the catalogue has none."""

    catalogue_name: str
    input_price: Decimal | None
    cached_input_price: Decimal | None
    output_price: Decimal | None
    cache_write_price: Decimal | None


@functools.cache
def _catalogue():
    with CATALOGUE_PATH.open(encoding="utf-8") as file:
        return json.load(file, parse_float=Decimal)


def _per_million(value):
    if value is None:
        return None
    return Decimal(value) * TOKENS_PER_MILLION


def catalogue_names():
    """Return every model id in the catalogue that has an input price."""
    return [
        name
        for name, entry in _catalogue().items()
        if isinstance(entry, dict) and "input_cost_per_token" in entry
    ]


def lookup(model_name, vendor=None):
    """Return the ModelPrice for a model id, or None if the catalogue lacks it."""
    catalogue = _catalogue()
    for prefix in _NAME_PREFIXES.get(vendor, ("",)):
        entry = catalogue.get(prefix + model_name.strip())
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return ModelPrice(
                catalogue_name=prefix + model_name.strip(),
                input_price=_per_million(entry.get("input_cost_per_token")),
                cached_input_price=_per_million(
                    entry.get("cache_read_input_token_cost")
                ),
                output_price=_per_million(entry.get("output_cost_per_token")),
                cache_write_price=_per_million(
                    entry.get("cache_creation_input_token_cost")
                ),
            )
    return None


PRICE_FIELDS = (
    "input_price",
    "cached_input_price",
    "output_price",
    "cache_write_price",
)


def fill_missing_prices(provider_model, vendor):
    """Set the catalogue's prices on a model that was given none.

    A model with at least one price entered by hand is left alone, so a
    deliberate partial price list is never mixed with catalogue values.
    Returns the ModelPrice used, or None.
    """
    if any(getattr(provider_model, field) is not None for field in PRICE_FIELDS):
        return None
    price = lookup(provider_model.name, vendor)
    if price is None:
        return None
    for field in PRICE_FIELDS:
        setattr(provider_model, field, getattr(price, field))
    return price
