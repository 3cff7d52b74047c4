"""ImproverPolicy: one step of the improvement loop, from all feedback to a Plan.

See the package docstring (`improvements/search/__init__.py`) for the interface and the design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.stats
from numpy.typing import NDArray

from improvements.search import candidates as cand
from improvements.search.allocation import traffic_shares
from improvements.search.arm_data import unit_variance
from improvements.search.decisions import DecisionRules, challenger_decision
from improvements.search.evidence import Evidence, evidence_gather
from improvements.search.issue_signals import Move, moves_for_signal
from improvements.search.memory import explored_before, repeats_failure, tried_changes
from improvements.search.observations import (
    Arm,
    ArmDecision,
    ExperimentState,
    Interval,
    NewArm,
    Observations,
    Plan,
)
from improvements.search.sequential_test import information_to_cross, mixture_for_effect
from improvements.search.space import ParameterSpace
from improvements.search.surrogate import Surrogate, Warm, objective_weights_for, surrogate_fit
from improvements.stats.proportions import wilson_interval

# The origin of a challenger opened as the model's favourite, without screening.
FAVOURITE = "favourite:"


@dataclass(frozen=True)
class Settings:
    """Knobs of the policy; every default is what the benchmark was run with."""

    objective: Mapping[str, float] | None = None  # dimension -> weight; None: overall rating
    alpha: float = 0.05  # false-promotion budget of an experiment (its concurrent challengers)
    futility_alpha: float = 0.10  # error level of the futility bound (a lost chance, not harm)
    min_effect: float = 0.1  # smallest objective gain worth a promotion, rating points
    # A challenger must promise this many per-generation standard deviations of gain: a test of
    # a smaller gain costs more generations than exploring for a bigger one (0.4 sd needs ~60
    # generations per arm, 1 sd ~12). In rating points this scales with the observed noise.
    worthwhile_sd: float = 0.35
    min_generations: int = 8  # per arm before a challenger can be decided
    # The control's most recent generations from before a challenger opened that count in its
    # test (0: only concurrent ones). Traffic then goes to the challenger until the control's
    # share of the test data falls to the Dunnett allocation.
    control_history: int = 40
    max_challengers: int = 1
    # Split alpha over the challengers that can run at once (Bonferroni: a batch promotes a
    # not-better arm with probability <= alpha). False: each challenger is its own experiment at
    # alpha, as one opened after another already is (each not-better arm is promoted with
    # probability <= alpha; a batch of k with <= k * alpha).
    split_alpha: bool = True
    explorers: int = 6
    explorer_reviews: int = 1  # reviews an explorer collects before the model takes over
    explorer_generations: int = 1  # generations an explorer gets (its quota in the plan)
    # Only configurations with this many reviews (over every revision with those parameters)
    # can become challengers: screening is cheap, a test is not. Thompson sampling re-opens
    # promising configurations, so the best-looking ones collect these reviews.
    verify_reviews: int = 4
    # The model's favourite (usually a fresh optimum of its mean, which screening never
    # settles on) may open as a challenger unscreened when P(gain > min_effect) reaches this
    # (1: never). Its test then needs the traffic more than exploration does.
    open_unscreened_probability: float = 0.9
    testing_share: float = 0.85  # of the traffic while a challenger the model rates highly runs
    min_testing_share: float = 0.7  # ... and while a modest one runs
    idle_control_share: float = 0.15
    open_probability: float = 0.8  # P(gain > min_effect) the model needs to open a challenger
    drop_probability: float = 0.1  # drop once the model's P(gain > worthwhile) falls below
    # One-sided level of the quick futility bound on the test's own data: drop a challenger once
    # its measured gain plus this quantile's standard errors is below the worthwhile gain (0.8:
    # 0.84 se; 1: off). Dropping never promotes, so it leaves the false-promotion rate alone.
    quick_futility_level: float = 0.8
    supersede_probability: float = 0.9  # drop it when a new candidate is better with this P
    # Also drop a running challenger when the best candidate, predicted at least as good (its
    # fresh prediction shrunk by `explorer_shrinkage`), would be confirmed sooner: its whole
    # test is expected to need `preempt_margin` times less information than what the running
    # test still needs for the gain the model now gives it. Either way the loop then holds the
    # bigger gain sooner (measured in docs/improvement-loop.md, policy alone and end to end).
    preempt_sooner: bool = True
    preempt_margin: float = 1.5
    # P(candidate's gain > the running arm's) needed to pre-empt (0.5: predicted at least as good)
    preempt_probability: float = 0.5
    # Pre-empt only a test whose arm has this many generations (0: at any point); a test younger
    # than that is swapped for another on the model's word alone.
    preempt_min_generations: int = 0
    min_model_revisions: int = 12  # revisions with ratings before the first challenger
    lower_quantile: float = 1.0  # challengers maximise mean - this * sd of the predicted gain
    repeat_override_probability: float = 0.97  # evidence needed to retry a failed change
    interval_level: float = 0.9  # of the predicted-impact intervals
    # Calibrate the model's intervals on explorers too: each closed explorer's prediction when it
    # opened against what its own reviews measured (dozens before the first challenger closes).
    calibrate_on_explorers: bool = False
    # Scale the predicted gain of the model's unscreened favourite by the slope of what closed
    # explorers measured on what the model predicted for them (`explorer_shrinkage`) before it
    # may open untested or pre-empt a running test: the best of many fresh predictions is
    # optimistic.
    shrink_fresh: bool = False
    local_radius: float = 0.2
    local_changes: float = 3.0  # parameters a local candidate changes, on average
    n_local: int = 400
    n_global: int = 0
    thompson_pool: int = 300
    ascent_starts: int = 3
    revisit_candidates: int = 20  # best tried configurations offered to Thompson sampling
    stack: bool = True
    max_generation_time_ratio: float = 1.5
    max_failure_rate_increase: float = 0.10
    max_issue_rate_increase: float = 0.25
    issue_rate_for_hint: float = 0.15  # share of the active revision's reviews reporting it
    fit_iterations: int = 60
    # Factor on the prior's lengthscales: the data of noisy single generations cannot tell how
    # fast the objective varies between nearby configurations, so the prior decides.
    length_prior_scale: float = 1.0
    # Carry the stacking weights' uncertainty (objective on the other dimensions and the issue
    # signals) into every predicted gain: a weight estimated where its dimension barely varied
    # is uncertain, and the candidates that move that dimension most are where it matters.
    # False treats the weights as known (an ablation; not measured end to end).
    stack_uncertainty: bool = True
    seed: int = 0


@dataclass
class _Step:
    """Everything one step computes, passed between the stages of `step`."""

    obs: Observations
    state: ExperimentState
    evidence: Evidence
    model: Surrogate | None
    objective: dict[str, float]
    active: int
    rng: np.random.Generator
    unit_var: float
    worthwhile: float = 0.0
    calibration: float = 1.0  # factor on the model's standard deviations (see _calibration)
    shrink: float = 1.0  # factor on the favourite's predicted gain (see explorer_shrinkage)
    decisions: list[ArmDecision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Scored:
    """The candidate pool of one step and the model's view of it (None without a model)."""

    pool: cand.Pool
    moves: list[Move]
    memory: list[Any]
    active_params: dict[str, Any]
    active_units: NDArray[np.float64]
    busy: NDArray[np.bool_]  # within a step of a running arm
    z: NDArray[np.float64] | None = None
    mean: NDArray[np.float64] | None = None  # predicted objective gain over the active
    sd: NDArray[np.float64] | None = None
    p_gain: NDArray[np.float64] | None = None
    retry: NDArray[np.bool_] | None = None  # repeats a failed change, but the model insists
    blocked: NDArray[np.bool_] | None = None
    too_slow: NDArray[np.bool_] | None = None
    # Revisions with enough reviews to be tested, and the model's view of each (challengers
    # come only from these).
    verified: NDArray[np.int64] | None = None  # evidence rows
    verified_mean: NDArray[np.float64] | None = None
    verified_sd: NDArray[np.float64] | None = None
    verified_ok: NDArray[np.bool_] | None = None


