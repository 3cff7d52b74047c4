"""False promotions of the product's test when the reviewer panel changes while it runs.

A challenger's test counts, besides the control's concurrent generations, its most recent
generations from before the arm opened (`control_history`): the same configuration, so the same
distribution - as long as the reviewers rate as they did. This script runs null experiments
(the challenger is the control's own configuration) through the production decision path
(`decisions.challenger_decision`, reviewer offsets and weights frozen at opening) with the
synthetic panel of the decision tests (`tests/improver_search/feedback_builder.py`: leniency,
noise, rounding to 1-5, a tenth rating at random, 1-3 reviews per generation):

- stationary: the panel rates as before;
- a cohort joins: 20 new reviewers, 0.5 points more lenient on average, join as the arm opens
  (from then on about half the reviews are theirs), or 10 control generations before it opens
  (a few of them then have a few ratings, and offsets shrunk towards 0);
- drift: every reviewer grows more lenient by 0.002 or 0.005 points per generation from the
  arm's opening (0.2 or 0.45 points over a 90-generation test).

The control gets 40 generations before the arm opens; then the arm gets 5 generations and the
control about 2.5 (half of 5) between decisions, up to 12 decisions (60 arm generations), as in
`tests/improver_search/test_false_promotions.py`. Printed: the share of experiments that ever
promote, with the control's history (the default, 40 generations) and with a purely concurrent
control (`control_history` 0), and a binomial standard error. Each must stay within alpha (0.05).

    nice .venv/bin/python benchmarks/panel_change.py --experiments 400 --jobs 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from improvements.search import Arm, Settings  # noqa: E402
from improvements.search.decisions import DecisionRules  # noqa: E402
from improvements.search.sequential_test import mixture_for_effect  # noqa: E402
from tests.improver_search.feedback_builder import FeedbackBuilder, ever_promoted  # noqa: E402

ALPHA = 0.05
OVERALL = {"overall_satisfaction": 1.0}
SCENARIOS = {
    "stationary": {},
    "a lenient cohort joins as the arm opens": {"joiners": 20},
    "the same cohort joins 10 generations before": {"joiners": 20, "joined_before": 10},
    "drift +0.002 a generation": {"drift": 0.002},
    "drift +0.005 a generation": {"drift": 0.005},
}


def ever_promotes(job: tuple[int, str, int]) -> bool:
    seed, scenario, history = job
    change = SCENARIOS[scenario]
    rng = np.random.default_rng([seed, 7])
    fb = FeedbackBuilder(rng)
    fb.add_revision(0, {}, 3.0)
    fb.add_revision(1, {}, 3.0)
    before = change.get("joined_before", 0)
    for _ in range(40 - before):
        fb.generate(0)
    if change.get("joiners"):
        fb.add_reviewers(change["joiners"], leniency=0.5)
    for _ in range(before):
        fb.generate(0)
    opened = fb.clock + 0.001
    fb.drift, fb.drift_from = change.get("drift", 0.0), opened
    arm = Arm(
        revision=1,
        role="challenger",
        control=0,
        opened=opened,
        alpha=ALPHA,
        mixture=mixture_for_effect(float(rng.uniform(0.3, 1.2))),
    )
    rules = DecisionRules(alpha=ALPHA, min_generations=8, control_history=history)
    return ever_promoted(fb, arm, rules, OVERALL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    histories = (Settings().control_history, 0)
    jobs = [
        (seed, scenario, history)
        for scenario in SCENARIOS
        for history in histories
        for seed in range(args.experiments)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        promoted = list(pool.map(ever_promotes, jobs, chunksize=20))
    print(f"{args.experiments} null experiments per cell, alpha {ALPHA}: share ever promoted")
    print(f"| panel | history {histories[0]} | concurrent only |")
    print("|---|---:|---:|")
    n = args.experiments
    for i, scenario in enumerate(SCENARIOS):
        cells = []
        for k in range(len(histories)):
            start = (i * len(histories) + k) * n
            rate = sum(promoted[start : start + n]) / n
            cells.append(f"{rate:.3f} ± {math.sqrt(rate * (1 - rate) / n):.3f}")
        print(f"| {scenario} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
