"""Memory of every change tried and what it did, so a failed change is not proposed again.

A *change* is a challenger's parameters against the control it was tested with. It *failed*
when its test closed without a promotion (futile, worse, dropped by the model, a guardrail).
A candidate repeats a failed change when

- it is the same configuration (within one meaningful step in every parameter), or
- it starts from the same place (the active revision is within a step of that control) and
  moves the same parameters in the same directions (the same enum values), whatever the size:
  "a bigger dose of what did not work" is the failure mode that drove a parameter to its edge.

New evidence may overrule the memory: the policy lets a repeat through only when the model,
which has seen the failed arm's own ratings, is confident the candidate is better now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from improvements.search.observations import Arm
from improvements.search.space import ParameterSpace

FAILED_OUTCOMES = frozenset({"futile", "worse", "model", "guardrail", "dropped"})


@dataclass(frozen=True)
class TriedChange:
    arm: Arm
    units: NDArray[np.float64]
    control_units: NDArray[np.float64]
    helped: bool | None  # promoted / failed / not tested (explorer, superseded)


def tried_changes(
    space: ParameterSpace, history: Sequence[Arm], revisions: Mapping[int, Mapping[str, Any]]
) -> list[TriedChange]:
    out = []
    for arm in history:
        if arm.revision not in revisions or arm.control not in revisions:
            continue
        helped: bool | None = None
        if arm.role == "challenger":
            if arm.outcome == "promoted":
                helped = True
            elif arm.outcome in FAILED_OUTCOMES:
                helped = False
        out.append(
            TriedChange(
                arm=arm,
                units=space.to_unit(revisions[arm.revision]),
                control_units=space.to_unit(revisions[arm.control]),
                helped=helped,
            )
        )
    return out


def repeats_failure(
    space: ParameterSpace,
    candidates: NDArray[np.float64],
    active: NDArray[np.float64],
    memory: Sequence[TriedChange],
) -> NDArray[np.bool_]:
    """Which candidates (unit rows) repeat a failed change (see the module docstring)."""
    out = np.zeros(candidates.shape[0], dtype=bool)
    failed = [m for m in memory if m.helped is False]
    if not failed or candidates.size == 0:
        return out
    steps = space.unit_steps()
    categorical = np.array([p.categorical or p.kind == "boolean" for p in space.tunable])
    cand_move = candidates - active
    cand_changed = np.abs(cand_move) >= steps - 1e-9
    for m in failed:
        same_config = np.all(np.abs(candidates - m.units) < steps - 1e-9, axis=1)
        out |= same_config
        if np.any(np.abs(active - m.control_units) >= steps - 1e-9):
            continue
        move = m.units - m.control_units
        changed = np.abs(move) >= steps - 1e-9
        if not changed.any():
            continue
        same_support = np.all(cand_changed == changed, axis=1)
        numeric_same = np.all(
            ~changed | categorical | (np.sign(cand_move) == np.sign(move)), axis=1
        )
        cat_same = np.all(~changed | ~categorical | (candidates == m.units), axis=1)
        out |= same_support & numeric_same & cat_same
    return out


def explored_before(
    space: ParameterSpace, candidates: NDArray[np.float64], tried: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Candidates within one meaningful step (every parameter) of a configuration with data."""
    if tried.size == 0 or candidates.size == 0:
        return np.zeros(candidates.shape[0], dtype=bool)
    steps = space.unit_steps()
    out = np.zeros(candidates.shape[0], dtype=bool)
    for row in tried:
        out |= np.all(np.abs(candidates - row) < steps - 1e-9, axis=1)
    return out
