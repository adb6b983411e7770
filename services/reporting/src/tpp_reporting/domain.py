"""The arithmetic of the reports, as pure functions: growth, rates, commitment progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


def growth(current: int | float | None, base: int | float | None) -> float | None:
    """Percentage change from ``base`` to ``current``, one decimal (48 → 55 is 14.6).

    ``None`` ("n/a") when either is unknown or the base is zero: growth from nothing has no
    percentage.
    """
    if current is None or base is None or base == 0:
        return None
    return round((current - base) * 100 / base, 1)


def rate(part: int, whole: int | None, *, digits: int = 3) -> float | None:
    """``part / whole`` rounded, or ``None`` when there is no whole to divide by."""
    if not whole:
        return None
    return round(part / whole, digits)


def average(total: int | float | None, count: int, *, digits: int = 2) -> float | None:
    """The mean of ``count`` values summing to ``total``, or ``None`` for no values."""
    if not count or total is None:
        return None
    return round(total / count, digits)


def significant(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits: a small share keeps its size (20 of
    500,000 is 0.00004, not 0.0)."""
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a multi-year commitment stands on a given day (shares are fractions, 0-1)."""

    achieved: int
    share_achieved: float
    share_of_time_elapsed: float
    remaining: int
    years_left: int
    yearly_pace_needed: float | None
    on_track: bool


def commitment_progress(
    *, target: int, achieved: int, start_year: int, end_year: int, today: date
) -> Progress:
    """Progress toward ``target`` over the years ``start_year``..``end_year`` (inclusive).

    Time elapsed runs from 1 January of the first year to 31 December of the last. The
    yearly pace still needed spreads what remains over the years left, counting the current
    year while it is in the period; once the period is over no pace can help (``None``).
    """
    start, end = date(start_year, 1, 1), date(end_year, 12, 31)
    total_days = (end - start).days + 1
    elapsed_days = min(max((today - start).days, 0), total_days)
    elapsed = round(elapsed_days / total_days, 3)
    remaining = max(target - achieved, 0)
    if today > end:
        years_left = 0
    elif today < start:
        years_left = end_year - start_year + 1
    else:
        years_left = end_year - today.year + 1
    pace = round(remaining / years_left, 1) if years_left else None
    if remaining == 0:
        pace = 0.0
    share = significant(achieved / target) if target else 1.0
    return Progress(
        achieved=achieved,
        share_achieved=share,
        share_of_time_elapsed=elapsed,
        remaining=remaining,
        years_left=years_left,
        yearly_pace_needed=pace,
        on_track=share >= elapsed,
    )
