"""What the policy reads (feedback, revisions, experiment state) and what it returns (a Plan).

All inputs are plain arrays and frozen dataclasses that a database can produce with a few
column reads; ids are whatever integers the database uses (they need not be compact). `time` is
any clock shared by ratings, generations and arms (epoch seconds, or an event counter): it
decides which generations belong to an arm's test (created after the arm opened) and which
ratings may calibrate reviewer offsets for it (given before the arm opened).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Role = Literal["challenger", "explorer"]
Action = Literal["promote", "drop", "continue"]


def _ints(values: ArrayLike) -> NDArray[np.int64]:
    return np.asarray(values, dtype=np.int64).ravel()


def _floats(values: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64).ravel()


@dataclass(frozen=True)
class Ratings:
    """One entry per rating (a review of D dimensions gives D entries)."""

    revision: NDArray[np.int64]
    generation: NDArray[np.int64]
    reviewer: NDArray[np.int64]
    dimension: NDArray[np.int64]  # index into Observations.dimensions
    value: NDArray[np.float64]  # 1..5
    time: NDArray[np.float64]  # arrival

    @classmethod
    def of(cls, **columns: ArrayLike) -> Ratings:
        r = cls(
            revision=_ints(columns["revision"]),
            generation=_ints(columns["generation"]),
            reviewer=_ints(columns["reviewer"]),
            dimension=_ints(columns["dimension"]),
            value=_floats(columns["value"]),
            time=_floats(columns["time"]),
        )
        n = r.value.size
        if any(a.size != n for a in (r.revision, r.generation, r.reviewer, r.dimension, r.time)):
            raise ValueError("rating columns must have one length")
        return r

    @classmethod
    def empty(cls) -> Ratings:
        e = np.zeros(0)
        return cls.of(revision=e, generation=e, reviewer=e, dimension=e, value=e, time=e)


@dataclass(frozen=True)
class Issues:
    """One entry per issue report; `note` is free text (mostly for category `other`)."""

    revision: NDArray[np.int64]
    generation: NDArray[np.int64]
    reviewer: NDArray[np.int64]
    category: tuple[str, ...]
    note: tuple[str, ...]

    @classmethod
    def of(
        cls,
        *,
        revision: ArrayLike,
        generation: ArrayLike,
        reviewer: ArrayLike,
        category: Sequence[str],
        note: Sequence[str] | None = None,
    ) -> Issues:
        cats = tuple(str(c) for c in category)
        notes = tuple(str(n or "") for n in note) if note is not None else ("",) * len(cats)
        out = cls(_ints(revision), _ints(generation), _ints(reviewer), cats, notes)
        if not (
            out.revision.size == out.generation.size == out.reviewer.size == len(cats) == len(notes)
        ):
            raise ValueError("issue columns must have one length")
        return out

    @classmethod
    def empty(cls) -> Issues:
        e = np.zeros(0)
        return cls.of(revision=e, generation=e, reviewer=e, category=())


@dataclass(frozen=True)
class Generations:
    """One entry per finished or failed generation."""

    id: NDArray[np.int64]
    revision: NDArray[np.int64]
    failed: NDArray[np.bool_]
    seconds: NDArray[np.float64]  # wall time of a successful generation; nan when unknown
    time: NDArray[np.float64]  # creation

    @classmethod
    def of(
        cls,
        *,
        id: ArrayLike,  # noqa: A002 - the column's name
        revision: ArrayLike,
        failed: ArrayLike,
        seconds: ArrayLike,
        time: ArrayLike,
    ) -> Generations:
        out = cls(
            _ints(id),
            _ints(revision),
            np.asarray(failed, dtype=bool).ravel(),
            _floats(seconds),
            _floats(time),
        )
        n = out.id.size
        if any(a.size != n for a in (out.revision, out.failed, out.seconds, out.time)):
            raise ValueError("generation columns must have one length")
        return out

    @classmethod
    def empty(cls) -> Generations:
        e = np.zeros(0)
        return cls.of(id=e, revision=e, failed=e, seconds=e, time=e)


@dataclass(frozen=True)
class Observations:
    dimensions: tuple[str, ...]  # rating dimension slugs; Ratings.dimension indexes this
    revisions: Mapping[int, Mapping[str, Any]]  # every revision id -> its params
    ratings: Ratings
    issues: Issues
    generations: Generations
    now: float  # the clock now: arms opened by this step's plan open at `now`


@dataclass(frozen=True)
class Interval:
    """A predicted or measured effect on the objective (candidate minus control)."""

    estimate: float
    low: float
    high: float
    level: float
    se: float | None = None  # standard error of `estimate` (measured effects)
    calibration: float = 1.0  # predicted effects: the factor already applied to the model's sd

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float | None]:
        return {
            "estimate": round(self.estimate, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "level": self.level,
            "se": None if self.se is None else round(self.se, 4),
            "calibration": round(self.calibration, 3),
        }


@dataclass(frozen=True)
class Arm:
    """A running or closed experiment arm, as the database remembers it.

    `alpha` and `mixture` are fixed by the plan that opened a challenger and must be handed
    back unchanged: they define its always-valid test, as does `control_history` (the control's
    generations from before it opened that count; None: the policy's setting). `outcome` and
    `effect` are filled in from the ArmDecision that closed it (memory of what each change
    did).
    """

    revision: int
    role: Role
    control: int  # the active revision when it opened
    opened: float  # clock value when it opened
    alpha: float = 0.0
    mixture: float = 0.0
    control_history: int | None = None
    predicted: Interval | None = None
    outcome: str | None = None  # closed arms: promoted, futile, worse, model, guardrail, ...
    effect: Interval | None = None  # closed challengers: the always-valid interval at closing


@dataclass(frozen=True)
class ExperimentState:
    active: int  # the active (control) revision
    arms: Sequence[Arm] = ()  # running arms
    history: Sequence[Arm] = ()  # closed arms, any order


@dataclass(frozen=True)
class ArmDecision:
    revision: int
    action: Action
    outcome: str  # continue | promoted | futile | worse | model | guardrail | explored | ...
    reason: str
    effect: Interval | None = None  # always-valid interval of objective(arm) - objective(control)
    n_arm: int = 0  # generations with ratings in the arm's test
    n_control: int = 0
    numbers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewArm:
    key: str  # names the arm in Plan.traffic until the database gives it a revision id
    params: Mapping[str, Any]
    role: Role
    control: int  # the revision that will be active when it opens
    alpha: float
    mixture: float
    predicted: Interval  # on the objective, from the model
    rationale: str
    evidence: Mapping[str, Any]
    changes: Mapping[str, tuple[Any, Any]]  # parameter -> (control value, new value)
    # Generations the arm should get before the next step; None: as many as traffic gives.
    # An explorer needs only a video or two: stop assigning to it once it has this many.
    max_generations: int | None = None


@dataclass(frozen=True)
class Plan:
    active: int  # the revision active after this plan (differs when an arm is promoted)
    decisions: tuple[ArmDecision, ...]
    open: tuple[NewArm, ...]
    traffic: Mapping[int | str, float]  # revision id or NewArm.key -> share of new generations
    notes: tuple[str, ...] = ()
    model: Mapping[str, Any] = field(default_factory=dict)  # JSON-ready model summary
