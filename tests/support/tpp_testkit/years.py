"""Program years handed out one per test, so that each test's report figures are its own."""

from __future__ import annotations

#: Fixed years some tests use for sessions whose figures they do not check (2031, 2032):
#: never handed out, so no report a test checks counts them.
_FIXED_YEARS = frozenset({2031, 2032})
_taken_years: set[int] = set(_FIXED_YEARS)


def fresh_year(*, neighbours: bool = True) -> int:
    """A program year no other test of this run uses (the year's figures are the test's).

    With ``neighbours`` (tests that check reports, which compare a year with the one before)
    the years either side are reserved too, drawn first from 2001-2069; without (tests that
    only need their own rows, e.g. the registry's) the year alone, drawn first from 2070-2098,
    so that the two kinds do not fragment each other's years. Year 2100 is left to the
    operations tests, which use it as a fixed year. Fails, never loops, when none is left.
    """
    first, then = (range(2001, 2070), range(2070, 2099))
    if not neighbours:
        first, then = then, first
    for band in (first, then):
        free = [year for year in band if not (_span(year) if neighbours else {year}) & _taken_years]
        if free:
            year = free[0]  # first fit: packs the years (every run has its own databases)
            _taken_years.update(_span(year) if neighbours else {year})
            return year
    raise RuntimeError(f"no program year left for another test ({len(_taken_years)} taken)")


def _span(year: int) -> set[int]:
    return {year - 1, year, year + 1}
