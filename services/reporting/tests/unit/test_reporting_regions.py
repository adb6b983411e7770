"""Countries map to their UN M49 regions."""

from __future__ import annotations

from tpp_reporting import regions


def test_countries_map_to_m49_regions_and_subregions() -> None:
    assert regions.region("KE") == "Africa"
    assert regions.subregion("KE") == "Eastern Africa"
    assert regions.region("BR") == "Americas"
    assert regions.region("LA") == "Asia"
    assert regions.region("FJ") == "Oceania"
    assert regions.region("ZZ") == regions.UNKNOWN


def test_a_region_lists_its_countries_and_names_read_well() -> None:
    africa = regions.countries_in("africa")
    assert {"KE", "NG", "EG", "ZA"} <= set(africa)
    assert "CN" not in africa
    assert "KE" in regions.countries_in("Eastern Africa")
    assert regions.countries_in("Atlantis") == []
    assert regions.country_name("KE") == "Kenya"
    assert regions.country_name("LA") == "Lao People's Democratic Republic" or "Lao"
