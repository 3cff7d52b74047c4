"""Candidate configurations for the model to score.

All candidates live in unit coordinates, are snapped to the declared grid (integers, steps,
multipleOf, enum values) and keep every untunable parameter. Generators:

- local: perturb an anchor (the active revision, the model's best revisions) in a few
  parameters by Gaussian moves scaled by `radius`, each changed parameter by at least its
  meaningful step;
- global: uniform over the space (the model decides whether anything far away is worth it);
- targeted: move the parameters an issue signal points at (`issue_signals.Move`) by 1, 2, 4 and
  8 steps in the hinted direction (both directions when the hint has none);
- refined: coordinate ascent on a score (the model's predicted objective) from the best
  candidates, one parameter at a time over a grid of its range - the pool alone rarely holds
  the point where an additive taste peaks in every parameter at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from improvements.search.issue_signals import Move
from improvements.search.space import ParameterSpace


@dataclass(frozen=True)
class Pool:
    units: NDArray[np.float64]  # (m, P), snapped, unique
    origin: tuple[str, ...]  # how each candidate was made: local, global, targeted:<signal>


def snap_units(space: ParameterSpace, units: NDArray[np.float64]) -> NDArray[np.float64]:
    """Round every row to the declared grid (vectorised per parameter)."""
    out = np.empty_like(units)
    for j, p in enumerate(space.tunable):
        col = np.clip(units[:, j], 0.0, 1.0)
        if p.kind in ("enum", "boolean"):
            n = len(p.choices) - 1
            out[:, j] = np.rint(col * n) / n if n else 0.0
            continue
        # Numbers: through the parameter's own rounding, once per distinct value.
        values, inverse = np.unique(np.round(col, 6), return_inverse=True)
        snapped = np.array([p.to_unit(p.from_unit(v)) for v in values])
        out[:, j] = snapped[inverse.ravel()]
    return out


def local(
    space: ParameterSpace,
    anchor: NDArray[np.float64],
    n: int,
    radius: float,
    rng: np.random.Generator,
    *,
    mean_changes: float = 2.0,
) -> NDArray[np.float64]:
    """Perturb `anchor` in about `mean_changes` parameters each (at least one)."""
    n_params = anchor.size
    if n <= 0 or n_params == 0:
        return np.zeros((0, n_params))
    steps = space.unit_steps()
    out = np.tile(anchor, (n, 1))
    p_change = min(1.0, mean_changes / n_params)
    change = rng.random((n, n_params)) < p_change
    forced = rng.integers(0, n_params, n)
    change[np.arange(n), forced] = True
    for j, p in enumerate(space.tunable):
        rows = np.flatnonzero(change[:, j])
        if rows.size == 0:
            continue
        if p.categorical or p.kind == "boolean":
            k = len(p.choices)
            current = np.rint(anchor[j] * (k - 1)).astype(int)
            shift = rng.integers(1, k, rows.size)
            out[rows, j] = ((current + shift) % k) / (k - 1)
            continue
        move = rng.normal(0.0, radius, rows.size)
        # At least one meaningful step, in the drawn direction.
        move = np.sign(move + 1e-12) * np.maximum(np.abs(move), steps[j])
        out[rows, j] = np.clip(anchor[j] + move, 0.0, 1.0)
    return out


def uniform(space: ParameterSpace, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    return rng.random((n, len(space.tunable)))


def targeted(
    space: ParameterSpace, anchor: NDArray[np.float64], moves: Iterable[Move]
) -> tuple[NDArray[np.float64], list[str]]:
    """Each move by 1, 2, 4 and 8 meaningful steps (both ways when it has no direction)."""
    index = {name: j for j, name in enumerate(space.tunable_names)}
    steps = space.unit_steps()
    rows: list[NDArray[np.float64]] = []
    origin: list[str] = []
    for move in moves:
        j = index.get(move.param)
        if j is None:
            continue
        directions = (move.direction,) if move.direction else (1, -1)
        for direction in directions:
            for k in (1, 2, 4, 8):
                x = anchor.copy()
                x[j] = np.clip(anchor[j] + direction * k * steps[j], 0.0, 1.0)
                rows.append(x)
                origin.append(f"targeted:{move.signal}:{move.param}")
    if not rows:
        return np.zeros((0, anchor.size)), []
    return np.array(rows), origin


def build_pool(
    space: ParameterSpace,
    blocks: Sequence[tuple[NDArray[np.float64], Sequence[str] | str]],
    base: NDArray[np.float64],
) -> Pool:
    """Snap, keep only candidates that differ meaningfully from `base`, drop duplicates."""
    units_list, origins = [], []
    for units, origin in blocks:
        if units.size == 0:
            continue
        units_list.append(units)
        origins.extend([origin] * units.shape[0] if isinstance(origin, str) else list(origin))
    if not units_list:
        return Pool(np.zeros((0, base.size)), ())
    units = snap_units(space, np.vstack(units_list))
    steps = space.unit_steps()
    # Sub-step changes go back to the base value (a change smaller than a step is no change).
    small = np.abs(units - base) < steps - 1e-9
    categorical = np.array([p.categorical or p.kind == "boolean" for p in space.tunable])
    small &= ~categorical[None, :] | (units == base)
    units = np.where(small, base, units)
    keep = np.any(units != base, axis=1)
    units, origins_arr = units[keep], np.array(origins, dtype=object)[keep]
    _, first = np.unique(np.round(units, 9), axis=0, return_index=True)
    first.sort()
    return Pool(units[first], tuple(origins_arr[first]))


def to_params(
    space: ParameterSpace, units: NDArray[np.float64], base: Mapping[str, Any]
) -> dict[str, Any]:
    """Parameters for one candidate, keeping `base`'s untunable values."""
    return space.restrict_to_meaningful(space.from_unit(units, base), base)


def coordinate_ascent(
    space: ParameterSpace,
    score: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    start: NDArray[np.float64],
    *,
    rounds: int = 3,
    grid: int = 21,
) -> NDArray[np.float64]:
    """Improve `start` one parameter at a time: each round tries every parameter over `grid`
    values of its range (every value for enums) and keeps the best single change."""
    x = snap_units(space, start[None, :])[0]
    best = float(score(x[None, :])[0])
    values = []
    for p in space.tunable:
        if p.kind in ("enum", "boolean"):
            n = len(p.choices) - 1
            values.append(np.arange(n + 1) / n if n else np.zeros(1))
        else:
            values.append(np.linspace(0.0, 1.0, grid))
    for _ in range(rounds):
        trials = []
        for j, vals in enumerate(values):
            t = np.tile(x, (vals.size, 1))
            t[:, j] = vals
            trials.append(t)
        batch = snap_units(space, np.vstack(trials))
        scores = score(batch)
        i = int(np.argmax(scores))
        if scores[i] <= best + 1e-6:
            break
        x, best = batch[i], float(scores[i])
    return x
