"""Synthetic feedback for the decision core's tests: a reviewer panel rating revisions whose
mean overall rating the test chooses. No database, no taste model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from improvements.search import Arm, Generations, Issues, Observations, Ratings
from improvements.search.arm_data import unit_variance
from improvements.search.decisions import DecisionRules, challenger_decision

DIMENSIONS = ("visual_quality", "overall_satisfaction")


@dataclass
class FeedbackBuilder:
    rng: np.random.Generator
    n_reviewers: int = 20
    leniency_sd: float = 0.4
    random_share: float = 0.1
    # Every reviewer grows this much more lenient per unit of the clock (one generation) once
    # the clock passes `drift_from`: a panel whose ratings drift over time.
    drift: float = 0.0
    drift_from: float = 0.0
    revisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    means: dict[int, float] = field(default_factory=dict)
    clock: float = 0.0
    _r: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ["rev", "gen", "rvw", "dim", "val", "t"]}
    )
    _g: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ["id", "rev", "failed", "sec", "t"]}
    )
    _i: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ["rev", "gen", "rvw", "cat", "note"]}
    )

    def __post_init__(self) -> None:
        self.leniency = self.rng.normal(0, self.leniency_sd, self.n_reviewers)
        self.noise = self.rng.uniform(0.4, 0.9, self.n_reviewers)
        self.random_rater = self.rng.random(self.n_reviewers) < self.random_share

    def add_reviewers(self, n: int, leniency: float) -> None:
        """`n` careful reviewers join the panel, with leniency about `leniency`."""
        self.leniency = np.concatenate([self.leniency, self.rng.normal(leniency, 0.2, n)])
        self.noise = np.concatenate([self.noise, self.rng.uniform(0.4, 0.9, n)])
        self.random_rater = np.concatenate([self.random_rater, np.zeros(n, dtype=bool)])
        self.n_reviewers += n

    def add_revision(self, revision: int, params: dict[str, Any], mean: float) -> None:
        self.revisions[revision] = params
        self.means[revision] = mean

    def generate(
        self,
        revision: int,
        *,
        failed: bool = False,
        seconds: float = 10.0,
        issue: str | None = None,
        note: str = "",
        reviewers: list[int] | None = None,
    ) -> None:
        """One generation with 1-3 reviews (or the given reviewers) of every dimension."""
        self.clock += 1
        gen = len(self._g["id"])
        for key, value in zip(
            ["id", "rev", "failed", "sec", "t"],
            (gen, revision, failed, np.nan if failed else seconds, self.clock),
            strict=True,
        ):
            self._g[key].append(value)
        if failed:
            return
        luck = self.rng.normal(0, 0.3)
        if reviewers is None:
            reviewers = list(
                self.rng.choice(self.n_reviewers, self.rng.integers(1, 4), replace=False)
            )
        for j in reviewers:
            self.clock += 0.01
            for d in range(len(DIMENSIONS)):
                if self.random_rater[j]:
                    value = float(self.rng.integers(1, 6))
                else:
                    raw = (
                        self.means[revision]
                        + luck
                        + self.leniency[j]
                        + self.drift * max(self.clock - self.drift_from, 0.0)
                        + self.rng.normal(0, self.noise[j])
                    )
                    value = float(np.clip(np.rint(raw), 1, 5))
                for key, v in zip(
                    ["rev", "gen", "rvw", "dim", "val", "t"],
                    (revision, gen, int(j), d, value, self.clock),
                    strict=True,
                ):
                    self._r[key].append(v)
            if issue is not None:
                for key, v in zip(
                    ["rev", "gen", "rvw", "cat", "note"],
                    (revision, gen, int(j), issue, note),
                    strict=True,
                ):
                    self._i[key].append(v)

    def observations(self) -> Observations:
        r, g, i = self._r, self._g, self._i
        return Observations(
            dimensions=DIMENSIONS,
            revisions=dict(self.revisions),
            ratings=Ratings.of(
                revision=r["rev"],
                generation=r["gen"],
                reviewer=r["rvw"],
                dimension=r["dim"],
                value=r["val"],
                time=r["t"],
            ),
            issues=Issues.of(
                revision=i["rev"],
                generation=i["gen"],
                reviewer=i["rvw"],
                category=i["cat"],
                note=i["note"],
            ),
            generations=Generations.of(
                id=g["id"], revision=g["rev"], failed=g["failed"], seconds=g["sec"], time=g["t"]
            ),
            now=self.clock,
        )


def ever_promoted(
    fb: FeedbackBuilder, arm: Arm, rules: DecisionRules, objective: dict[str, float]
) -> bool:
    """Run `arm`'s test as the policy would, deciding every 5 arm generations up to 60: whether
    it is ever promoted. With the control's history the control is ahead, so the policy gives
    it about half the arm's new traffic; without, as much as the arm."""
    for _ in range(12):
        for _ in range(5):
            if not rules.control_history or fb.rng.random() < 0.5:
                fb.generate(arm.control)
            fb.generate(arm.revision)
        obs = fb.observations()
        d = challenger_decision(
            obs, arm, objective, rules, prior_variance=unit_variance(obs, objective)
        )
        if d.action != "continue":
            return d.action == "promote"
    return False
