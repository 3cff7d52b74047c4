"""How early a tested change can be confirmed: an oracle that knows the better configurations.

The loop changes the active configuration only when an always-valid test says a challenger is
better (issue 10 keeps that guarantee and the false-promotion rate <= alpha). This script asks
how soon such a test *can* say so on the simulated reviewers of `loop_search.py`, for a tester
far luckier than the loop:

- it knows, from the first rating, a configuration that closes a given share of the gap (the
  best one, or the first point on the straight line from the default to the best in unit
  coordinates that closes 25% or 50% of it) and spends the whole budget on it and the default,
  half each (the best split for two arms of equal variance), with no exploration at all;
- it knows every reviewer's true leniency (subtracted) and which reviewers rate at random
  (left out), so a generation's value is the mean of its honest reviews' overall rating minus
  their leniency;
- it knows the true effect and the per-generation variance (from a pilot of 400 generations
  per arm on a separate random stream), so the mixture is tuned to the effect
  (`mixture_for_effect`) and the plug-in variance starts from the truth;
- it may decide after 2 generations per arm (the product waits for 8).

Reported per step size, per group and overall: the share of runs in which the always-valid test
(the product's `sequential_test.compare`, one-sided, alpha 0.05) has confirmed the step by 500 /
1,000 / 2,000 / 3,000 ratings, and the ratings it needed; next to it,
the power of a single fixed-horizon one-sided z-test at alpha 0.05 run at each checkpoint on all
data so far, which no sequential procedure can beat at that checkpoint.

A smaller improvement takes longer to confirm (the information needed grows as 1 / effect^2).
The figures separate the two costs of a change: *finding* it (search) and *confirming* it (the
test). A loop that confirms with the same test should not run ahead of this oracle for the same
step size: it pays for the same test with less knowledge, and for the search on top.

    nice .venv/bin/python benchmarks/oracle_bound.py --seeds 10 --jobs 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from benchmarks.loop_search import (  # noqa: E402
    CHECKPOINTS,
    Store,
    add_run_arguments,
    load_schema,
    map_runs,
    runs,
)
from benchmarks.simulated_reviewers import Simulator, make_simulator  # noqa: E402
from improvements.search.sequential_test import compare, mixture_for_effect  # noqa: E402

ALPHA = 0.05
MIN_GENERATIONS = 2
PILOT_GENERATIONS = 400
STEPS = (0.25, 0.5, 1.0)  # shares of the gap the tested configuration closes


def generate(store: Store, sim: Simulator, arm: int, rng: np.random.Generator) -> float | None:
    """One generation of `arm` (0 the default, 1 the target); the oracle's value of it.

    The value is the mean overall rating of its honest reviews minus each reviewer's leniency;
    None when it failed or only random raters reviewed it.
    """
    start = store.n_ratings
    store.generate(sim, arm, rng)
    overall = sim.taste.overall_index
    panel = sim.panel
    honest = [
        store.r_val[i] - panel.leniency[store.r_rvw[i]]
        for i in range(start, store.n_ratings)
        if store.r_dim[i] == overall and not panel.random_rater[store.r_rvw[i]]
    ]
    return float(np.mean(honest)) if honest else None


def step_config(sim: Simulator, share: float) -> tuple[dict[str, Any], float]:
    """The first configuration on the line default -> best that closes `share` of the gap."""
    taste = sim.taste
    space = taste.space
    default = space.to_unit(space.complete(space.default()))
    best = space.to_unit(taste.best_params())
    gap = taste.best_quality - taste.default_quality
    for t in np.linspace(0.0, 1.0, 401)[1:]:
        params = space.from_unit(default + t * (best - default), space.default())
        closed = (taste.quality(params) - taste.default_quality) / gap
        if closed >= share - 1e-9 or t == 1.0:
            return params, closed
    raise AssertionError("unreachable")


def pilot(sim: Simulator, target: dict[str, Any], seed: int) -> tuple[float, float]:
    """(true effect, per-generation variance) of target vs default on a separate stream."""
    rng = np.random.default_rng([seed, 778])
    saved = sim.rng
    sim.rng = np.random.default_rng([seed, 777])
    store = _store(sim, target)
    values: dict[int, list[float]] = {0: [], 1: []}
    for i in range(2 * PILOT_GENERATIONS):
        value = generate(store, sim, i % 2, rng)
        if value is not None:
            values[i % 2].append(value)
    sim.rng = saved
    effect = float(np.mean(values[1]) - np.mean(values[0]))
    variance = float((np.var(values[0], ddof=1) + np.var(values[1], ddof=1)) / 2)
    return effect, variance


def _store(sim: Simulator, target: dict[str, Any]) -> Store:
    space = sim.taste.space
    store = Store(dimensions=sim.taste.dimensions)
    store.revisions[0] = space.complete(space.default())
    store.revisions[1] = target
    return store


def run_seed(job: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    space_name, family, seed, budget = job
    schema = load_schema(space_name)
    return [run_step(schema, space_name, family, seed, budget, share) for share in STEPS]


def run_step(
    schema: dict[str, Any], space_name: str, family: str, seed: int, budget: int, share: float
) -> dict[str, Any]:
    sim = make_simulator(schema, family=family, seed=seed)
    target, closed = step_config(sim, share)
    effect, variance = pilot(sim, target, seed)
    rng = np.random.default_rng([seed, 31337])
    store = _store(sim, target)
    rho = mixture_for_effect(effect)
    confirmed_at = math.inf
    fixed: dict[int, bool] = {}
    values: dict[int, list[float]] = {0: [], 1: []}
    i = 0
    while store.n_ratings < budget:
        before = store.n_ratings
        value = generate(store, sim, i % 2, rng)
        if value is not None:
            values[i % 2].append(value)
        i += 1
        crossed = [c for c in CHECKPOINTS if before < c <= store.n_ratings]
        if math.isfinite(confirmed_at) and not crossed:
            continue
        if min(len(values[0]), len(values[1])) < MIN_GENERATIONS:
            continue
        comparison = compare(
            values[1],
            values[0],
            alpha=ALPHA,
            futility_alpha=0.1,
            rho=rho,
            prior_variance=variance,
        )
        if comparison.lower > 0 and not math.isfinite(confirmed_at):
            confirmed_at = store.n_ratings
        for c in crossed:
            z = comparison.difference * math.sqrt(comparison.information)
            fixed[c] = bool(z > norm.ppf(1 - ALPHA))
    return {
        "space": space_name,
        "family": family,
        "seed": seed,
        "step": share,
        "closed": closed,
        "gap": sim.taste.best_quality - sim.taste.default_quality,
        "effect": effect,
        "sd": math.sqrt(variance),
        "confirmed_at": confirmed_at,
        "fixed": {c: fixed.get(c, False) for c in CHECKPOINTS},
    }


def report(results: list[dict[str, Any]]) -> str:
    head = " | ".join(f"{c:,}" for c in CHECKPOINTS)
    lines = [
        "Share of runs in which the oracle's always-valid test has confirmed the step (in "
        "brackets: a fixed-horizon test at that checkpoint alone)",
        "",
        f"| step (share of the gap) | group | runs | effect / sd per generation | {head} "
        "| ratings to confirm (median) |",
        "|---|---|---:|---:|" + "---:|" * len(CHECKPOINTS) + "---:|",
    ]
    for share in STEPS:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            if r["step"] == share:
                groups.setdefault(f"{r['space']} / {r['family']}", []).append(r)
        groups["all"] = [r for r in results if r["step"] == share]
        for name, rs in groups.items():
            cells = []
            for c in CHECKPOINTS:
                seq = np.mean([r["confirmed_at"] <= c for r in rs])
                fix = np.mean([r["fixed"][c] for r in rs])
                cells.append(f"{seq:.0%} ({fix:.0%})")
            ratio = np.median([r["effect"] / r["sd"] for r in rs])
            at = float(np.median([r["confirmed_at"] for r in rs]))
            lines.append(
                f"| {share:.0%} | {name} | {len(rs)} | {ratio:.2f} | "
                + " | ".join(cells)
                + f" | {'—' if not math.isfinite(at) else f'{at:,.0f}'} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args(argv)
    jobs = [(s, f, seed, args.budget) for s, f, seed in runs(args)]
    t0 = time.time()
    results = [r for rs in map_runs(run_seed, jobs, args.jobs) for r in rs]
    print(report(results))
    print(f"\n{len(jobs)} runs in {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, default=str, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
