"""The arithmetic of the reports: growth, rates, averages, commitment progress."""

from __future__ import annotations

from datetime import date

import pytest
from tpp_reporting.api.pages import share
from tpp_reporting.domain import average, commitment_progress, growth, rate


@pytest.mark.parametrize(
    ("current", "base", "expected"),
    [
        (55, 48, 14.6),  # the review's own example: 48 held, 55 planned next year
        (48, 55, -12.7),
        (10, 10, 0.0),
        (0, 12, -100.0),
        (1, 3, -66.7),  # rounded to one decimal
        (5, 3, 66.7),
    ],
)
def test_growth_is_the_percentage_change_rounded_to_one_decimal(
    current: int, base: int, expected: float
) -> None:
    assert growth(current, base) == expected


def test_growth_from_a_zero_or_unknown_base_year_is_not_a_number_but_none() -> None:
    assert growth(5, 0) is None
    assert growth(0, 0) is None
    assert growth(5, None) is None
    assert growth(None, 5) is None


def test_rates_and_averages_of_nothing_are_none_not_a_division_error() -> None:
    assert rate(3, 0) is None
    assert rate(0, None) is None
    assert rate(2, 3) == 0.667
    assert rate(30, 30) == 1.0
    assert average(None, 0) is None
    assert average(13, 3) == 4.33


def test_commitment_half_way_through_with_a_third_done_needs_the_rest_spread_over_years_left() -> (
    None
):
    progress = commitment_progress(
        target=500_000, achieved=150_000, start_year=2016, end_year=2020, today=date(2018, 7, 2)
    )
    assert progress.share_achieved == 0.3
    assert progress.share_of_time_elapsed == pytest.approx(0.5, abs=0.01)
    assert progress.remaining == 350_000
    assert progress.years_left == 3  # 2018 (still running), 2019, 2020
    assert progress.yearly_pace_needed == pytest.approx(116_666.7)
    assert progress.on_track is False


def test_commitment_before_it_starts_and_after_it_ends() -> None:
    before = commitment_progress(
        target=1000, achieved=0, start_year=2030, end_year=2034, today=date(2026, 1, 1)
    )
    assert before.share_of_time_elapsed == 0.0
    assert before.years_left == 5
    assert before.yearly_pace_needed == 200.0
    after = commitment_progress(
        target=1000, achieved=900, start_year=2016, end_year=2020, today=date(2026, 1, 1)
    )
    assert after.share_of_time_elapsed == 1.0
    assert after.years_left == 0
    assert after.yearly_pace_needed is None
    assert after.on_track is False
    met = commitment_progress(
        target=1000, achieved=1200, start_year=2016, end_year=2020, today=date(2017, 1, 1)
    )
    assert met.remaining == 0
    assert met.yearly_pace_needed == 0.0
    assert met.on_track is True


def test_small_progress_toward_a_commitment_is_not_rounded_away() -> None:
    progress = commitment_progress(
        target=500_000, achieved=20, start_year=2016, end_year=2020, today=date(2016, 3, 1)
    )
    assert progress.share_achieved == 0.00004  # a fraction, not 0.0
    assert share(progress.share_achieved) == "0.004%"
    assert share(0.3) == "30.0%"
    assert share(0.0) == "0%"
    assert share(1 / 120_000) == "0.00083%"
    assert share(1 / 1_000_000_000) == "< 0.0001%"
    assert share(None) == "n/a"
