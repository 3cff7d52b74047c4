import numpy as np
import pytest

from improvements.stats import bias
from improvements.stats.bias import corrected_means


def _unbalanced_panel(
    rng, *, n_revisions=6, n_reviewers=40, n_ratings=1500, gen_sd=0.0, ratings_per_generation=1
):
    """Reviewers mostly rate their two 'favourite' revisions, so raw means are biased."""
    mu = rng.normal(3.5, 0.4, n_revisions)
    offset = rng.normal(0.0, 0.5, n_reviewers)
    favourites = rng.integers(0, n_revisions, (n_reviewers, 2))
    n_generations = n_ratings // ratings_per_generation
    generation_revision = rng.integers(0, n_revisions, n_generations)
    generation = np.repeat(np.arange(n_generations), ratings_per_generation)
    revision = generation_revision[generation]
    # 70% of ratings come from a reviewer who favours that revision (when one exists).
    likes = (favourites[None, :, 0] == revision[:, None]) | (
        favourites[None, :, 1] == revision[:, None]
    )
    score = (
        rng.random(likes.shape)
        + np.where(likes, 1.0, 0.0) * (rng.random(revision.size) < 0.7)[:, None]
    )
    reviewer = np.argmax(score, axis=1)
    value = (
        mu[revision]
        + offset[reviewer]
        + rng.normal(0.0, gen_sd, n_generations)[generation]
        + rng.normal(0.0, 0.8, revision.size)
    )
    used = np.bincount(reviewer, minlength=n_reviewers) > 0
    # The estimand: each revision's mean from the average reviewer of this panel.
    truth = mu + offset[used].mean()
    return revision, reviewer, value, generation, truth, offset


def _dense_ridge(revision, reviewer, value, n_revisions, n_reviewers, shrinkage):
    design = np.zeros((value.size + n_reviewers, n_revisions + n_reviewers))
    design[np.arange(value.size), revision] = 1.0
    design[np.arange(value.size), n_revisions + reviewer] = 1.0
    design[value.size + np.arange(n_reviewers), n_revisions + np.arange(n_reviewers)] = np.sqrt(
        shrinkage
    )
    target = np.concatenate([value, np.zeros(n_reviewers)])
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return solution[:n_revisions], solution[n_revisions:]


def test_corrected_means_equal_dense_ridge_least_squares():
    rng = np.random.default_rng(1)
    revision, reviewer, value, *_ = _unbalanced_panel(rng, n_ratings=300, n_reviewers=12)
    result = corrected_means(revision, reviewer, value, n_revisions=6, shrinkage=2.0)
    mu, offset = _dense_ridge(revision, reviewer, value, 6, 12, 2.0)
    np.testing.assert_allclose(result.mean, mu, atol=1e-9)
    np.testing.assert_allclose(result.reviewer_offset, offset, atol=1e-9)


def test_offsets_sum_to_zero_and_recover_true_reviewer_bias():
    rng = np.random.default_rng(2)
    revision, reviewer, value, _, truth, offset = _unbalanced_panel(rng, n_ratings=20_000)
    result = corrected_means(revision, reviewer, value)
    assert result.reviewer_offset.sum() == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(result.reviewer_offset, offset - offset.mean(), atol=0.1)
    np.testing.assert_allclose(result.mean, truth, atol=0.05)


def test_residuals_are_what_the_model_leaves_and_sum_to_zero_within_each_revision():
    rng = np.random.default_rng(3)
    revision, reviewer, value, *_ = _unbalanced_panel(rng, n_ratings=400, n_reviewers=12)
    result = corrected_means(revision, reviewer, value, n_revisions=6)
    residual = result.residuals(revision, reviewer, value)
    np.testing.assert_allclose(
        residual, value - result.mean[revision] - result.reviewer_offset[reviewer]
    )
    # The revision means are unpenalised: their normal equations make each revision's sum 0.
    np.testing.assert_allclose(np.bincount(revision, weights=residual), 0.0, atol=1e-9)
    assert residual.std() == pytest.approx(0.8, abs=0.1)  # the simulated rating noise


def test_correction_removes_bias_that_raw_means_keep():
    # Both revisions are equally good; revision 0 was mostly rated by harsh reviewers.
    rng = np.random.default_rng(3)
    n = 4000
    revision = rng.integers(0, 2, n)
    harsh = rng.random(n) < np.where(revision == 0, 0.8, 0.2)
    reviewer = np.where(harsh, rng.integers(0, 10, n), rng.integers(10, 20, n))
    value = 3.0 + np.where(reviewer < 10, -1.0, 1.0) + rng.normal(0, 0.5, n)
    result = corrected_means(revision, reviewer, value)
    assert result.raw_mean[1] - result.raw_mean[0] > 1.0
    assert abs(result.mean[1] - result.mean[0]) < 0.05
    assert result.ci_low[0] < 3.0 < result.ci_high[0]
    assert result.ci_low[1] < 3.0 < result.ci_high[1]


def test_intervals_cover_the_truth_about_95_percent_in_simulation():
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(200):
        revision, reviewer, value, _, truth, _ = _unbalanced_panel(rng)
        result = corrected_means(revision, reviewer, value, n_revisions=truth.size)
        rated = result.n > 0
        hits.append(((result.ci_low <= truth) & (truth <= result.ci_high))[rated])
    coverage = np.concatenate(hits).mean()
    assert 0.92 <= coverage <= 0.98, coverage


