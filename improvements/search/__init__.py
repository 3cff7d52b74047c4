"""The improver's decision core: from all feedback to a plan of experiments. No Django.

    policy = ImproverPolicy(ParameterSpace.from_schema(pipeline_schema), Settings(...))
    plan = policy.step(observations, experiment_state)

(Set OPENBLAS_NUM_THREADS=1 in the worker that runs it: the model's matrices are small, and
many BLAS threads make each step several times slower.)

Inputs (`observations.py`; plain numpy columns, ids are the database's integers)
--------------------------------------------------------------------------------
`Observations(dimensions, revisions, ratings, issues, generations, now)`:

- `dimensions`: rating-dimension slugs; `ratings.dimension` indexes this tuple.
- `revisions`: {revision id: params} for every revision the feedback mentions and every arm.
- `ratings` (`Ratings.of(...)`), one row per rating: revision, generation, reviewer, dimension,
  value (1-5), time (arrival). A review is one reviewer's ratings of one generation.
- `issues` (`Issues.of(...)`), one row per issue report: revision, generation, reviewer,
  category, note (free text; used for `other`).
- `generations` (`Generations.of(...)`), one row per finished or failed generation: id,
  revision, failed, seconds (wall time; nan if failed), time (creation).
- `now`: the clock now. One clock for all `time` columns and `Arm.opened` (epoch seconds are
  fine). It decides which generations belong to an arm's test (created after it opened) and
  which ratings may calibrate reviewer offsets for it (arrived before it opened).

`ExperimentState(active, arms, history)`: the active revision id, the running arms and every
closed arm (`Arm(revision, role, control, opened, alpha, mixture, predicted, outcome, effect)`).
Store an arm as the plan opened it (`alpha`, `mixture` and `predicted` must come back
unchanged) and, when a decision closes it, its `outcome` and `effect`.

Output (`Plan`)
---------------
- `active`: the revision active after this step (a promotion changes it).
- `decisions`: one `ArmDecision` per running arm: `action` promote | drop | continue, `outcome`
  (promoted, futile, worse, model, guardrail, superseded, explored, continue), a `reason`
  sentence with the numbers, `effect` (always-valid interval of objective(arm) -
  objective(control) for challengers; the model's interval for explorers), counts per arm and
  `numbers` for the changelog. At most one promotion per step; when one happens every other
  challenger is dropped as superseded (its control is retired). Explorers are never promoted.
- `open`: `NewArm`s to create as revisions: params, role, the control they are measured
  against, alpha and mixture (keep them on the arm), `predicted` (the model's interval for the
  objective change), a `rationale` naming its evidence (dimensions, issue reports, past
  experiments) and a JSON-ready `evidence` dict, and the parameter `changes`.
- `traffic`: share of new generations per revision id (control and continuing arms) or per
  `NewArm.key` (arms opened by this plan); sums to 1.
- `notes`: why nothing was opened, etc.; `model`: a JSON-ready summary of the surrogate.

The adapter's loop: build Observations and ExperimentState; `plan = policy.step(...)`; apply
`decisions` (promote: make it active, the old control retires; drop: close with outcome and
effect), create a revision per `open` entry and record its Arm (opened = now), set traffic.

Design
------
- `space`: the declared JSON-Schema space -> unit coordinates, model features, grid snapping,
  meaningful steps (`x-step`, else 5% of the range), untunable parameters fixed.
- `evidence`: per-revision reviewer-bias-corrected means per dimension (`improvements.stats`),
  issue signals (categories and note words), generation time and failures.
- `surrogate` (+ `gaussian_process`): a GP per dimension, per issue signal and for generation
  time over the declared space, learning from every revision at once; the objective stacks the
  other dimensions and the issue signals with a residual GP; `x-affects` sets the priors.
- `candidates` + `issue_signals`: local moves around the active and the best revisions, global
  samples, and targeted moves from issue reports and weak dimensions, all scored by the model.
- `memory`: failed changes are not proposed again unless the model is now confident.
- `policy`: a challenger is a screened revision (enough reviews, P(gain) >= 0.8) or, unscreened,
  the model's favourite when P(gain) >= 0.9; explorers screen, by Thompson sampling.
- `arm_data` + `sequential_test`: challengers are tested against the concurrent control on
  per-generation objective values with frozen reviewer offsets, by a one-sided normal-mixture
  confidence sequence; alpha is split (Bonferroni) over the challengers running at once;
  the always-valid futility bound, a quick one-sided bound on the test's own data (a worthwhile
  gain unlikely at `quick_futility_level`), model-based drop (also when a screened revision or
  the sure favourite is clearly better) and the guardrails of `improvements.stats` end the
  others.
- `allocation`: Dunnett control share, top-two Thompson among challengers, explorers share the
  rest. Explorers are cheap arms that feed the model and end after a few reviews.
"""

from improvements.search.observations import (
    Arm,
    ArmDecision,
    ExperimentState,
    Generations,
    Interval,
    Issues,
    NewArm,
    Observations,
    Plan,
    Ratings,
)
from improvements.search.policy import ImproverPolicy, Settings
from improvements.search.space import Param, ParameterSpace, SpaceError

__all__ = [
    "Arm",
    "ArmDecision",
    "ExperimentState",
    "Generations",
    "ImproverPolicy",
    "Interval",
    "Issues",
    "NewArm",
    "Observations",
    "Param",
    "ParameterSpace",
    "Plan",
    "Ratings",
    "Settings",
    "SpaceError",
]