class ImproverPolicy:
    """Pure decision core: `step(observations, state) -> Plan`. Holds no state that matters
    (only warm starts for the model fit, which change speed, not results' meaning)."""

    def __init__(self, space: ParameterSpace, settings: Settings | None = None):
        self.space = space
        self.settings = settings or Settings()
        s = self.settings
        self.rules = DecisionRules(
            alpha=s.alpha,
            futility_alpha=s.futility_alpha,
            min_effect=s.min_effect,
            min_generations=s.min_generations,
            control_history=s.control_history,
            max_failure_rate_increase=s.max_failure_rate_increase,
            max_generation_time_ratio=s.max_generation_time_ratio,
            max_issue_rate_increase=s.max_issue_rate_increase,
        )
        self._warm = Warm()
        # Diagnostics only (benchmarks): the model's favourite configuration at the last step
        # (the best lower bound among the candidates it could open: not blocked, not too slow
        # for the generation-time guardrail), and the model itself.
        self.favourite: dict[str, Any] | None = None
        self.model: Surrogate | None = None

    # --- the step ------------------------------------------------------------------------------

    def step(self, obs: Observations, state: ExperimentState) -> Plan:
        s = self.settings
        if state.active not in obs.revisions:
            raise ValueError("the active revision is missing from Observations.revisions")
        objective = objective_weights_for(obs.dimensions, s.objective)
        evidence = evidence_gather(obs)
        model = self._fit(evidence, objective)
        self.model = model
        ctx = _Step(
            obs=obs,
            state=state,
            evidence=evidence,
            model=model,
            objective=objective,
            active=state.active,
            rng=np.random.default_rng([s.seed, obs.ratings.value.size, len(obs.revisions)]),
            unit_var=unit_variance(obs, objective),
        )
        ctx.worthwhile = max(s.worthwhile_sd * math.sqrt(ctx.unit_var), s.min_effect)
        ctx.calibration = calibration_factor(state.history, s.interval_level)
        if s.calibrate_on_explorers:
            ctx.calibration = max(
                ctx.calibration,
                explorer_calibration(state.history, evidence, objective, ctx.unit_var),
            )
        if s.shrink_fresh:
            ctx.shrink = explorer_shrinkage(state.history, evidence, objective, ctx.unit_var)
        running = self._decide_arms(ctx)
        scored = self._score(ctx, running)
        self.favourite = None
        if scored is not None and scored.mean is not None:
            assert scored.blocked is not None and scored.too_slow is not None
            # What the loop could open: not blocked, and not slower than the guardrail allows.
            out = scored.blocked | scored.too_slow
            free = np.where(out, -np.inf, scored.mean - s.lower_quantile * scored.sd)
            best = int(np.argmax(free))
            self.favourite = cand.to_params(
                self.space, scored.pool.units[best], scored.active_params
            )
        running = self._supersede(ctx, running, scored)
        new_arms = self._open_arms(ctx, running, scored)
        traffic = self._traffic(ctx, running, new_arms)
        summary: dict[str, Any] = {"objective": objective}
        if model is not None:
            summary.update(model.summary())
        return Plan(
            active=ctx.active,
            decisions=tuple(ctx.decisions),
            open=tuple(new_arms),
            traffic=traffic,
            notes=tuple(ctx.notes),
            model=summary,
        )

    def _fit(self, evidence: Evidence, objective: dict[str, float]) -> Surrogate | None:
        if np.isfinite(evidence.mean).any(axis=1).sum() < 3:
            return None
        model = surrogate_fit(
            evidence,
            self.space,
            objective,
            stack=self.settings.stack,
            warm=self._warm,
            max_iter=self.settings.fit_iterations,
            length_scale=self.settings.length_prior_scale,
            stack_uncertainty=self.settings.stack_uncertainty,
        )
        return model

    # --- running arms --------------------------------------------------------------------------

    def _decide_arms(self, ctx: _Step) -> list[Arm]:
        """Decide every running arm; returns the arms that keep running."""
        promotions: list[tuple[float, Arm, ArmDecision]] = []
        keep: list[Arm] = []
        for arm in ctx.state.arms:
            if arm.role == "explorer":
                decision = self._decide_explorer(ctx, arm)
            else:
                decision = self._decide_challenger(ctx, arm)
            if decision.action == "promote":
                assert decision.effect is not None
                promotions.append((decision.effect.low, arm, decision))
                continue
            ctx.decisions.append(decision)
            if decision.action == "continue":
                keep.append(arm)
        if not promotions:
            return keep
        promotions.sort(key=lambda t: -t[0])
        _, winner, decision = promotions[0]
        ctx.decisions.append(decision)
        ctx.active = winner.revision
        for _, _arm, other in promotions[1:]:
            ctx.decisions.append(
                replace(
                    other,
                    action="drop",
                    outcome="superseded",
                    reason=f"also better than the control, but r{winner.revision} was "
                    f"promoted with the higher lower bound; {other.reason}",
                )
            )
        still: list[Arm] = []
        for arm in keep:
            if arm.role == "challenger":
                ctx.decisions[:] = [d for d in ctx.decisions if d.revision != arm.revision]
                ctx.decisions.append(
                    ArmDecision(
                        arm.revision,
                        "drop",
                        "superseded",
                        f"its control r{arm.control} was replaced by r{winner.revision}",
                    )
                )
            else:
                still.append(arm)
        return still

    def _decide_explorer(self, ctx: _Step, arm: Arm) -> ArmDecision:
        s = self.settings
        ev = ctx.evidence
        row = ev.row(arm.revision)
        reviews = int(ev.n_reviews[row]) if row >= 0 else 0
        failed = int(ev.n_failed[row]) if row >= 0 else 0
        if reviews == 0 and failed >= s.explorer_generations:
            return ArmDecision(
                arm.revision, "drop", "explored", f"explored: its {failed} generation(s) failed"
            )
        if reviews < s.explorer_reviews:
            return ArmDecision(
                arm.revision,
                "continue",
                "continue",
                f"exploring: {reviews} of {s.explorer_reviews} reviews",
            )
        effect = self._model_effect(ctx, arm.revision, ctx.active)
        text = f"explored: {reviews} reviews collected; its ratings stay in the model"
        if effect is not None:
            text += (
                f" (model: objective {effect.estimate:+.2f} [{effect.low:+.2f}, "
                f"{effect.high:+.2f}] vs r{ctx.active})"
            )
        return ArmDecision(arm.revision, "drop", "explored", text, effect=effect)

    def _decide_challenger(self, ctx: _Step, arm: Arm) -> ArmDecision:
        s = self.settings
        if arm.control != ctx.state.active:
            return ArmDecision(
                arm.revision,
                "drop",
                "superseded",
                f"its control r{arm.control} is no longer active",
            )
        decision = challenger_decision(
            ctx.obs, arm, ctx.objective, self.rules, prior_variance=ctx.unit_var
        )
        if decision.action != "continue" or decision.reason.startswith("waiting"):
            return decision
        # Quick futility on the test's own data: dropping never promotes anything, so it need
        # not be always-valid. Once the plain one-sided upper bound of the measured gain is
        # below the worthwhile gain, the rest of this test would buy little.
        e = decision.effect
        if e is not None and e.se is not None and math.isfinite(e.estimate):
            upper = e.estimate + _z(1 - 2 * (1 - s.quick_futility_level)) * e.se
            if upper < ctx.worthwhile:
                return replace(
                    decision,
                    action="drop",
                    outcome="futile",
                    reason=(
                        f"futile: measured {e.estimate:+.2f} ± {e.se:.2f}; a gain of "
                        f"{ctx.worthwhile:.2f} is unlikely ({s.quick_futility_level:.0%} upper "
                        f"bound {upper:+.2f}); {decision.reason}"
                    ),
                )
        model_effect = self._model_effect(ctx, arm.revision, arm.control)
        if model_effect is None:
            return decision
        sd = (model_effect.high - model_effect.low) / (2 * _z(model_effect.level))
        p_gain = _p_above(ctx.worthwhile, model_effect.estimate, sd)
        numbers = {**decision.numbers, "model_probability": float(p_gain)}
        if p_gain >= s.drop_probability:
            return replace(decision, numbers=numbers)
        return replace(
            decision,
            action="drop",
            outcome="model",
            numbers=numbers,
            reason=(
                f"the model, with this arm's own ratings, gives P(gain > "
                f"{ctx.worthwhile:.2f}) = {p_gain:.2f}: predicted "
                f"{model_effect.estimate:+.2f} [{model_effect.low:+.2f}, "
                f"{model_effect.high:+.2f}]; {decision.reason}"
            ),
        )

    def _difference(
        self, ctx: _Step, z: NDArray[np.float64], z0: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The model's objective gain over z0, its variance widened by the calibration."""
        assert ctx.model is not None
        mean, var = ctx.model.objective_difference(z, z0)
        return mean, var * ctx.calibration**2

    def _model_effect(self, ctx: _Step, revision: int, control: int) -> Interval | None:
        if ctx.model is None:
            return None
        revs = ctx.obs.revisions
        z = self.space.features([revs[revision]])
        z0 = self.space.features([revs[control]])
        mean, var = self._difference(ctx, z, z0)
        half = _z(self.settings.interval_level) * math.sqrt(float(var[0]))
        return Interval(
            float(mean[0]),
            float(mean[0]) - half,
            float(mean[0]) + half,
            self.settings.interval_level,
            calibration=ctx.calibration,
        )

    # --- candidates ----------------------------------------------------------------------------

    def _score(self, ctx: _Step, running: list[Arm]) -> _Scored | None:
        """The candidate pool around the (possibly new) active revision, scored by the model."""
        space, s = self.space, self.settings
        revs = ctx.obs.revisions
        active_params = space.complete(revs[ctx.active])
        active_units = space.to_unit(active_params)
        pool, moves = self._pool(ctx, active_units)
        if pool.units.shape[0] == 0:
            ctx.notes.append("no candidate differs from the active revision by a meaningful step")
            return None
        memory = tried_changes(space, list(ctx.state.history), revs)
        running_units = (
            np.array([space.to_unit(revs[a.revision]) for a in running])
            if running
            else np.zeros((0, len(space.tunable)))
        )
        scored = _Scored(
            pool=pool,
            moves=moves,
            memory=memory,
            active_params=active_params,
            active_units=active_units,
            busy=explored_before(space, pool.units, running_units),
        )
        if ctx.model is None:
            return scored
        z = space.unit_to_features(pool.units)
        z0 = space.unit_to_features(active_units[None, :])
        mean, var = self._difference(ctx, z, z0)
        scored.z, scored.mean, scored.sd = z, mean, np.sqrt(var)
        scored.p_gain = _p_above(s.min_effect, mean, scored.sd)
        repeat = repeats_failure(space, pool.units, active_units, memory)
        scored.retry = repeat & (scored.p_gain >= s.repeat_override_probability)
        scored.blocked = (repeat & ~scored.retry) | scored.busy
        scored.too_slow = self._time_ratio(ctx, z, z0) > s.max_generation_time_ratio / 1.1
        self._score_verified(ctx, scored, running, memory, z0)
        return scored

    def _score_verified(
        self,
        ctx: _Step,
        scored: _Scored,
        running: list[Arm],
        memory: list[Any],
        z0: NDArray[np.float64],
    ) -> None:
        s, space, ev = self.settings, self.space, ctx.evidence
        assert ctx.model is not None
        running_challengers = {a.revision for a in running if a.role == "challenger"}
        all_units = np.array([space.to_unit(p) for p in ev.params]).reshape(
            len(ev.params), len(space.tunable)
        )
        reviews_near = self._reviews_near(all_units, all_units, ev.n_reviews)
        rows = np.flatnonzero(
            (reviews_near >= s.verify_reviews)
            & (ev.revisions != ctx.active)
            & ~np.isin(ev.revisions, list(running_challengers))
        )
        units = all_units[rows]
        # Not the active configuration under another revision number.
        differs = np.any(np.abs(units - scored.active_units) >= space.unit_steps() - 1e-9, axis=1)
        rows, units = rows[differs], units[differs]
        _, first = np.unique(np.round(units, 9), axis=0, return_index=True)
        first.sort()
        rows, units = rows[first], units[first]
        scored.verified = rows
        if rows.size == 0:
            scored.verified_mean = scored.verified_sd = np.zeros(0)
            scored.verified_ok = np.zeros(0, dtype=bool)
            return
        z = space.unit_to_features(units)
        mean, var = self._difference(ctx, z, z0)
        sd = np.sqrt(var)
        p_gain = _p_above(s.min_effect, mean, sd)
        repeat = repeats_failure(space, units, scored.active_units, memory)
        retry = repeat & (p_gain >= s.repeat_override_probability)
        running_units = np.array(
            [
                space.to_unit(ctx.obs.revisions[a.revision])
                for a in running
                if a.role == "challenger"
            ]
        ).reshape(-1, len(space.tunable))
        busy = explored_before(space, units, running_units)
        slow = self._time_ratio(ctx, z, z0) > s.max_generation_time_ratio / 1.1
        scored.verified_mean, scored.verified_sd = mean, sd
        scored.verified_ok = (
            ~(repeat & ~retry)
            & ~busy
            & ~slow
            & (p_gain >= s.open_probability)
            & (mean >= ctx.worthwhile)
        )

    def _reviews_near(
        self,
        points: NDArray[np.float64],
        revisions: NDArray[np.float64],
        reviews: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Reviews of every revision within a meaningful step of each point (same config)."""
        steps = self.space.unit_steps()
        out = np.zeros(points.shape[0])
        for units, n in zip(revisions, reviews, strict=True):
            if n:
                out += n * np.all(np.abs(points - units) < steps - 1e-9, axis=1)
        return out

    def _challenger_score(self, scored: _Scored) -> NDArray[np.float64]:
        """Lower confidence bound of the gain, for each verified revision that may be tested."""
        assert scored.verified_mean is not None and scored.verified_sd is not None
        score = scored.verified_mean - self.settings.lower_quantile * scored.verified_sd
        return np.where(scored.verified_ok, score, -np.inf)

    def _supersede(self, ctx: _Step, running: list[Arm], scored: _Scored | None) -> list[Arm]:
        """Drop a running challenger the model now finds clearly worse than its best candidate.

        The best candidate is the best screened revision that could open as a challenger, or
        the model's favourite when it is sure enough of it to open it unscreened
        (`_unscreened_favourite`): a test of a small gain takes most of the traffic, so while it
        runs little gets screened, and without the favourite a small true gain could hold the
        test for the whole budget. Dropping never promotes anything, so it cannot raise the
        false-promotion rate; it frees the test for a bigger step instead of spending the
        budget confirming a small one.
        """
        s = self.settings
        if scored is None or ctx.model is None or scored.mean is None:
            return running
        # (mean, sd, what it is, a fresh prediction no review has touched)
        candidates: list[tuple[float, float, str, bool]] = []
        if scored.verified is not None and scored.verified.size:
            score = self._challenger_score(scored)
            best = int(np.argmax(score))
            if np.isfinite(score[best]):
                assert scored.verified_mean is not None and scored.verified_sd is not None
                revision = int(ctx.evidence.revisions[scored.verified[best]])
                candidates.append(
                    (
                        float(scored.verified_mean[best]),
                        float(scored.verified_sd[best]),
                        f"the screened r{revision}",
                        False,
                    )
                )
        favourite = self._unscreened_favourite(ctx, scored, [])
        if favourite is not None:
            assert scored.sd is not None
            candidates.append(
                (
                    ctx.shrink * float(scored.mean[favourite]),
                    float(scored.sd[favourite]),
                    "the model's unscreened favourite",
                    True,
                )
            )
        if not candidates:
            return running
        means = np.array([c[0] for c in candidates])
        sds = np.array([c[1] for c in candidates])
        keep = []
        for arm in running:
            if arm.role != "challenger":
                keep.append(arm)
                continue
            effect = self._model_effect(ctx, arm.revision, ctx.active)
            if effect is None:
                keep.append(arm)
                continue
            sd_arm = (effect.high - effect.low) / (2 * _z(effect.level))
            p = scipy.stats.norm.cdf(
                (means - effect.estimate - s.min_effect) / np.hypot(sd_arm, sds)
            )
            best = int(np.argmax(p))
            p_better = float(p[best])
            best_mean, best_sd, what, _ = candidates[best]
            test = next((d for d in ctx.decisions if d.revision == arm.revision), None)
            why = (
                f"superseded: the model predicts {effect.estimate:+.2f} [{effect.low:+.2f}, "
                f"{effect.high:+.2f}] for it with its own ratings, and {best_mean:+.2f} "
                f"± {best_sd:.2f} for {what} (P(better by "
                f"{s.min_effect:.2f}) = {p_better:.2f})"
            )
            if p_better < s.supersede_probability:
                sooner = (
                    self._preempt_reason(ctx, arm, effect, test, candidates)
                    if s.preempt_sooner
                    else None
                )
                if sooner is None:
                    keep.append(arm)
                    continue
                why = sooner
            ctx.decisions[:] = [d for d in ctx.decisions if d.revision != arm.revision]
            ctx.decisions.append(
                ArmDecision(
                    arm.revision,
                    "drop",
                    "model",
                    why,
                    effect=effect,
                    n_arm=test.n_arm if test else 0,
                    n_control=test.n_control if test else 0,
                    numbers=test.numbers if test else {},
                )
            )
        return keep

    def _preempt_reason(
        self,
        ctx: _Step,
        arm: Arm,
        effect: Interval,
        test: ArmDecision | None,
        candidates: list[tuple[float, float, str, bool]],
    ) -> str | None:
        """Why the running challenger should give way to a candidate confirmed sooner, or None.

        The running test needs, for the gain the model now gives the arm (with its own
        ratings), the information until its statistic is expected to reach the boundary from
        where it stands; a new test of the candidate needs its whole course for the candidate's
        predicted gain. When the candidate is predicted at least as good (P >=
        `preempt_probability`, 0.5 by default) and its
        whole test (never less than `min_generations` per arm) is expected to take
        `preempt_margin` times less, switching holds the bigger gain sooner at every horizon.
        A fresh prediction (the unscreened favourite) is first shrunk by what explorers
        measured on what was predicted for them, since the best of many predictions is
        optimistic."""
        s = self.settings
        if test is None or test.action != "continue" or not test.numbers:
            return None
        if test.n_arm < s.preempt_min_generations:
            return None
        information = float(test.numbers.get("information", 0.0))
        difference = float(test.numbers.get("difference", math.nan))
        if information <= 0 or not math.isfinite(difference):
            return None
        alpha = arm.alpha or s.alpha
        remaining = (
            information_to_cross(
                effect.estimate,
                arm.mixture or mixture_for_effect(0.5),
                alpha,
                difference=difference,
                information=information,
            )
            - information
        )
        shrink = explorer_shrinkage(ctx.state.history, ctx.evidence, ctx.objective, ctx.unit_var)
        sd_arm = (effect.high - effect.low) / (2 * _z(effect.level))
        for mean, sd, what, fresh in candidates:
            gain = mean * shrink if fresh and not s.shrink_fresh else mean  # else shrunk already
            if gain < ctx.worthwhile:
                continue
            p_better = scipy.stats.norm.cdf((gain - effect.estimate) / math.hypot(sd_arm, sd))
            if p_better < s.preempt_probability:
                continue
            # No test decides before `min_generations` per arm: at least the information the
            # running test had per generation of its arm, that many times.
            need = max(
                information_to_cross(gain, mixture_for_effect(gain), alpha),
                information * s.min_generations / max(test.n_arm, 1),
            )
            if s.preempt_margin * need < remaining:
                return (
                    f"pre-empted: its test, at {difference:+.2f} after information "
                    f"{information:.0f}, would need about {remaining:.0f} more to confirm the "
                    f"{effect.estimate:+.2f} the model now gives it; a test of {what} "
                    f"(predicted {gain:+.2f} ± {sd:.2f}) about {need:.0f} in all"
                )
        return None

    # --- new arms ------------------------------------------------------------------------------

    def _open_arms(self, ctx: _Step, running: list[Arm], scored: _Scored | None) -> list[NewArm]:
        s, space = self.settings, self.space
        n_challengers = sum(a.role == "challenger" for a in running)
        n_explorers = sum(a.role == "explorer" for a in running)
        want_challengers = max(s.max_challengers - n_challengers, 0)
        want_explorers = max(s.explorers - n_explorers, 0)
        if scored is None or (not want_challengers and not want_explorers):
            return []
        pool = scored.pool
        out: list[NewArm] = []
        if ctx.model is None or scored.mean is None:
            # No model yet: explorers spread over local changes of the active revision.
            local = [i for i, o in enumerate(pool.origin) if o.startswith("local")]
            order = ctx.rng.permutation(local)
            for i in order[:want_explorers]:
                out.append(self._new_arm(ctx, scored, pool.units[i], pool.origin[i], "explorer"))
            return out
        assert scored.blocked is not None and scored.sd is not None
        blocked = scored.blocked.copy()
        if want_challengers and ctx.model.n_revisions < s.min_model_revisions:
            ctx.notes.append(
                f"no challenger yet: the model has {ctx.model.n_revisions} revisions with ratings "
                f"(needs {s.min_model_revisions})"
            )
            want_challengers = 0
        if want_challengers:
            out.extend(self._open_challengers(ctx, scored, running, want_challengers))
            if out:
                opened = np.array([space.to_unit(a.params) for a in out])
                blocked |= explored_before(space, pool.units, opened)
        if want_explorers:
            tried_units = np.array([space.to_unit(p) for p in ctx.evidence.params])
            fresh = ~blocked & ~explored_before(space, pool.units, tried_units) & ~scored.too_slow
            chosen: list[int] = []
            # Tried configurations compete too: Thompson sampling sends more reviews to one
            # exactly as often as it is probably the best, which is how it gets screened.
            revisit = ~blocked & explored_before(space, pool.units, tried_units) & ~scored.too_slow
            # The model's favourite (best lower bound) first, when nothing near it has data yet:
            # screening it is how it can become a challenger.
            favourite = np.where(fresh, scored.mean - s.lower_quantile * scored.sd, -np.inf)
            best = int(np.argmax(favourite))
            if np.isfinite(favourite[best]) and scored.mean[best] >= ctx.worthwhile:
                chosen.append(best)
                fresh[best] = False
            chosen += self._thompson(
                ctx, scored, np.flatnonzero(fresh | revisit), want_explorers - len(chosen)
            )
            for i in chosen[:want_explorers]:
                out.append(self._new_arm(ctx, scored, pool.units[i], pool.origin[i], "explorer"))
        return out

    def _open_challengers(
        self, ctx: _Step, scored: _Scored, running: list[Arm], want: int
    ) -> list[NewArm]:
        """Challengers from the screened revisions, best lower confidence bound first."""
        s, space, ev = self.settings, self.space, ctx.evidence
        assert scored.verified is not None and scored.verified_mean is not None
        assert scored.verified_sd is not None
        out: list[NewArm] = []
        score = self._challenger_score(scored)
        running_explorers = {a.revision for a in running if a.role == "explorer"}
        # Bonferroni over the challengers that can run at once: each arm's test is at
        # alpha / max_challengers, so an experiment (a batch of arms against one control)
        # promotes a not-better arm with probability <= alpha (`split_alpha`).
        alpha = s.alpha / max(s.max_challengers, 1) if s.split_alpha else s.alpha
        for _ in range(want):
            if score.size == 0 or not np.isfinite(score.max()):
                favourite = self._unscreened_favourite(ctx, scored, out)
                if favourite is not None:
                    gain = ctx.shrink * float(scored.mean[favourite])
                    rho = mixture_for_effect(max(gain, s.min_effect))
                    out.append(
                        self._new_arm(
                            ctx,
                            scored,
                            scored.pool.units[favourite],
                            FAVOURITE + scored.pool.origin[favourite],
                            "challenger",
                            alpha,
                            rho,
                            shrink=ctx.shrink,
                        )
                    )
                    continue
                if scored.verified.size:
                    i = int(np.argmax(scored.verified_mean))
                    ctx.notes.append(
                        f"no challenger: the best screened revision "
                        f"r{int(ev.revisions[scored.verified[i]])} is predicted "
                        f"{scored.verified_mean[i]:+.2f} ± {scored.verified_sd[i]:.2f} "
                        f"(needs {ctx.worthwhile:+.2f} and P(gain > {s.min_effect:.2f}) >= "
                        f"{s.open_probability:.2f})"
                    )
                else:
                    ctx.notes.append("no challenger: no revision has been screened yet")
                break
            i = int(np.argmax(score))
            row = int(scored.verified[i])
            units = space.to_unit(ev.params[row])
            revision = int(ev.revisions[row])
            rho = mixture_for_effect(max(float(scored.verified_mean[i]), s.min_effect))
            out.append(
                self._new_arm(ctx, scored, units, f"screened:r{revision}", "challenger", alpha, rho)
            )
            if revision in running_explorers:
                ctx.decisions[:] = [d for d in ctx.decisions if d.revision != revision]
                ctx.decisions.append(
                    ArmDecision(
                        revision,
                        "drop",
                        "explored",
                        "screened: its parameters now run as a challenger with a fresh test",
                    )
                )
            near = np.all(
                np.abs(np.array([space.to_unit(ev.params[r]) for r in scored.verified]) - units)
                < space.unit_steps(),
                axis=1,
            )
            score[near] = -np.inf
        return out

    def _unscreened_favourite(
        self, ctx: _Step, scored: _Scored, opening: Sequence[NewArm]
    ) -> int | None:
        """The pool's best lower bound, when the model is sure enough of it without screening.

        Its gain must be at least worthwhile with P(gain > min_effect) >= the stricter
        `open_unscreened_probability`; the model's favourite is usually a fresh optimum of its
        mean that no review has touched, so it would otherwise wait for screening that never
        settles on one point."""
        s = self.settings
        if s.open_unscreened_probability >= 1 or scored.mean is None or scored.p_gain is None:
            return None
        assert scored.blocked is not None and scored.too_slow is not None and scored.sd is not None
        mean = ctx.shrink * scored.mean
        p_gain = _p_above(s.min_effect, mean, scored.sd)
        ok = (
            ~scored.blocked
            & ~scored.too_slow
            & (p_gain >= s.open_unscreened_probability)
            & (mean >= ctx.worthwhile)
        )
        if opening:
            opened = np.array([self.space.to_unit(a.params) for a in opening])
            ok &= ~explored_before(self.space, scored.pool.units, opened)
        if not ok.any():
            return None
        score = np.where(ok, mean - s.lower_quantile * scored.sd, -np.inf)
        return int(np.argmax(score))

    def _thompson(self, ctx: _Step, scored: _Scored, idx: NDArray[np.int64], k: int) -> list[int]:
        """Up to k distinct candidates, each the argmax of one joint posterior draw."""
        s, space = self.settings, self.space
        if idx.size == 0 or ctx.model is None or scored.z is None:
            return []
        # A subset keeps the joint draw cheap: the most promising by optimism plus random ones.
        ucb = scored.mean[idx] + 2.0 * scored.sd[idx]
        top = idx[np.argsort(-ucb)[: s.thompson_pool // 2]]
        rest = np.setdiff1d(idx, top)
        extra = (
            ctx.rng.choice(rest, min(rest.size, s.thompson_pool // 2), replace=False)
            if rest.size
            else np.zeros(0, dtype=int)
        )
        subset = np.concatenate([top, extra]).astype(int)
        draws = ctx.model.objective_samples(scored.z[subset], k * 3, ctx.rng)
        steps = space.unit_steps()
        chosen: list[int] = []
        for draw in draws:
            for i in subset[np.argsort(-draw)]:
                if i in chosen:
                    continue
                if chosen and np.any(
                    np.all(np.abs(scored.pool.units[chosen] - scored.pool.units[i]) < steps, axis=1)
                ):
                    continue
                chosen.append(int(i))
                break
            if len(chosen) >= k:
                break
        return chosen

    def _pool(self, ctx: _Step, active_units: NDArray[np.float64]) -> tuple[cand.Pool, list[Move]]:
        s, space, rng = self.settings, self.space, ctx.rng
        blocks: list[tuple[NDArray[np.float64], Any]] = [
            (cand.uniform(space, s.n_global, rng), "global"),
        ]
        # Several step sizes: the model, not a fixed radius, decides how far is worth going.
        radii = (s.local_radius / 4, s.local_radius / 2, s.local_radius, s.local_radius * 2)
        for radius in radii:
            blocks.append(
                (
                    cand.local(
                        space,
                        active_units,
                        s.n_local // 2 // len(radii),
                        radius,
                        rng,
                        mean_changes=s.local_changes,
                    ),
                    "local:active",
                )
            )
        if ctx.model is not None:
            # Anchors: the revisions the model rates best (where the optimum probably is).
            x = space.features(ctx.evidence.params)
            mean, _ = ctx.model.objective(x)
            has_data = np.isfinite(ctx.evidence.mean).any(axis=1)
            ranked = [i for i in np.argsort(-mean) if has_data[i]]
            # The best tried configurations themselves, so that they can be re-sampled.
            tried = ranked[: s.revisit_candidates]
            if tried:
                blocks.append(
                    (
                        np.array([space.to_unit(ctx.evidence.params[i]) for i in tried]),
                        [f"tried:r{int(ctx.evidence.revisions[i])}" for i in tried],
                    )
                )
            order = ranked[:3]
            per = max(s.n_local // 2 // max(len(order), 1) // len(radii), 1)
            for i in order:
                anchor = space.to_unit(ctx.evidence.params[i])
                for radius in radii:
                    blocks.append(
                        (
                            cand.local(
                                space, anchor, per, radius, rng, mean_changes=s.local_changes
                            ),
                            f"local:r{int(ctx.evidence.revisions[i])}",
                        )
                    )
        moves = self._hint_moves(ctx)
        if moves:
            units, origin = cand.targeted(space, active_units, moves)
            blocks.append((units, origin))
        pool = cand.build_pool(space, blocks, active_units)
        if ctx.model is not None and pool.units.shape[0]:
            pool = self._refine(ctx, pool, active_units)
        return pool, moves

    def _refine(self, ctx: _Step, pool: cand.Pool, active_units: NDArray[np.float64]) -> cand.Pool:
        """Add coordinate-ascent optima of the model's mean, started from the best candidates."""
        s, space, model = self.settings, self.space, ctx.model
        assert model is not None

        def score(units: NDArray[np.float64]) -> NDArray[np.float64]:
            return model.objective_mean(space.unit_to_features(units))

        mean = score(pool.units)
        starts = [pool.units[i] for i in np.argsort(-mean)[: s.ascent_starts]]
        refined = [cand.coordinate_ascent(space, score, x) for x in [active_units, *starts]]
        extra = np.array(refined)
        # Also half-way points: the full move is often an extrapolation the model is unsure of.
        extra = np.vstack([extra, (extra + active_units) / 2])
        return cand.build_pool(space, [(pool.units, pool.origin), (extra, "refined")], active_units)

    def _hint_moves(self, ctx: _Step) -> list[Move]:
        """Moves suggested by frequent issue reports on the active revision, and by its weakest
        dimension (through x-affects)."""
        s, ev = self.settings, ctx.evidence
        row = ev.row(ctx.active)
        if row < 0 or ev.n_reviews[row] < 3:
            return []
        moves: list[Move] = []
        reviews = ev.n_reviews[row]
        for signal, counts in ev.signals.items():
            if counts[row] >= 3 and counts[row] / reviews >= s.issue_rate_for_hint:
                notes = ()
                if signal.startswith("other:"):
                    word = signal.split(":", 1)[1]
                    notes = tuple(
                        n
                        for c, n in zip(ctx.obs.issues.category, ctx.obs.issues.note, strict=True)
                        if word in n.lower()
                    )
                moves.extend(moves_for_signal(self.space, signal, bad=True, notes=notes))
        means = ev.mean[row]
        if np.isfinite(means).any():
            weakest = ev.dimensions[int(np.nanargmin(means))]
            moves.extend(moves_for_signal(self.space, weakest, bad=False))
        return moves

    def _time_ratio(
        self, ctx: _Step, z: NDArray[np.float64], z0: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        if ctx.model is None or "time" not in ctx.model.outputs:
            return np.ones(z.shape[0])
        mean, _ = ctx.model.output_difference("time", z, z0)
        return np.exp(mean)

    def _new_arm(
        self,
        ctx: _Step,
        scored: _Scored,
        units: NDArray[np.float64],
        origin: str,
        role: str,
        alpha: float | None = None,
        rho: float | None = None,
        shrink: float = 1.0,
    ) -> NewArm:
        """A new arm at `units`; its predicted gain is the model's, times `shrink`."""
        space, s = self.space, self.settings
        active_params = scored.active_params
        retried = bool(
            repeats_failure(space, units[None, :], scored.active_units, scored.memory)[0]
        )
        params = cand.to_params(space, units, active_params)
        changes = space.changes(active_params, params)
        predicted = Interval(0.0, -math.inf, math.inf, s.interval_level)
        evidence: dict[str, Any] = {"origin": origin, "role": role}
        lines: list[str] = []
        change_text = ", ".join(
            f"{k} {space.describe_value(k, a)} → {space.describe_value(k, b)}"
            for k, (a, b) in changes.items()
        )
        kind = "Challenger" if role == "challenger" else "Exploration arm"
        lines.append(f"{kind}: {change_text}.")
        if ctx.model is not None:
            z = space.features([params])
            z0 = space.features([active_params])
            mean, var = self._difference(ctx, z, z0)
            mean = mean * shrink
            half = _z(s.interval_level) * math.sqrt(float(var[0]))
            predicted = Interval(
                float(mean[0]),
                float(mean[0]) - half,
                float(mean[0]) + half,
                s.interval_level,
                calibration=ctx.calibration,
            )
            objective_name = " + ".join(
                f"{w:.2g}×{d}" if len(ctx.objective) > 1 else d for d, w in ctx.objective.items()
            )
            lines.append(
                f"The model ({ctx.model.n_revisions} revisions, "
                f"{ctx.obs.ratings.value.size} ratings) predicts {objective_name} "
                f"{predicted.estimate:+.2f} [{predicted.low:+.2f}, {predicted.high:+.2f}] "
                f"({s.interval_level:.0%}) against r{ctx.active}."
            )
            if shrink < 1:
                lines.append(
                    f"That is its mean times {shrink:.2f}: what closed exploration arms measured, "
                    "against what the model predicted for them, says its fresh predictions are "
                    "optimistic by that much."
                )
            dims = {}
            for d in ctx.evidence.dimensions:
                if d in ctx.model.outputs:
                    m, v = ctx.model.output_difference(d, z, z0)
                    dims[d] = {
                        "predicted_change": round(float(m[0]), 3),
                        "sd": round(math.sqrt(float(v[0])), 3),
                    }
            evidence["dimensions"] = dims
            moved = sorted(dims.items(), key=lambda kv: -abs(kv[1]["predicted_change"]))[:3]
            if moved:
                lines.append(
                    "Dimensions: "
                    + ", ".join(f"{d} {v['predicted_change']:+.2f}" for d, v in moved)
                    + "."
                )
            issues = self._issue_evidence(ctx, z, z0)
            if issues:
                evidence["issues"] = issues
                lines.append(
                    "Issue reports: "
                    + "; ".join(
                        f"{i['signal']} on {i['active_rate']:.0%} of r{ctx.active}'s "
                        f"{i['reviews']} reviews (95% {i['active_rate_interval'][0]:.0%}–"
                        f"{i['active_rate_interval'][1]:.0%}), "
                        f"predicted {i['predicted_change']:+.0%}"
                        for i in issues[:3]
                    )
                    + "."
                )
            evidence["model"] = {
                "predicted": predicted.as_dict(),
                "revisions": ctx.model.n_revisions,
            }
            if "time" in ctx.model.outputs:
                m, _ = ctx.model.output_difference("time", z, z0)
                evidence["generation_time_ratio"] = round(float(np.exp(m[0])), 3)
        hints = [m for m in scored.moves if m.param in changes]
        if hints and origin.removeprefix(FAVOURITE).startswith("targeted"):
            evidence["hints"] = [
                {"param": m.param, "signal": m.signal, "source": m.source} for m in hints
            ]
            lines.append(
                "Suggested by: "
                + ", ".join(f"{m.signal} ({m.source}) → {m.param}" for m in hints[:3])
                + "."
            )
        past = self._past_evidence(changes, scored.memory)
        if past:
            evidence["past_experiments"] = past
            lines.append(
                "Past experiments on these parameters: "
                + "; ".join(
                    f"r{p['revision']} ({p['outcome']}, measured {p['measured']})" for p in past[:3]
                )
                + "."
            )
        if retried:
            lines.append(
                "This repeats a change that failed before; the model now gives it "
                f"P(gain > {s.min_effect:.2f}) >= {s.repeat_override_probability:.2f}."
            )
        if role == "challenger" and origin.startswith(FAVOURITE) and ctx.model is not None:
            lines.append(
                f"Not screened: the model's favourite, with P(gain > {s.min_effect:.2f}) >= "
                f"{s.open_unscreened_probability:.2f} from {ctx.model.n_revisions} revisions."
            )
        if role == "challenger":
            lines.append(
                f"Tested against r{ctx.active} with an always-valid sequence at alpha {alpha:.4f}."
            )
        key = f"new-{ctx.obs.ratings.value.size}-{role}-{abs(hash(tuple(units.round(6)))) % 10**8}"
        return NewArm(
            key=key,
            params=params,
            role=role,  # type: ignore[arg-type]
            control=ctx.active,
            alpha=float(alpha or 0.0),
            mixture=float(rho or 0.0),
            predicted=predicted,
            rationale=" ".join(lines),
            evidence=evidence,
            changes=changes,
            max_generations=s.explorer_generations if role == "explorer" else None,
        )

    def _issue_evidence(
        self, ctx: _Step, z: NDArray[np.float64], z0: NDArray[np.float64]
    ) -> list[dict[str, Any]]:
        ev, model = ctx.evidence, ctx.model
        assert model is not None
        row = ev.row(ctx.active)
        out = []
        for name, output in model.outputs.items():
            if output.kind != "signal":
                continue
            signal = name.split(":", 1)[1]
            m, _ = model.output_difference(name, z, z0)
            reporting = int(ev.signals[signal][row]) if row >= 0 else 0
            reviews = int(ev.n_reviews[row]) if row >= 0 else 0
            rate = reporting / reviews if reviews else 0.0
            if rate >= 0.05 and m[0] < -0.02:
                low, high = wilson_interval(min(reporting, reviews), reviews)
                out.append(
                    {
                        "signal": signal,
                        "active_rate": round(rate, 3),
                        "active_rate_interval": [round(low, 3), round(high, 3)],
                        "reviews": reviews,
                        "predicted_change": round(float(m[0]), 3),
                    }
                )
        return sorted(out, key=lambda i: i["predicted_change"])

    def _past_evidence(
        self, changes: Mapping[str, Any], memory: Sequence[Any]
    ) -> list[dict[str, Any]]:
        out = []
        for m in memory:
            if m.arm.role != "challenger":
                continue
            revs_params = set(
                self.space.tunable_names[j]
                for j in np.flatnonzero(np.abs(m.units - m.control_units) > 1e-9)
            )
            overlap = revs_params & set(changes)
            if not overlap:
                continue
            measured = (
                (
                    f"{m.arm.effect.estimate:+.2f} [{m.arm.effect.low:+.2f}, "
                    f"{m.arm.effect.high:+.2f}]"
                )
                if m.arm.effect
                else "n/a"
            )
            out.append(
                {
                    "revision": m.arm.revision,
                    "outcome": m.arm.outcome,
                    "parameters": sorted(overlap),
                    "measured": measured,
                }
            )
        return sorted(out, key=lambda p: -len(p["parameters"]))

    # --- traffic -------------------------------------------------------------------------------

    def _traffic(
        self, ctx: _Step, running: list[Arm], new_arms: list[NewArm]
    ) -> dict[int | str, float]:
        s = self.settings
        challengers: list[tuple[int | str, float, float]] = []
        explorers: list[int | str] = []
        expected: list[float] = []  # the model's expected gain of each challenger
        for arm in running:
            if arm.role == "challenger":
                d = next((d for d in ctx.decisions if d.revision == arm.revision), None)
                mean, sd = 0.0, 1.0
                if d is not None and d.effect is not None and d.numbers.get("information"):
                    mean = d.effect.estimate if math.isfinite(d.effect.estimate) else 0.0
                    sd = 1 / math.sqrt(d.numbers["information"])
                elif arm.predicted is not None and math.isfinite(arm.predicted.estimate):
                    mean = arm.predicted.estimate
                challengers.append((arm.revision, mean, sd))
                model = self._model_effect(ctx, arm.revision, ctx.active)
                expected.append(model.estimate if model is not None else mean)
            else:
                explorers.append(arm.revision)
        for arm in new_arms:
            if arm.role == "challenger":
                sd = (arm.predicted.high - arm.predicted.low) / (2 * _z(s.interval_level))
                challengers.append(
                    (arm.key, arm.predicted.estimate, sd if math.isfinite(sd) else 1.0)
                )
                expected.append(arm.predicted.estimate)
            else:
                explorers.append(arm.key)
        return traffic_shares(
            ctx.active,
            challengers,
            explorers,
            testing_share=self._testing_share(ctx, expected),
            idle_control_share=s.idle_control_share,
            rng=ctx.rng,
            control_ahead=self._control_ahead(ctx, [c[0] for c in challengers]),
        )

    def _control_ahead(self, ctx: _Step, challengers: Sequence[int | str]) -> bool:
        """Whether the control already has more test data than the Dunnett allocation asks for
        (sqrt(k) times a challenger's), thanks to its history: then new traffic is better spent
        on the challengers."""
        if not challengers or self.settings.control_history <= 0:
            return False
        tested = [d for d in ctx.decisions if d.revision in challengers and d.action == "continue"]
        n_arm = max((d.n_arm for d in tested), default=0)
        if tested:
            n_control = max(d.n_control for d in tested)
        else:
            g = ctx.obs.generations
            rated = np.isin(g.id, ctx.obs.ratings.generation) & (g.revision == ctx.active)
            n_control = min(int(rated.sum()), self.settings.control_history)
        return n_control > math.sqrt(len(challengers)) * n_arm

    def _testing_share(self, ctx: _Step, expected: Sequence[float]) -> float:
        """Traffic for the test: most of it when the model expects a big gain (the test will be
        short and the gain is worth having soon), less for a modest one (the test is long, and
        exploration may meanwhile find a bigger step that supersedes it)."""
        s = self.settings
        if not expected:
            return s.testing_share
        gain = max(max(expected), 0.0)
        share = gain / (gain + 2.0 * ctx.worthwhile) if gain > 0 else 0.0
        return float(min(max(share, s.min_testing_share), s.testing_share))


# Pseudo-observations at z^2 = 1 in the calibration: a few challengers should not swing it.
_CALIBRATION_PRIOR = 3.0
_CALIBRATION_RANGE = (1.0, 3.0)


def calibration_factor(history: Sequence[Arm], level: float) -> float:
    """How much wider the model's intervals must be, learnt from past challengers.

    Each closed challenger compares the model's prediction when it opened with what its test
    measured: z = (measured - predicted) / sqrt(sd_predicted^2 + se_measured^2). If the model
    is calibrated, E[z^2] = 1; the factor is sqrt of the mean z^2 (with `_CALIBRATION_PRIOR`
    pseudo-observations at 1), never below 1. Selection makes the chosen candidates' predictions
    optimistic (the optimiser's curse), and this is where that shows and gets corrected.
    """
    zs = []
    for arm in history:
        p, e = arm.predicted, arm.effect
        if arm.role != "challenger" or p is None or e is None or e.se is None:
            continue
        if not (math.isfinite(p.low) and math.isfinite(p.high) and math.isfinite(e.estimate)):
            continue
        sd = (p.high - p.low) / (2 * _z(p.level)) / p.calibration  # the model's own sd
        zs.append((e.estimate - p.estimate) ** 2 / (sd * sd + e.se * e.se))
    mean_sq = (sum(zs) + _CALIBRATION_PRIOR) / (len(zs) + _CALIBRATION_PRIOR)
    return float(min(max(math.sqrt(mean_sq), _CALIBRATION_RANGE[0]), _CALIBRATION_RANGE[1]))


# Pseudo-explorers at a ratio of 1 in the explorers' calibration.
_EXPLORER_CALIBRATION_PRIOR = 5.0


@dataclass(frozen=True)
class _ExplorerRecord:
    """A closed explorer: the model's prediction when it opened, and what its reviews measured."""

    predicted: float
    sd: float  # the model's own standard deviation (without the calibration factor)
    measured: float
    measured_var: float  # sampling variance of `measured`


def _closed_explorers(
    history: Sequence[Arm], evidence: Evidence, objective: Mapping[str, float], unit_var: float
) -> list[_ExplorerRecord]:
    """Each closed explorer's prediction against its objective mean minus its control's (both
    bias-corrected), with that difference's sampling variance `unit_var` over each revision's
    rated generations."""
    w = np.array([objective.get(d, 0.0) for d in evidence.dimensions])
    cols = w > 0
    out = []
    for arm in history:
        p = arm.predicted
        if arm.role != "explorer" or p is None:
            continue
        if not (math.isfinite(p.low) and math.isfinite(p.high) and p.high > p.low):
            continue
        row, control = evidence.row(arm.revision), evidence.row(arm.control)
        if row < 0 or control < 0:
            continue
        means = evidence.mean[[row, control]][:, cols]
        gens = evidence.n_rated_generations[[row, control]]
        if not np.all(np.isfinite(means)) or np.any(gens <= 0):
            continue
        out.append(
            _ExplorerRecord(
                predicted=p.estimate,
                sd=(p.high - p.low) / (2 * _z(p.level)) / p.calibration,
                measured=float((means[0] - means[1]) @ w[cols]),
                measured_var=unit_var * float(np.sum(1.0 / gens)),
            )
        )
    return out


def explorer_calibration(
    history: Sequence[Arm], evidence: Evidence, objective: Mapping[str, float], unit_var: float
) -> float:
    """How much wider the model's intervals must be, learnt from closed explorers.

    An explorer's prediction was made before any of its reviews. The model's own error variance
    is E[(measured - predicted)^2] - the measurement's variance (a moment estimate: a single
    generation's se is larger than the model's sd, so dividing by sd^2 + se^2 as for challengers
    would hide it); the factor is sqrt of its ratio to the model's predicted variance, never
    below 1."""
    records = _closed_explorers(history, evidence, objective, unit_var)
    if not records:
        return 1.0
    excess = sum((r.measured - r.predicted) ** 2 - r.measured_var for r in records)
    predicted = sum(r.sd * r.sd for r in records)
    prior = _EXPLORER_CALIBRATION_PRIOR * predicted / len(records)
    ratio = (excess + prior) / (predicted + prior)
    return float(min(max(math.sqrt(max(ratio, 0.0)), _CALIBRATION_RANGE[0]), _CALIBRATION_RANGE[1]))


# The shrinkage's prior: slope 1 (the model is right on average), worth this many explorers.
_SHRINKAGE_PRIOR = 5.0
_SHRINKAGE_RANGE = (0.25, 1.0)


def explorer_shrinkage(
    history: Sequence[Arm], evidence: Evidence, objective: Mapping[str, float], unit_var: float
) -> float:
    """How much of a fresh prediction the loop's data says to believe, learnt from explorers.

    The slope of what closed explorers measured on what the model predicted for them when they
    opened (a regression through the origin, each explorer weighted by one over its measurement
    variance plus the model's variance, with a prior slope of 1 worth `_SHRINKAGE_PRIOR`
    explorers), within `_SHRINKAGE_RANGE`. A model that is right on average at new
    configurations gives 1; one whose best-looking candidates are optimistic (its lengthscales
    too long, the optimiser's curse) gives less, and its favourite's predicted gain is scaled
    by that before it may open untested or pre-empt a running test."""
    records = _closed_explorers(history, evidence, objective, unit_var)
    if not records:
        return 1.0
    weights = np.array([1.0 / (r.measured_var + r.sd * r.sd) for r in records])
    predicted = np.array([r.predicted for r in records])
    measured = np.array([r.measured for r in records])
    information = weights * predicted * predicted
    prior = _SHRINKAGE_PRIOR * float(information.mean())
    slope = (prior + float(np.sum(weights * predicted * measured))) / (
        prior + float(information.sum())
    )
    return float(min(max(slope, _SHRINKAGE_RANGE[0]), _SHRINKAGE_RANGE[1]))


def _z(level: float) -> float:
    return float(scipy.stats.norm.ppf(0.5 + level / 2))


def _p_above(threshold: float, mean: Any, sd: Any) -> Any:
    """P(gain > threshold) for a normal predicted gain (elementwise over arrays)."""
    return 1 - scipy.stats.norm.cdf((threshold - mean) / sd)
