"""The statistical decision on one challenger: guardrails, promotion, futility.

Only this function can promote, and it looks only at the challenger's own test data (generations
created after it opened, against the control's - concurrent, plus its recent history when
`control_history` allows - with reviewer offsets frozen at opening):

1. a guardrail breach (failure rate, generation time, issue-report rate; `improvements.stats`
   guardrails, themselves always-valid for the rates) drops it;
2. nothing is decided before `min_generations` rated generations per arm;
3. promote when the always-valid lower bound of objective(arm) - objective(control) is > 0 at
   the arm's own alpha (`sequential_test`);
4. drop as worse when the upper bound (at `futility_alpha`) is < 0, as futile when it is below
   `min_effect`.

The policy may drop a challenger earlier on the model's word (`policy`); dropping never
promotes, so the false-promotion guarantee rests on this module alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from improvements.search.arm_data import arm_data
from improvements.search.observations import Arm, ArmDecision, Interval, Observations
from improvements.search.sequential_test import compare, mixture_for_effect
from improvements.stats import guardrails


@dataclass(frozen=True)
class DecisionRules:
    alpha: float = 0.05  # used when the arm carries none
    futility_alpha: float = 0.10
    min_effect: float = 0.1
    min_generations: int = 8
    # The control's generations from before the arm opened that join its test data (see
    # `arm_data`); 0: a purely concurrent control.
    control_history: int = 0
    max_failure_rate_increase: float = 0.10
    max_generation_time_ratio: float = 1.5
    max_issue_rate_increase: float = 0.25


def challenger_decision(
    obs: Observations,
    arm: Arm,
    objective: Mapping[str, float],
    rules: DecisionRules,
    *,
    prior_variance: float,
) -> ArmDecision:
    n_history = rules.control_history if arm.control_history is None else arm.control_history
    data = arm_data(obs, arm, objective, n_history)
    alpha = arm.alpha or rules.alpha
    cmp = compare(
        data.arm_values,
        data.control_values,
        alpha=alpha,
        futility_alpha=rules.futility_alpha,
        rho=arm.mixture or mixture_for_effect(0.5),
        prior_variance=prior_variance,
        arm_weights=data.arm_weights,
        control_weights=data.control_weights,
    )
    effect = None
    if math.isfinite(cmp.lower) and math.isfinite(cmp.upper):
        effect = Interval(
            cmp.difference, cmp.lower, cmp.upper, 1 - alpha, se=1.0 / math.sqrt(cmp.information)
        )
    numbers = {
        "difference": cmp.difference,
        "information": cmp.information,
        "arm_mean": cmp.arm_mean,
        "control_mean": cmp.control_mean,
        "alpha": alpha,
        "futility_alpha": rules.futility_alpha,
    }

    def decision(action: str, outcome: str, reason: str) -> ArmDecision:
        return ArmDecision(
            arm.revision,
            action,
            outcome,
            reason,
            effect,  # type: ignore[arg-type]
            cmp.n_arm,
            cmp.n_control,
            numbers,
        )

    breaches = guardrails(
        data.arm_counts,
        data.control_counts,
        alpha=rules.alpha,
        max_failure_rate_increase=rules.max_failure_rate_increase,
        max_generation_time_ratio=rules.max_generation_time_ratio,
        max_issue_rate_increase=rules.max_issue_rate_increase,
        min_count=rules.min_generations,
    )
    if breaches:
        return decision("drop", "guardrail", "; ".join(b.reason for b in breaches))
    if min(cmp.n_arm, cmp.n_control) < rules.min_generations:
        return decision(
            "continue",
            "continue",
            f"waiting for {rules.min_generations} rated generations per arm "
            f"({cmp.n_arm} / {cmp.n_control})",
        )
    interval = f"[{cmp.lower:+.3f}, {cmp.upper:+.3f}]"
    history = (
        f" (the control's include {data.n_control_history} from before the arm opened)"
        if data.n_control_history
        else ""
    )
    if data.n_reviews_left_out:
        history += f"; {data.n_reviews_left_out} reviews by reviewers new since it opened left out"
    if cmp.lower > 0:
        return decision(
            "promote",
            "promoted",
            f"better than r{arm.control}: objective {cmp.difference:+.3f}, always-valid bounds "
            f"{interval} exclude 0 (alpha {alpha:.4f}); {cmp.n_arm} vs {cmp.n_control} "
            f"generations{history}",
        )
    if cmp.upper < 0:
        return decision("drop", "worse", f"worse than the control: bounds {interval}")
    if cmp.upper < rules.min_effect:
        return decision(
            "drop",
            "futile",
            f"futile: bounds {interval} rule out the minimum effect {rules.min_effect:+.2f}",
        )
    return decision("continue", "continue", f"undecided: bounds {interval}")
