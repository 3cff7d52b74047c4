import krippendorff
import numpy as np
import pytest

from improvements.stats.agreement import (
    krippendorff_alpha_ordinal,
    krippendorff_alpha_ordinal_from_ratings,
    reliability_matrix,
    value_counts,
)

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units with missing values. Published: nominal 0.743, interval 0.849; ordinal 0.815 is the value
# the krippendorff package's own tests assert for this data.
PUBLISHED_EXAMPLE = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)


def test_published_example_is_the_one_in_the_paper():
    assert krippendorff.alpha(PUBLISHED_EXAMPLE, level_of_measurement="nominal") == (
        pytest.approx(0.743, abs=5e-4)
    )
    assert krippendorff.alpha(PUBLISHED_EXAMPLE, level_of_measurement="interval") == (
        pytest.approx(0.849, abs=5e-4)
    )


def test_ordinal_alpha_of_published_example():
    assert krippendorff_alpha_ordinal(PUBLISHED_EXAMPLE) == pytest.approx(0.815, abs=5e-4)


def test_ratings_rows_give_the_same_alpha_as_the_matrix():
    reviewer, unit = np.nonzero(~np.isnan(PUBLISHED_EXAMPLE))
    value = PUBLISHED_EXAMPLE[reviewer, unit]
    assert krippendorff_alpha_ordinal_from_ratings(unit * 7 + 100, value) == pytest.approx(
        krippendorff_alpha_ordinal(PUBLISHED_EXAMPLE), abs=1e-12
    )
    np.testing.assert_array_equal(reliability_matrix(reviewer, unit, value), PUBLISHED_EXAMPLE)


def test_value_counts_table():
    counts = value_counts([10, 10, 11, 12, 12, 12], [1, 5, 3, 3, 3, 4])
    np.testing.assert_array_equal(counts, [[1, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 2, 1, 0]])


def test_perfect_agreement_is_one():
    assert krippendorff_alpha_ordinal_from_ratings([0, 0, 1, 1, 2, 2], [1, 1, 3, 3, 5, 5]) == 1.0


def test_undefined_alpha_is_none_not_an_exception():
    assert krippendorff_alpha_ordinal([[1, nan], [nan, 2]]) is None  # nothing pairable
    assert krippendorff_alpha_ordinal([[3, 3], [3, 3]]) is None  # no variation
    assert krippendorff_alpha_ordinal([[3, 1], [3, nan]]) is None  # pairable values all equal
    assert krippendorff_alpha_ordinal_from_ratings([0, 1, 2], [1, 3, 5]) is None
    assert krippendorff_alpha_ordinal_from_ratings([0, 0, 1], [4, 4, 2]) is None
    assert krippendorff_alpha_ordinal_from_ratings([], []) is None


def test_ratings_outside_the_scale_are_rejected():
    with pytest.raises(ValueError):
        krippendorff_alpha_ordinal_from_ratings([0, 0], [3, 6])
    with pytest.raises(ValueError):
        krippendorff_alpha_ordinal_from_ratings([0, 0], [3, 2.5])


def test_noisy_ratings_agree_less_than_consistent_ones():
    rng = np.random.default_rng(0)
    unit = np.repeat(np.arange(300), 4)
    quality = rng.normal(3, 1, 300)[unit]
    consistent = np.clip(np.round(quality + rng.normal(0, 0.3, unit.size)), 1, 5)
    noisy = np.clip(np.round(quality + rng.normal(0, 1.5, unit.size)), 1, 5)
    high = krippendorff_alpha_ordinal_from_ratings(unit, consistent)
    low = krippendorff_alpha_ordinal_from_ratings(unit, noisy)
    assert high > 0.8 and 0 < low < 0.6
