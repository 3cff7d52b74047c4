"""Runtime and memory of the improver's numerics at the issue's scale, without the database.

Synthesises 1,000,000 ratings of one dimension (50,000 generations x 20 ratings each, 500
reviewers with offsets, 20 revisions) and times, each on its own:
  * corrected_means (reviewer-bias model), plain and with generation-clustered intervals,
  * ordinal Krippendorff's alpha from the same rows,
  * Bradley-Terry on 20,000 comparisons of the 20 revisions with 1,000 bootstrap resamples,
  * sequential_decision on 10,000 ratings per arm,
  * Spearman correlations of 10 metrics x 5 dimensions over 50,000 generations.
Prints each time and the process's peak RSS. Target (issue 6): corrected_means on 1M ratings
well under the 10 s budget of a whole analysis (aim: <= 2-3 s); exits 1 if above 3 s.

    .venv/bin/python benchmarks/stats_scale.py [--ratings 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from improvements.stats import (  # noqa: E402
    corrected_means,
    krippendorff_alpha_ordinal_from_ratings,
    metric_rating_correlations,
    sequential_decision,
)
from improvements.stats.bradley_terry import bradley_terry  # noqa: E402

CORRECTED_MEANS_TARGET_S = 3.0
N_REVISIONS = 20
N_REVIEWERS = 500
RATINGS_PER_GENERATION = 20


def timed(label: str, run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    print(f"{label:<58} {seconds:7.3f} s")
    return seconds, result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"peak RSS after imports {peak_rss_mb():.0f} MB")
    rng = np.random.default_rng(args.seed)
    n_generations = args.ratings // RATINGS_PER_GENERATION
    n = n_generations * RATINGS_PER_GENERATION
    quality = rng.normal(3.4, 0.3, N_REVISIONS)
    offset = rng.normal(0.0, 0.5, N_REVIEWERS)
    generation_revision = rng.integers(0, N_REVISIONS, n_generations)
    generation_quality = rng.normal(0.0, 0.5, n_generations)
    generation = np.repeat(np.arange(n_generations), RATINGS_PER_GENERATION)
    revision = generation_revision[generation]
    # Distinct reviewers per generation (one review per reviewer and generation): walk the
    # reviewer ring from a random start with a stride coprime to the number of reviewers.
    strides = np.array([s for s in range(1, N_REVIEWERS) if np.gcd(s, N_REVIEWERS) == 1])
    start = rng.integers(0, N_REVIEWERS, n_generations)
    stride = rng.choice(strides, n_generations)
    step = np.tile(np.arange(RATINGS_PER_GENERATION), n_generations)
    reviewer = (start[generation] + step * stride[generation]) % N_REVIEWERS
    latent = quality[revision] + offset[reviewer] + generation_quality[generation]
    value = np.clip(np.round(latent + rng.normal(0.0, 0.8, n)), 1, 5)
    print(
        f"{n:,} ratings, {n_generations:,} generations, {N_REVIEWERS} reviewers, "
        f"{N_REVISIONS} revisions; peak RSS after generating data {peak_rss_mb():.0f} MB"
    )

    seconds, _ = timed(
        "corrected_means (1 dimension)",
        lambda: corrected_means(revision, reviewer, value, n_revisions=N_REVISIONS),
    )
    timed(
        "corrected_means with generation-clustered intervals",
        lambda: corrected_means(
            revision, reviewer, value, n_revisions=N_REVISIONS, generation=generation
        ),
    )
    timed(
        "krippendorff_alpha_ordinal_from_ratings",
        lambda: krippendorff_alpha_ordinal_from_ratings(generation, value),
    )
    first = rng.integers(0, N_REVISIONS, 20_000)
    second = (first + rng.integers(1, N_REVISIONS, first.size)) % N_REVISIONS
    first_wins = rng.random(first.size) < 1 / (1 + np.exp(quality[second] - quality[first]))
    timed(
        "bradley_terry (20 items, 20,000 comparisons, B=1000)",
        lambda: bradley_terry(
            N_REVISIONS,
            np.where(first_wins, first, second),
            np.where(first_wins, second, first),
            n_bootstrap=1000,
        ),
    )
    timed(
        "sequential_decision (10,000 ratings per arm)",
        lambda: sequential_decision(value[:10_000], value[10_000:20_000]),
    )
    per_generation = np.bincount(generation, value) / RATINGS_PER_GENERATION
    metrics = {
        f"metric_{i}": per_generation + rng.normal(0, 1 + i, n_generations) for i in range(10)
    }
    dimensions = {f"dim_{i}": per_generation + rng.normal(0, 0.5, n_generations) for i in range(5)}
    timed(
        "metric_rating_correlations (10 metrics x 5 dimensions)",
        lambda: metric_rating_correlations(metrics, dimensions),
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    if seconds > CORRECTED_MEANS_TARGET_S:
        print(f"corrected_means took {seconds:.2f} s > {CORRECTED_MEANS_TARGET_S} s target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
