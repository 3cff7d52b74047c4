"""The real loop, driven through the product's Python API, against simulated reviewers.

Every seed runs in its own process on its own fresh database: `VideoGenerator` generates each
video with the revision the product assigns (the active one, or an experiment arm by its
traffic share), simulated reviewers (benchmarks/simulated_reviewers.py: seeded taste models
over the pipeline's declared space, reviewer leniency and noise, a few random raters, issue
reports including `other` with a note) rate every video on every dimension through
`record_human_feedback`, and every `--step-every` ratings `check_for_improvements()` runs one
improver step: analysis, decisions on running arms, new arms. With `--mode approve` the
proposals wait for an admin, and the benchmark approves each batch as an admin would
(`ModelImprover.approve`); with `--mode library` (`require_approval: false`) they open at once.
Either way arms are tested before promotion: the active configuration changes only when an
experiment promotes an arm. Every rating is counted (a review of 5 dimensions is 5 ratings).

Baselines (default, random search, Optuna TPE driven directly by mean overall ratings) run on
the same taste models and budget without Django (benchmarks/loop_search.py: `run_trials`).

By default a stand-in renderer (benchmarks/stand_in_renderer.py) makes a tiny real video per
generation; `--render real` uses the built-in renderer and measures every video. The report and
the exit status are loop_search's: per group, then every run against issue 10's target (exits 1
unless it was shown).

    nice .venv/bin/python benchmarks/closed_loop.py --seeds 10 --families bumps bandpass \\
        --spaces builtin diffusers --mode library --jobs 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHECKPOINTS = (500, 1000, 2000, 3000)
PROMPTS = [f"A short briefing on topic {i}: what changed and why it matters" for i in range(40)]


# --- one seed, in a fresh process and database --------------------------------------------------


def _django(workdir: Path, database_url: str | None) -> None:
    os.environ.update(
        FEEDBACKLOOP_VAR_DIR=str(workdir / "var"),
        MEDIA_ROOT=str(workdir / "media"),
        CELERY_TASK_ALWAYS_EAGER="true",
        DJANGO_SETTINGS_MODULE="feedbackloop.settings",
        METRICS_OCR_ENABLED="false",
    )
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{workdir / 'db.sqlite3'}"
    import logging

    import django

    django.setup()
    logging.getLogger("celery").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _config(workdir: Path, opts: dict[str, Any], declaration: Path) -> Path:
    real = opts["render"] == "real"
    renderer = (
        "pipelines.builtin.renderer:render_video" if real else "benchmarks.stand_in_renderer:render"
    )
    params = "{width: 320, height: 180, fps: 12, preset: ultrafast}" if real else "{}"
    path = workdir / "config.yaml"
    path.write_text(
        f"""pipelines:
  - slug: sim
    name: Simulated pipeline
    declaration: {declaration}
    renderer: {renderer}
    params: {params}
default_pipeline: sim
feedback:
  min_feedback_for_analysis: {opts["step_every"]}
  require_approval: {"true" if opts["mode"] == "approve" else "false"}