def test_generation_clusters_restore_coverage_when_ratings_share_a_video():
    rng = np.random.default_rng(5)
    plain, clustered = [], []
    for _ in range(150):
        revision, reviewer, value, generation, truth, _ = _unbalanced_panel(
            rng, gen_sd=0.5, ratings_per_generation=5
        )
        for out, gen in ((plain, None), (clustered, generation)):
            r = corrected_means(revision, reviewer, value, n_revisions=truth.size, generation=gen)
            out.append(((r.ci_low <= truth) & (truth <= r.ci_high))[r.n > 0])
    assert np.concatenate(plain).mean() < 0.88
    assert 0.92 <= np.concatenate(clustered).mean() <= 0.99


def test_sparse_design_edge_cases_are_handled():
    # revision 0: well rated; revision 1: a single rating; revision 2: no ratings;
    # reviewer 3 rated only once, reviewer 4 rated only revision 0, reviewer 5 never rated.
    revision = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    reviewer = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 4])
    value = np.array([4, 3, 5, 4, 2, 5, 5, 3, 4, 1, 2, 3], dtype=float)
    result = corrected_means(revision, reviewer, value, n_revisions=3, n_reviewers=6)
    assert result.n.tolist() == [11, 1, 0]
    assert result.n_reviewers.tolist() == [5, 1, 0]
    assert np.isfinite(result.mean[:2]).all() and np.isnan(result.mean[2])
    assert np.isfinite(result.ci_low[:2]).all() and np.isfinite(result.ci_high[:2]).all()
    assert result.ci_high[1] - result.ci_low[1] > result.ci_high[0] - result.ci_low[0]
    assert result.reviewer_offset[5] == 0.0
    assert [row["revision"] for row in result.revision_rows()] == [0, 1]
    assert result.revision_rows()[1]["n"] == 1


def test_without_residual_degrees_of_freedom_means_come_without_intervals():
    result = corrected_means([0, 1], [0, 1], [2.0, 4.0])
    assert result.mean.tolist() == pytest.approx([2.0, 4.0], abs=1e-6)
    assert np.isnan(result.ci_low).all()
    rows = result.revision_rows()
    assert rows[0]["ci_low"] is None and rows[0]["mean"] == pytest.approx(2.0, abs=1e-6)


def test_sorting_and_bincount_cell_paths_agree(monkeypatch):
    rng = np.random.default_rng(6)
    revision, reviewer, value, generation, *_ = _unbalanced_panel(
        rng, n_ratings=500, gen_sd=0.3, ratings_per_generation=5
    )
    by_bincount = corrected_means(revision, reviewer, value, generation=generation)
    monkeypatch.setattr(bias, "_DENSE_CELL_LIMIT", 10)
    by_sorting = corrected_means(revision, reviewer, value, generation=generation)
    np.testing.assert_allclose(by_sorting.mean, by_bincount.mean, atol=1e-12)
    np.testing.assert_allclose(by_sorting.ci_high, by_bincount.ci_high, atol=1e-12)


def test_empty_input_gives_empty_result():
    result = corrected_means(
        np.array([], int), np.array([], int), np.array([]), n_revisions=2, n_reviewers=3
    )
    assert np.isnan(result.mean).all() and result.revision_rows() == []


@pytest.mark.parametrize(
    ("revision", "reviewer", "value"),
    [
        ([0, -1], [0, 1], [1.0, 2.0]),
        ([0, 1], [0], [1.0, 2.0]),
        ([0.5], [0], [1.0]),
        ([0], [0], [np.nan]),
    ],
)
def test_invalid_input_is_rejected(revision, reviewer, value):
    with pytest.raises(ValueError):
        corrected_means(revision, reviewer, value)


def test_revision_seen_only_by_its_own_reviewers_falls_back_to_the_raw_mean():
    rng = np.random.default_rng(7)
    revision, reviewer, value, *_ = _unbalanced_panel(rng, n_ratings=600)
    # Revision 6 is rated only by two new reviewers who rated nothing else.
    island = np.array([4.0, 5.0, 4.0, 3.0, 4.0, 5.0, 4.0, 4.0])
    revision = np.concatenate([revision, np.full(8, 6)])
    reviewer = np.concatenate([reviewer, np.array([40, 41] * 4)])
    value = np.concatenate([value, island])
    result = corrected_means(revision, reviewer, value)
    assert result.mean[6] == pytest.approx(island.mean(), abs=0.01)
    # Their offsets are only identified relative to each other, so they sum to zero there:
    # reviewer 40 gave 4, 4, 4, 4 and reviewer 41 gave 5, 3, 5, 4 (0.25 higher on average).
    assert result.reviewer_offset[40] + result.reviewer_offset[41] == pytest.approx(0, abs=1e-9)
    assert result.reviewer_offset[41] - result.reviewer_offset[40] == pytest.approx(0.25, abs=0.01)
    assert result.std_error[6] == pytest.approx(result.residual_sd / np.sqrt(8), rel=0.3)
