"""Countries and their UN M49 world regions (from country_converter and pycountry)."""

from __future__ import annotations

import functools
import logging
import warnings

import pycountry

UNKNOWN = "Unknown"
# country_converter's continents are M49 regions, except that it joins the Americas.
_M49_REGION = {"America": "Americas"}


@functools.cache
def _table() -> dict[str, tuple[str, str]]:
    """ISO alpha-2 → (M49 region, M49 sub-region), loaded once (the converter is slow)."""
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # pandas deprecation notices from inside the library are not ours to fix.
        warnings.simplefilter("ignore")
        import country_converter as coco  # type: ignore[import-untyped]  # ships no hints

        data = coco.CountryConverter().data
    table: dict[str, tuple[str, str]] = {}
    for iso2, continent, subregion in zip(
        data["ISO2"], data["continent"], data["UNregion"], strict=True
    ):
        if isinstance(iso2, str) and isinstance(continent, str):
            sub = subregion if isinstance(subregion, str) else UNKNOWN
            table[iso2] = (_M49_REGION.get(continent, continent), sub)
    return table


def region(country: str) -> str:
    """The UN M49 region of an ISO 3166-1 alpha-2 code (``KE`` → ``Africa``)."""
    return _table().get(country, (UNKNOWN, UNKNOWN))[0]


def subregion(country: str) -> str:
    """The UN M49 sub-region of an ISO 3166-1 alpha-2 code (``KE`` → ``Eastern Africa``)."""
    return _table().get(country, (UNKNOWN, UNKNOWN))[1]


def countries_in(region_name: str) -> list[str]:
    """Every alpha-2 code in an M49 region or sub-region (case-insensitive)."""
    wanted = region_name.casefold()
    return sorted(
        code
        for code, (reg, sub) in _table().items()
        if reg.casefold() == wanted or sub.casefold() == wanted
    )


def known_regions() -> list[str]:
    """The M49 regions and sub-regions countries map to."""
    names = {name for pair in _table().values() for name in pair if name != UNKNOWN}
    return sorted(names)


@functools.cache
def country_name(code: str) -> str:
    """A country's common English name (``KE`` → ``Kenya``); the code when unknown."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return str(getattr(country, "common_name", None) or country.name)


def preload() -> None:
    """Load the country tables now (a second or so), not in the first request for them."""
    _table()
    for code in _table():
        country_name(code)