"""
    )
    return path


def _seed_generation_ids(seed: int) -> None:
    """Draw this process's UUIDs from a generator seeded by the run's seed.

    The product assigns each new generation to an experiment arm by a hash of its id, a fresh
    `uuid.uuid4()`: random in every run, as a randomised experiment should be, so two runs of one
    seed split their traffic differently from the first experiment on. Seeding the ids here (the
    benchmark's own process, nothing in the product changes) makes a seed's run reproducible.
    """
    import random
    import uuid

    ids = random.Random(f"closed-loop-{seed}")
    uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)  # type: ignore[assignment]


def _policy_overrides(overrides: dict[str, Any]) -> None:
    """Override the improver policy's Settings in this process, for measuring a variant.

    The product builds the policy's Settings from its improvement criteria and keeps every
    other setting at its default; a variant of those defaults is measured end to end by
    replacing them here, in the benchmark's own process (nothing in the product changes).
    """
    if not overrides:
        return
    import dataclasses

    from improvements.search import policy

    original = policy.ImproverPolicy.__init__

    def init(self: Any, space: Any, settings: Any = None) -> None:
        original(self, space, dataclasses.replace(settings or policy.Settings(), **overrides))

    policy.ImproverPolicy.__init__ = init  # type: ignore[method-assign]


def run_seed_in_process(opts: dict[str, Any]) -> dict[str, Any]:
    """One seed: returns quality at the checkpoints, promotions with their true effects."""
    import numpy as np

    from benchmarks import stand_in_renderer
    from benchmarks.loop_search import load_schema
    from benchmarks.simulated_reviewers import make_simulator

    _seed_generation_ids(opts["seed"])
    workdir = Path(tempfile.mkdtemp(prefix="closed-loop-"))
    schema = load_schema(opts["space"])
    declaration = workdir / "parameters.json"
    declaration.write_text(json.dumps(schema))
    _django(workdir, opts.get("database_url"))
    _policy_overrides(opts.get("settings") or {})

    from feedbackloop.seed import VideoGenerator
    from generation.models import Generation
    from improvements.models import ExperimentArm
    from pipelines.models import ConfigRevision

    sim = make_simulator(schema, family=opts["family"], seed=opts["seed"])
    taste = sim.taste
    stand_in_renderer.SIMULATOR = sim if opts["render"] != "real" else None
    generator = VideoGenerator(config_path=_config(workdir, opts, declaration), pipeline="sim")
    integration = generator.feedback_integration
    rng = np.random.default_rng([opts["seed"], 31337])
    dims = taste.dimensions

    def quality_of_active() -> float:
        return taste.quality(generator.active_revision["params"])

    ratings, next_step, started = 0, opts["step_every"], time.perf_counter()
    checkpoints: dict[int, float] = {}
    curve = [(0, quality_of_active())]
    step_seconds: list[float] = []
    approvals = 0
    assigned: list[int] = []  # the revision of every generation, in order
    while ratings < opts["budget"]:
        result = generator.generate_video(
            PROMPTS[int(rng.integers(len(PROMPTS)))], measure=opts["render"] == "real"
        )
        assigned.append(int(result["config_revision"]))
        if result["status"] != "succeeded":
            continue
        params = result["params"]
        simulated_seconds = stand_in_renderer.SECONDS.pop(result["generation_id"], None)
        if simulated_seconds is not None:
            # The time the simulated generator took, not the stand-in's milliseconds (as
            # loop_search does): the improver models it and guards against slower arms.
            Generation.objects.filter(pk=result["generation_id"]).update(
                generation_seconds=simulated_seconds
            )
        luck = stand_in_renderer.LUCK.pop(result["generation_id"], None)
        if luck is None:
            _failed, _seconds, luck = sim.generate(params)
        before = ratings
        for reviewer in rng.choice(sim.panel.size, int(rng.integers(1, 4)), replace=False):
            review = sim.review(params, luck, int(reviewer))
            integration.record_human_feedback(
                generation_id=result["generation_id"],
                ratings={d: int(v) for d, v in zip(dims, review.ratings, strict=True)},
                reviewer=f"sim-{int(reviewer)}",
                issues=[
                    {"category": c, "start_s": 0.0, "end_s": 0.25, "note": note}
                    for c, note in review.issues
                ],
            )
            ratings += len(dims)
        for c in CHECKPOINTS:
            if before < c <= ratings:
                checkpoints[c] = quality_of_active()
        if ratings >= next_step:
            next_step += opts["step_every"]
            t0 = time.perf_counter()
            generator.check_for_improvements()
            if opts["mode"] == "approve":
                pending = integration.improver.pending_proposals()
                if pending:
                    integration.improver.approve(*[p["revision"] for p in pending])
                    approvals += 1
            step_seconds.append(time.perf_counter() - t0)
            q = quality_of_active()
            if q != curve[-1][1]:
                curve.append((ratings, q))
    for c in CHECKPOINTS:
        checkpoints.setdefault(c, quality_of_active())

    promotions, challengers = [], []
    for arm in ExperimentArm.objects.select_related("revision", "experiment__control"):
        if arm.role != ExperimentArm.Role.CHALLENGER or arm.status == "carried_over":
            continue
        true_effect = taste.quality(arm.revision.params) - taste.quality(
            arm.experiment.control.params
        )
        predicted = (arm.result or {}).get("predicted") or arm.revision.predicted_impact or {}
        # Coverage is judged on the scale the model predicts, as in loop_search: the panel's
        # expected ratings (rounding, the 1-5 bounds and random raters compress the latent
        # quality's differences).
        overall = taste.overall_index
        rating_effect = sim.expected_rating(arm.revision.params, overall) - sim.expected_rating(
            arm.experiment.control.params, overall
        )
        covered = (
            predicted.get("low") is not None
            and predicted["low"] <= rating_effect <= predicted["high"]
        )
        row = {
            "true_effect": true_effect,
            "rating_effect": rating_effect,
            "covered": bool(covered),
            "outcome": arm.status,
        }
        challengers.append(row)
        if arm.status == "promoted":
            promotions.append(row)
    gap = taste.best_quality - taste.default_quality
    return {
        "space": opts["space"],
        "family": opts["family"],
        "seed": opts["seed"],
        "mode": opts["mode"],
        "gap": gap,
        "loop": {c: (q - taste.default_quality) / gap for c, q in checkpoints.items()},
        "curve": [(n, (q - taste.default_quality) / gap) for n, q in curve],
        "promotions": promotions,
        "challengers": challengers,
        "step_seconds": step_seconds,
        "revisions": ConfigRevision.objects.count(),
        # Which revision made each generation: two runs of one seed give the same digest.
        "traffic_digest": hashlib.sha256(json.dumps(assigned).encode()).hexdigest()[:16],
        "controls": max(1, 1 + len(promotions)),
        "approval_batches": approvals,
        "seconds": time.perf_counter() - started,
    }


def run_seed(opts: dict[str, Any]) -> dict[str, Any]:
    """A fresh interpreter per seed: Django settings and the database are per process."""
    command = [sys.executable, __file__, "--one", json.dumps(opts)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"seed {opts['seed']} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["loop"] = {int(k): v for k, v in result["loop"].items()}
    from benchmarks.loop_search import load_schema, make_simulator, run_trials

    schema = load_schema(opts["space"])
    for kind in opts["baselines"]:
        sim = make_simulator(schema, family=opts["family"], seed=opts["seed"])
        quality = run_trials(sim, opts["budget"], kind, opts["trial_reviews"], opts["seed"])
        result[kind] = {
            c: (quality[c] - sim.taste.default_quality) / result["gap"] for c in CHECKPOINTS
        }
    return result


def _run_spec(text: str) -> tuple[str, str, int]:
    """One run as space/family/seed, e.g. builtin/bandpass/10 (argparse type)."""
    from benchmarks.loop_search import load_schema
    from benchmarks.simulated_reviewers import FAMILIES

    parts = text.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not space/family/seed")
    space, family, seed = parts
    if family not in FAMILIES:
        raise argparse.ArgumentTypeError(f"unknown taste family {family!r}: one of {FAMILIES}")
    try:
        load_schema(space)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"unknown space {space!r}") from exc
    return space, family, int(seed)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.loop_search import add_settings_argument
    from benchmarks.loop_search import runs as runs_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", default=["bumps", "bandpass"])
    parser.add_argument("--spaces", nargs="+", default=["builtin"])
    parser.add_argument("--mode", choices=["library", "approve"], default="library")
    parser.add_argument("--render", choices=["stand-in", "real"], default="stand-in")
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--step-every", type=int, default=50)
    parser.add_argument("--trial-reviews", type=int, default=6)
    parser.add_argument("--baselines", nargs="*", default=["tpe", "random"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per seed")
    parser.add_argument("--json", help="also write the per-seed results here")
    add_settings_argument(parser, '{"preempt_margin": 2}')
    parser.add_argument(
        "--runs",
        nargs="+",
        type=_run_spec,
        help="only these runs, as space/family/seed (e.g. builtin/bandpass/10)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_seed_in_process(json.loads(args.one))))
        return 0
    from benchmarks.loop_search import report, target_verdict

    runs = [
        {
            "space": space,
            "family": family,
            "seed": seed,
            "mode": args.mode,
            "render": args.render,
            "budget": args.budget,
            "step_every": args.step_every,
            "trial_reviews": args.trial_reviews,
            "baselines": args.baselines,
            "database_url": args.database_url,
            "settings": args.settings,
        }
        for space, family, seed in args.runs or runs_of(args)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_seed, runs))
    print(
        f"# closed loop through the product ({args.mode} mode, {args.render} renderer, "
        f"{args.budget:,} ratings, a step every {args.step_every}; "
        f"policy settings {args.settings or 'default'})"
    )
    print(report(results))
    verdict, met = target_verdict(results)
    print(verdict)
    seconds = [r["seconds"] for r in results]
    print(
        f"\nwall time per seed: median {sorted(seconds)[len(seconds) // 2]:.0f} s; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
