"""One whole analysis (improvements.analysis.analysis_compute) at the issue's scale.

Creates a fresh database (an SQLite file in a temporary folder; DATABASE_URL if set), migrates
it and bulk-loads 1,000,000 ratings: 20 revisions, 50,000 generations, 500 reviewers, each
generation reviewed by 4 reviewers on the 5 dimensions (200,000 reviews), plus issue reports,
20,000 blind comparisons and 5 server metrics per generation. Loading time is printed apart and
is not part of the target. The analysis then runs in a fresh process, so its peak RSS is its
own and not the loader's.

Target (issue 6): the analysis in <= 10 s and <= 1 GB peak RSS; exits 1 if either is missed.

    .venv/bin/python benchmarks/improver_scale.py [--generations 50000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIME_TARGET_S = 10.0
RSS_TARGET_MB = 1024.0
N_REVISIONS = 20
N_REVIEWERS = 500
REVIEWS_PER_GENERATION = 4
N_COMPARISONS = 20_000
BATCH = 20_000


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackloop.settings")
    import django

    django.setup()


def load(n_generations: int, seed: int) -> None:
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone
    from generation.params import DEFAULT_PARAMS, validate_params

    from generation.models import ConfigRevision, Generation, MetricValue
    from reviews.models import Comparison, IssueReport, Rating, RatingDimension, Review

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(seed)
    now = timezone.now()
    User = get_user_model()
    User.objects.bulk_create(User(username=f"bench{j}", password="!") for j in range(N_REVIEWERS))
    users = np.array(list(User.objects.order_by("id").values_list("id", flat=True)))
    offsets = rng.normal(0, 0.5, size=users.size)
    dims = list(RatingDimension.objects.order_by("order").values_list("id", flat=True))
    revisions = ConfigRevision.objects.bulk_create(
        ConfigRevision(
            number=r + 1,
            params=validate_params({**DEFAULT_PARAMS, "crf": 15 + r}),
            model_variant=DEFAULT_PARAMS["model_variant"],
            status="active" if r == N_REVISIONS - 1 else "retired",
        )
        for r in range(N_REVISIONS)
    )
    quality = 2.5 + 0.08 * np.arange(N_REVISIONS)

    gen_rev = rng.integers(0, N_REVISIONS, size=n_generations)
    gen_q = quality[gen_rev] + rng.normal(0, 0.4, size=n_generations)
    gen_ids = [uuid.uuid4() for _ in range(n_generations)]
    rating_sql = (
        f"INSERT INTO {Rating._meta.db_table} (review_id, dimension_id, value, created_at) "
        "VALUES (%s, %s, %s, %s)"
    )
    metric_sql = (
        f"INSERT INTO {MetricValue._meta.db_table} "
        "(generation_id, name, value, version, source, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
    )
    ratings = 0
    for lo in range(0, n_generations, BATCH // REVIEWS_PER_GENERATION):
        hi = min(lo + BATCH // REVIEWS_PER_GENERATION, n_generations)
        with transaction.atomic():
            Generation.objects.bulk_create(
                Generation(
                    id=gen_ids[g],
                    prompt=f"bench prompt {g % 500}",
                    status="succeeded",
                    revision=revisions[gen_rev[g]],
                    params=revisions[gen_rev[g]].params,
                    video=f"generations/{gen_ids[g]}.mp4",
                    duration_s=10.0,
                    generation_seconds=float(1.0 + 0.05 * gen_rev[g] + rng.exponential(0.2)),
                    progress=1.0,
                )
                for g in range(lo, hi)
            )
            reviews, rating_rows, issues = [], [], []
            for g in range(lo, hi):
                for j in rng.choice(users.size, size=REVIEWS_PER_GENERATION, replace=False):
                    review = Review(
                        id=uuid.uuid4(), reviewer_id=int(users[j]), generation_id=gen_ids[g]
                    )
                    reviews.append(review)
                    values = np.clip(
                        np.rint(gen_q[g] + offsets[j] + rng.normal(0, 0.6, size=len(dims))), 1, 5
                    )
                    rating_rows += [
                        (
                            review.id.hex if connection.vendor == "sqlite" else review.id,
                            d,
                            int(v),
                            now,
                        )
                        for d, v in zip(dims, values, strict=True)
                    ]
                    if gen_q[g] < 2.4 and rng.random() < 0.3:
                        issues.append(
                            IssueReport(
                                review=review,
                                generation_id=gen_ids[g],
                                category="flicker",
                                start_s=1.0,
                                end_s=2.0,
                            )
                        )
            Review.objects.bulk_create(reviews, batch_size=5000)
            IssueReport.objects.bulk_create(issues, batch_size=5000)
            with connection.cursor() as cursor:
                cursor.executemany(rating_sql, rating_rows)
                cursor.executemany(
                    metric_sql,
                    [
                        (
                            gen_ids[g].hex if connection.vendor == "sqlite" else gen_ids[g],
                            name,
                            float(value),
                            1,
                            "server",
                            now,
                        )
                        for g in range(lo, hi)
                        for name, value in (
                            ("visual_quality", gen_q[g] / 5 + rng.normal(0, 0.05)),
                            ("temporal_coherence", gen_q[g] / 5 + rng.normal(0, 0.08)),
                            ("sharpness", 100 * gen_q[g] + rng.normal(0, 30)),
                            ("flicker", 3 - gen_q[g] / 2 + rng.normal(0, 0.3)),
                            ("noise_sigma", rng.uniform(1, 10)),
                        )
                    ],
                )
            ratings += len(rating_rows)
    left = rng.integers(0, n_generations, size=N_COMPARISONS)
    right = rng.integers(0, n_generations, size=N_COMPARISONS)
    reviewer = rng.integers(0, users.size, size=N_COMPARISONS)
    Comparison.objects.bulk_create(
        (
            Comparison(
                reviewer_id=int(users[reviewer[k]]),
                left_id=gen_ids[a],
                right_id=gen_ids[b],
                winner=(
                    "left"
                    if gen_q[a] > gen_q[b] + 0.2
                    else "right"
                    if gen_q[b] > gen_q[a] + 0.2
                    else "tie"
                ),
            )
            for k, (a, b) in enumerate(zip(left, right, strict=True))
            if a != b
        ),
        batch_size=5000,
    )
    print(f"loaded {ratings:,} ratings, {n_generations:,} generations, {N_REVIEWERS} reviewers")


def analyse() -> None:
    """Runs in its own process: time one analysis and report its peak RSS as JSON."""
    _setup_django()
    from improvements.analysis import analysis_compute
    from improvements.criteria import criteria_resolve

    criteria = criteria_resolve().improvement_criteria
    started = time.perf_counter()
    snapshot = analysis_compute(criteria=criteria)
    seconds = time.perf_counter() - started
    json.dumps(snapshot, allow_nan=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "ratings": snapshot["ratings"],
                "reviews": snapshot["reviews"],
                "comparisons": snapshot["comparisons"],
                "revisions_corrected": len(snapshot["corrected"].get("overall_satisfaction", [])),
                "correlations": len(snapshot["correlations"]),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    parser.add_argument("--analyse-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.analyse_only:
        analyse()
        return 0

    tmp = tempfile.mkdtemp(prefix="improver-scale-")
    env = dict(os.environ)
    if "DATABASE_URL" not in env:
        env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
    os.environ.update(env)
    _setup_django()
    started = time.perf_counter()
    load(args.generations, args.seed)
    print(f"load: {time.perf_counter() - started:.1f} s (not part of the target)")

    child = subprocess.run(
        [sys.executable, __file__, "--analyse-only"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        print(child.stdout, child.stderr, file=sys.stderr)
        return 1
    result = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"analysis: {result['seconds']:.2f} s (target <= {TIME_TARGET_S:g} s), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB (target <= {RSS_TARGET_MB:g} MB); "
        f"{result['ratings']:,} ratings, {result['reviews']:,} reviews, "
        f"{result['comparisons']:,} comparisons, {result['revisions_corrected']} revisions, "
        f"{result['correlations']} metric x dimension correlations"
    )
    if not args.keep and env["DATABASE_URL"].startswith("sqlite:///" + tmp):
        for name in Path(tmp).iterdir():
            name.unlink()
        Path(tmp).rmdir()
    missed = result["seconds"] > TIME_TARGET_S or result["peak_rss_mb"] > RSS_TARGET_MB
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
