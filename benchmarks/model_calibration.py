"""Is the improver's model calibrated where it is fitted, and where it is asked to predict?

Runs the committed policy of `loop_search.py` for `--budget` ratings (default 700, about when
the first challengers open) and then checks its last fitted model against the simulated
reviewers' truth, in two places:

- **at the revisions it was fitted on**: leave-one-out standardised residuals of every rating
  dimension's Gaussian process (Rasmussen & Williams eq. 5.10-5.12: the residual of each
  revision's mean against the prediction from all the others, over its predictive variance,
  noise included). A GP whose noise and smoothness are right gives a mean z^2 of 1;
- **at new configurations**: local moves of the active configuration like the policy's
  candidates (`--radii`, about three parameters each), where the model predicts the objective's
  gain over the active; the truth is the panel's expected overall rating (what the ratings
  estimate). Reported: the mean error over all moves and over the five the model rates best
  (the optimiser's curse is the difference), and mean z^2 = (predicted - true)^2 / predicted
  variance, which is 1 for a calibrated model.

    nice .venv/bin/python benchmarks/model_calibration.py --seeds 3 --jobs 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from benchmarks.loop_search import (  # noqa: E402
    add_run_arguments,
    add_settings_argument,
    load_schema,
    map_runs,
    run_loop,
    runs,
)
from benchmarks.simulated_reviewers import make_simulator  # noqa: E402
from improvements.search import ImproverPolicy, Settings  # noqa: E402
from improvements.search import candidates as cand  # noqa: E402
from improvements.search import gaussian_process as gpr  # noqa: E402

MOVES_PER_RADIUS = 60
TOP = 5


def loo_z(gp: gpr.GaussianProcess) -> NDArray[np.float64]:
    """Leave-one-out standardised residuals at the training points (the GLS mean held fixed):
    (y_i - mu_-i) / sd_-i = alpha_i / sqrt([C^-1]_ii)."""
    inverse_diag = np.diag(gpr._inverse_from_cholesky(gp.chol))
    return gp.weights / np.sqrt(inverse_diag)


def run_seed(
    args: tuple[str, str, int, int, tuple[float, ...], dict[str, Any]],
) -> dict[str, Any]:
    space_name, family, seed, budget, radii, overrides = args
    sim = make_simulator(load_schema(space_name), family=family, seed=seed)
    space = sim.taste.space
    policy = ImproverPolicy(space, Settings(seed=seed, **overrides))
    result = run_loop(sim, budget, policy.settings, 50, seed, policy=policy)
    model = policy.model
    out: dict[str, Any] = {"space": space_name, "family": family, "seed": seed}
    if model is None:
        return out
    out["loo_z2"] = {
        name: float(np.mean(loo_z(o.gp) ** 2))
        for name, o in model.outputs.items()
        if o.kind == "dimension"
    }
    active = result.active_params
    overall = sim.taste.overall_index
    base = sim.expected_rating(active, overall)
    rng = np.random.default_rng([seed, 2718])
    z0 = space.features([active])
    out["moves"] = {}
    for radius in radii:
        units = cand.local(
            space,
            space.to_unit(active),
            MOVES_PER_RADIUS,
            radius,
            rng,
            mean_changes=policy.settings.local_changes,
        )
        params = [cand.to_params(space, u, active) for u in units]
        mean, var = model.objective_difference(space.features(params), z0)
        true = np.array([sim.expected_rating(p, overall) - base for p in params])
        top = np.argsort(-mean)[:TOP]
        out["moves"][str(radius)] = {
            "error": float(np.mean(mean - true)),
            "top_error": float(np.mean(mean[top] - true[top])),
            "z2": float(np.mean((mean - true) ** 2 / var)),
            "true_sd": float(np.std(true)),
        }
    return out


def report(results: list[dict[str, Any]]) -> str:
    fitted = [r for r in results if "moves" in r]
    lines = [f"{len(fitted)} of {len(results)} runs had a model"]
    if not fitted:
        return lines[0]
    loo = [v for r in fitted for v in r["loo_z2"].values()]
    lines.append(
        f"at the revisions fitted on: mean leave-one-out z^2 {np.mean(loo):.2f} "
        f"(median {np.median(loo):.2f}) over {len(loo)} dimension models"
    )
    lines.append("| radius | error, all moves | error, the model's top 5 | mean z^2 | true sd |")
    lines.append("|---:|---:|---:|---:|---:|")
    for radius in fitted[0]["moves"]:
        rows = [r["moves"][radius] for r in fitted]
        error, top, z2, true_sd = (
            np.mean([x[k] for x in rows]) for k in ("error", "top_error", "z2", "true_sd")
        )
        lines.append(f"| {radius} | {error:+.2f} | {top:+.2f} | {z2:.2f} | {true_sd:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.set_defaults(seeds=3, budget=700)
    parser.add_argument("--radii", nargs="+", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--jobs", type=int, default=2)
    add_settings_argument(parser, '{"length_prior_scale": 0.6}')
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args(argv)
    jobs = [
        (s, f, seed, args.budget, tuple(args.radii), args.settings) for s, f, seed in runs(args)
    ]
    t0 = time.time()
    results = map_runs(run_seed, jobs, args.jobs)
    print(report(results))
    print(f"\n{len(jobs)} runs of {args.budget} ratings in {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
