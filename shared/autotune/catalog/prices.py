"""The price per 1M training tokens a cost estimate uses, and where it came from.

Two places may hold one: the catalog (models.toml: Google's price with the page it was read on
and the date), and the `[prices]` table of deploy/config.toml (AUTOTUNE_PRICES in a function),
which supplies a price the catalog lacks (a new model) or overrides it (a negotiated rate).
Neither holds a guess: without either, the estimate says the price is unknown and how to set it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from autotune.catalog.catalog import Catalog, ModelSpec

PRICE_FACT = "price_per_million_training_tokens"
CONFIG_TABLE = "prices"
PRICES_VAR = "AUTOTUNE_PRICES"
CONFIG_PLACE = "deploy/config.toml [prices]"
PRICING_PAGE = "https://cloud.google.com/vertex-ai/generative-ai/pricing"


class PriceError(ValueError):
    """A configured price that cannot be used; the message names the key and the problem."""


class TrainingPrice(msgspec.Struct, frozen=True, kw_only=True):
    usd_per_million: float
    source: str  # "catalog" or "config"
    url: str | None = None  # the page the catalog's price was read on
    read_on: str | None = None
    note: str = ""


def training_price(
    name: str, model: ModelSpec | None, catalog: Catalog | None, configured: Mapping[str, float]
) -> TrainingPrice | None:
    """The configured price for `name` if there is one, else the catalog's, else None."""
    if name in configured:
        return TrainingPrice(usd_per_million=float(configured[name]), source="config")
    if model is None or model.price_per_million_training_tokens is None:
        return None
    source = (
        catalog.sources.get(model.sources.get(PRICE_FACT, model.source))
        if catalog is not None
        else None
    )
    return TrainingPrice(
        usd_per_million=model.price_per_million_training_tokens,
        source="catalog",
        url=source.url if source is not None else None,
        read_on=model.price_read_on or (source.read_on if source is not None else None),
        note=model.price_note,
    )


def how_to_set(name: str) -> str:
    return (
        f'price unknown; set [prices] in deploy/config.toml: "{name}" = <USD per 1M training tokens> '
        f"(Google's rates: {PRICING_PAGE})"
    )


def parse_prices(table: object) -> dict[str, float]:
    """The `[prices]` table: model name -> US dollars per 1M training tokens. Raises PriceError."""
    if not isinstance(table, Mapping):
        raise PriceError(
            f"[{CONFIG_TABLE}] must be a table of model = price (USD per 1M training tokens), "
            f"not a {type(table).__name__}"
        )
    out: dict[str, float] = {}
    for name, value in table.items():
        where = f'[{CONFIG_TABLE}] "{name}"'
        if not name or any(ch in name for ch in ",= \t") or not name.isprintable():
            raise PriceError(f"{where}: not a model name (no spaces, commas or '=' allowed)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PriceError(
                f"{where}: {value!r} is not a number; give US dollars per 1M training tokens, "
                "such as 2.5"
            )
        if not math.isfinite(value) or value < 0:
            raise PriceError(
                f"{where}: {value!r} is not a price (it must be a finite number, 0 or more)"
            )
        out[name] = float(value)
    return out


def parse_prices_env(text: str) -> dict[str, float]:
    """AUTOTUNE_PRICES: `model=price,model=price` (what format_prices writes)."""
    table: dict[str, object] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise PriceError(f"{PRICES_VAR}: {item!r} is not model=price")
        try:
            table[name.strip()] = float(value)
        except ValueError:
            table[name.strip()] = value.strip()
    return parse_prices(table)


def format_prices(prices: Mapping[str, float]) -> str:
    return ",".join(f"{name}={float(value)!r}" for name, value in sorted(prices.items()))
