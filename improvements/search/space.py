"""A generator's declared parameter space, read from its JSON Schema, as the search sees it.

The schema is a draft 2020-12 object whose `properties` each declare a `type` (integer, number,
string with `enum`, boolean, or a free string), `minimum`/`maximum` or `enum`, a `default`, and
the improver's annotations:

- `x-tunable` (default true for searchable types, always false for free strings): may the
  improver change it; untunable parameters keep the value of the revision being improved;
- `x-scale`: `linear` (default) or `log` (numbers and integers with minimum > 0);
- `x-step`: the smallest change worth making, in the parameter's own units (on a linear scale
  proposals move in whole steps from the default: 0.85, not 0.849). Without it a change is
  meaningful when it moves at least `DEFAULT_STEP_FRACTION` of the range (of the log range
  for log scale), and by at least 1 for integers; for enums and booleans any change is one
  step;
- `x-affects`: the author's prior, `{"visual_quality": "+", "flicker": "-"}`: which rating
  dimensions, issue categories or costs the parameter moves, and in which direction;
- `x-cost`: truthy when raising the parameter raises generation time or memory;
- `x-ordered`: for a string enum whose values are ordered (draft < standard < hq), so that the
  model may treat it as a number;
- `multipleOf` is honoured when rounding (an even width stays even).

Every tunable parameter maps to a coordinate in [0, 1] ("unit" coordinates: position within the
range, after the log for log scale; the index for enums). The surrogate model reads *features*:
numbers, integers, booleans and ordered enums are one feature each (the unit coordinate);
an unordered enum is a one-hot group scaled so that two different values are at distance 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

# Without an x-step, a change is meaningful when it moves this share of the (log) range.
DEFAULT_STEP_FRACTION = 0.05

Kind = Literal["integer", "number", "enum", "boolean", "string"]


class SpaceError(ValueError):
    """The schema cannot be searched as declared; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    default: Any
    tunable: bool
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None  # declared x-step, in the parameter's units
    multiple_of: float | None = None
    choices: tuple[Any, ...] = ()
    ordered: bool = False
    affects: Mapping[str, int] = field(default_factory=dict)  # target -> +1 / -1
    cost: bool = False
    description: str = ""

    @property
    def categorical(self) -> bool:
        """An unordered enum: no value lies between two others."""
        return self.kind == "enum" and not self.ordered

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "number")

    def to_unit(self, value: Any) -> float:
        """Position of `value` in [0, 1] (the enum index for enums)."""
        if self.kind in ("enum", "boolean"):
            choices = self.choices
            index = choices.index(value) if value in choices else choices.index(self.default)
            return index / (len(choices) - 1) if len(choices) > 1 else 0.0
        assert self.low is not None and self.high is not None
        x = float(value)
        if self.high == self.low:
            return 0.0
        if self.log:
            u = (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            u = (x - self.low) / (self.high - self.low)
        return min(max(u, 0.0), 1.0)

    def from_unit(self, u: float) -> Any:
        """The declared value nearest to unit coordinate `u`, rounded to steps and integers."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind in ("enum", "boolean"):
            n = len(self.choices)
            return self.choices[int(round(u * (n - 1)))] if n > 1 else self.choices[0]
        assert self.low is not None and self.high is not None
        if self.log:
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return self.snap(x)

    def snap(self, value: Any) -> Any:
        """Clip into the bounds and round to the grid (multipleOf, x-step on linear scale)."""
        if not self.numeric:
            return value
        assert self.low is not None and self.high is not None
        x = min(max(float(value), self.low), self.high)
        grid = self.multiple_of
        if grid is None and self.step is not None and not self.log:
            grid = self.step
        if grid:
            # An x-step grid is anchored at the default, so the default is always on it and a
            # proposal reads "default + k steps" (0.85, not 0.849); multipleOf is anchored at 0.
            anchor = 0.0 if self.multiple_of is not None else float(self.default)
            x = anchor + round((x - anchor) / grid) * grid
            while x > self.high + 1e-12:
                x -= grid
            while x < self.low - 1e-12:
                x += grid
        if self.kind == "integer":
            x = int(round(x))
            if self.multiple_of and x % int(self.multiple_of):
                x -= x % int(self.multiple_of)
            return int(min(max(x, math.ceil(self.low)), math.floor(self.high)))
        return round(x, 10)

    def unit_step(self) -> float:
        """The meaningful step expressed in unit coordinates."""
        if self.kind in ("enum", "boolean"):
            n = len(self.choices)
            return 1.0 / (n - 1) if n > 1 else 1.0
        assert self.low is not None and self.high is not None
        span = self.high - self.low
        if span <= 0:
            return 1.0
        fraction = DEFAULT_STEP_FRACTION
        if self.step is not None:
            if self.log:
                # A raw step is measured at the default value, where the search starts.
                base = max(float(self.default), self.low)
                fraction = (math.log(base + self.step) - math.log(base)) / (
                    math.log(self.high) - math.log(self.low)
                )
            else:
                fraction = self.step / span
        elif self.kind == "integer" and not self.log:
            fraction = max(fraction, 1.0 / span)
        return float(min(max(fraction, 1e-6), 1.0))

    def meaningful(self, old: Any, new: Any) -> bool:
        """Does going from `old` to `new` change this parameter by at least one step?"""
        if self.kind in ("enum", "boolean", "string"):
            return old != new
        if old is None or new is None:
            return old is not new
        if self.step is not None and not self.log:
            return abs(float(new) - float(old)) >= self.step - 1e-9
        if self.kind == "integer" and int(new) == int(old):
            return False
        return abs(self.to_unit(new) - self.to_unit(old)) >= self.unit_step() - 1e-9


class ParameterSpace:
    """The searchable view of a declared parameter space (see the module docstring)."""

    def __init__(self, params: Sequence[Param]):
        if not params:
            raise SpaceError("the parameter space declares no parameters")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise SpaceError("parameter names must be unique")
        self.params: tuple[Param, ...] = tuple(params)
        self.tunable: tuple[Param, ...] = tuple(p for p in params if p.tunable)
        self.by_name: dict[str, Param] = {p.name: p for p in params}
        # Feature layout: one column per tunable param, or one per value of an unordered enum.
        groups: list[slice] = []
        start = 0
        for p in self.tunable:
            width = len(p.choices) if p.categorical else 1
            groups.append(slice(start, start + width))
            start += width
        self.feature_groups: tuple[slice, ...] = tuple(groups)
        self.n_features = start

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any]) -> ParameterSpace:
        """Read a JSON Schema object with `properties`; raises SpaceError naming the key."""
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise SpaceError("the schema needs a non-empty 'properties' object")
        return cls([_param_from_property(name, prop) for name, prop in properties.items()])

    # --- values ------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def tunable_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.tunable)

    def default(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with missing keys filled from the defaults and every value snapped."""
        out = {}
        for p in self.params:
            value = params.get(p.name, p.default)
            out[p.name] = p.snap(value) if p.numeric else value
        return out

    # --- coordinates -------------------------------------------------------------------------

    def to_unit(self, params: Mapping[str, Any]) -> NDArray[np.float64]:
        """Unit coordinates of the tunable parameters, in `tunable` order."""
        return np.array(
            [p.to_unit(params.get(p.name, p.default)) for p in self.tunable], dtype=np.float64
        )

    def from_unit(self, unit: Sequence[float], base: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters at unit coordinates `unit`; untunable ones are taken from `base`."""
        out = dict(self.complete(base))
        for p, u in zip(self.tunable, unit, strict=True):
            out[p.name] = p.from_unit(u)
        return out

    def features(self, params_list: Iterable[Mapping[str, Any]]) -> NDArray[np.float64]:
        """(n, n_features) model inputs; see the module docstring for the layout."""
        rows = [self.to_unit(params) for params in params_list]
        units = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.tunable))
        return self.unit_to_features(units)

    def unit_to_features(self, units: NDArray[np.float64]) -> NDArray[np.float64]:
        units = np.atleast_2d(units)
        out = np.zeros((units.shape[0], self.n_features))
        for j, (p, group) in enumerate(zip(self.tunable, self.feature_groups, strict=True)):
            if p.categorical:
                n = len(p.choices)
                index = (
                    np.rint(units[:, j] * (n - 1)).astype(int)
                    if n > 1
                    else np.zeros(units.shape[0], dtype=int)
                )
                # 1/sqrt(2) per coordinate: two different values are at Euclidean distance 1.
                out[np.arange(units.shape[0]), group.start + index] = math.sqrt(0.5)
            else:
                out[:, group.start] = units[:, j]
        return out

    def unit_steps(self) -> NDArray[np.float64]:
        return np.array([p.unit_step() for p in self.tunable])

    # --- changes -----------------------------------------------------------------------------

    def changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Tunable parameters that differ by at least a meaningful step: name -> (old, new)."""
        return {
            p.name: (old.get(p.name, p.default), new.get(p.name, p.default))
            for p in self.tunable
            if p.meaningful(old.get(p.name, p.default), new.get(p.name, p.default))
        }

    def restrict_to_meaningful(
        self, candidate: Mapping[str, Any], base: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`candidate` with every sub-step change reset to `base`'s value.

        Untunable parameters always keep `base`'s value: the improver may not touch them.
        """
        base = self.complete(base)
        out = dict(base)
        for p in self.tunable:
            value = candidate.get(p.name, base[p.name])
            if p.numeric:
                value = p.snap(value)
            if p.meaningful(base[p.name], value):
                out[p.name] = value
        return out

    def is_meaningful_change(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        return bool(self.changes(old, new))

    def step_distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """The largest change between two configurations, counted in meaningful steps."""
        ua, ub = self.to_unit(a), self.to_unit(b)
        steps = self.unit_steps()
        largest = 0.0
        for j, p in enumerate(self.tunable):
            if p.categorical:
                largest = max(largest, 0.0 if ua[j] == ub[j] else 1.0)
            else:
                largest = max(largest, abs(ua[j] - ub[j]) / steps[j])
        return largest

    def describe_value(self, name: str, value: Any) -> str:
        p = self.by_name[name]
        if p.kind == "number":
            return f"{float(value):.4g}"
        return str(value)


def _param_from_property(name: str, prop: Any) -> Param:
    if not isinstance(prop, Mapping):
        raise SpaceError(f"{name}: the property must be an object")
    declared = prop.get("type")
    if isinstance(declared, list):
        # ["integer", "null"] and the like: the first non-null type is the one we search.
        declared = next((t for t in declared if t != "null"), None)
    enum = prop.get("enum")
    affects = _parse_affects(name, prop.get("x-affects", {}))
    common: dict[str, Any] = {
        "name": name,
        "affects": affects,
        "cost": bool(prop.get("x-cost", False)),
        "description": str(prop.get("description", "")),
    }
    tunable_flag = prop.get("x-tunable")
    if enum is not None:
        choices = tuple(enum)
        if not choices:
            raise SpaceError(f"{name}: enum must not be empty")
        default = prop.get("default", choices[0])
        if default not in choices:
            raise SpaceError(f"{name}: default {default!r} is not one of its enum values")
        numeric_values = all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices
        )
        if numeric_values:
            choices = tuple(sorted(choices))
        return Param(
            kind="enum",
            default=default,
            tunable=tunable_flag is not False and len(choices) > 1,
            choices=choices,
            ordered=numeric_values or bool(prop.get("x-ordered", False)),
            **common,
        )
    if declared == "boolean":
        default = bool(prop.get("default", False))
        return Param(
            kind="boolean",
            default=default,
            tunable=tunable_flag is not False,
            choices=(False, True),
            **common,
        )
    if declared == "string":
        if tunable_flag:
            raise SpaceError(f"{name}: a free string (no enum) cannot be tuned")
        return Param(kind="string", default=prop.get("default", ""), tunable=False, **common)
    if declared not in ("integer", "number"):
        raise SpaceError(f"{name}: type {declared!r} is not searchable")
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    default = prop.get("default")
    tunable = tunable_flag is not False
    if tunable and (low is None or high is None):
        raise SpaceError(f"{name}: a tunable number needs minimum and maximum")
    if low is None or high is None:
        return Param(kind=declared, default=default, tunable=False, **common)
    low, high = float(low), float(high)
    if high < low:
        raise SpaceError(f"{name}: maximum {high} is below minimum {low}")
    scale = prop.get("x-scale", "linear")
    if scale not in ("linear", "log"):
        raise SpaceError(f"{name}: x-scale must be 'linear' or 'log', not {scale!r}")
    if scale == "log" and low <= 0:
        raise SpaceError(f"{name}: log scale needs minimum > 0")
    step = prop.get("x-step")
    if step is not None and not (isinstance(step, (int, float)) and step > 0):
        raise SpaceError(f"{name}: x-step must be a positive number")
    multiple_of = prop.get("multipleOf")
    if default is None:
        default = (low + high) / 2
    if not (low <= float(default) <= high):
        raise SpaceError(f"{name}: default {default!r} lies outside [{low:g}, {high:g}]")
    return Param(
        kind=declared,
        default=int(default) if declared == "integer" else float(default),
        tunable=tunable and high > low,
        low=low,
        high=high,
        log=scale == "log",
        step=float(step) if step is not None else None,
        multiple_of=float(multiple_of) if multiple_of else None,
        **common,
    )


def _parse_affects(name: str, affects: Any) -> dict[str, int]:
    if not isinstance(affects, Mapping):
        raise SpaceError(f"{name}: x-affects must be an object like {{'flicker': '-'}}")
    out = {}
    for target, sign in affects.items():
        if sign in ("+", "up", 1):
            out[str(target)] = 1
        elif sign in ("-", "down", -1):
            out[str(target)] = -1
        else:
            raise SpaceError(f"{name}: x-affects[{target!r}] must be '+' or '-'")
    return out
