"""A pipeline's declared parameter space, and parameters checked against it.

A declaration is a JSON Schema (draft 2020-12) object schema: each property is one parameter of
the generator with a type, bounds, a default and a description, annotated for the improver with
``x-tunable``, ``x-scale``, ``x-step``, ``x-affects`` and ``x-cost`` (docs/pipelines.md). What a
declaration may look like is itself a JSON Schema (``declaration_metaschema.json``); both it and
parameter sets are checked with the ``jsonschema`` library. Every problem is reported at once,
keyed by where it is, so a caller can fix all of them in one go.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from feedbackloop.errors import InvalidInput

METASCHEMA = json.loads((Path(__file__).parent / "declaration_metaschema.json").read_text())
_META_VALIDATOR = Draft202012Validator(METASCHEMA)


class InvalidDeclaration(InvalidInput):
    """A parameter declaration that cannot be used; ``details`` maps each path to its problems."""

    code = "invalid_parameters"

    def __init__(self, details: dict[str, list[str]], *, prefix: str = "parameters") -> None:
        self.details = {f"{prefix}.{k}" if k else prefix: v for k, v in details.items()}
        first_key, first = next(iter(self.details.items()))
        more = len(self.details) - 1
        super().__init__(f"{first_key}: {first[0]}" + (f" (and {more} more)" if more else ""))


class InvalidParams(InvalidInput):
    """Parameters outside the declared space; ``details`` maps each key to its problems."""

    code = "invalid_params"

    def __init__(self, details: dict[str, list[str]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in details.items()))


def _path(error: ValidationError | SchemaError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def declaration_digest(declaration: dict[str, Any]) -> str:
    """The same declaration always has the same digest, whatever its key order."""
    canonical = json.dumps(declaration, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def declaration_check(declaration: Any) -> dict[str, Any]:
    """Check a declaration and return it normalised (an object schema without extra keys).

    Raises InvalidDeclaration naming every problem: not JSON Schema, not an object schema of
    annotated parameters, a default outside its own bounds, a tunable parameter of a type the
    improver cannot search (free text, arrays, objects), a log scale without a positive bound.
    """
    if not isinstance(declaration, dict):
        raise InvalidDeclaration({"": ["must be a JSON Schema object with 'properties'"]})
    try:
        Draft202012Validator.check_schema(declaration)
    except SchemaError as exc:
        raise InvalidDeclaration(
            {_path(exc): [f"not valid JSON Schema (draft 2020-12): {exc.message}"]}
        ) from exc
    problems: dict[str, list[str]] = {}

    def add(where: str, message: str) -> None:
        if message not in problems.setdefault(where, []):  # anyOf branches repeat themselves
            problems[where].append(message)

    for error in sorted(_META_VALIDATOR.iter_errors(declaration), key=lambda e: e.path):
        add(_path(error), _meta_message(error))
    properties = declaration.get("properties")
    for name, spec in properties.items() if isinstance(properties, dict) else ():
        if not isinstance(spec, dict) or "default" not in spec:
            continue  # reported above
        for error in Draft202012Validator(spec).iter_errors(spec["default"]):
            add(
                f"properties.{name}.default",
                f"the default {spec['default']!r} is outside the parameter's own schema: "
                f"{error.message}",
            )
    if problems:
        raise InvalidDeclaration(problems)
    return {**declaration, "type": "object", "additionalProperties": False}


def _meta_message(error: ValidationError) -> str:
    """Say what the meta-schema's rule means, not only which keyword failed."""
    where = list(error.absolute_path)
    if error.validator == "required" and "x-tunable" in error.message:
        return "arrays and objects cannot be searched: declare them with x-tunable: false"
    if error.validator == "required" and "'enum'" in error.message:
        return (
            "a free-text parameter cannot be searched by the improver: give it an enum of "
            "choices or declare it with x-tunable: false"
        )
    if error.validator == "anyOf" and len(where) == 2 and where[0] == "properties":
        return (
            "a tunable number needs bounds (minimum/maximum) for the improver to search, and "
            "x-scale: log needs a positive lower bound; or declare it with x-tunable: false"
        )
    if error.validator == "const" and where and where[-1] == "x-tunable":
        return "arrays and objects cannot be searched: declare them with x-tunable: false"
    return error.message


def defaults_of(declaration: dict[str, Any]) -> dict[str, Any]:
    return {name: spec["default"] for name, spec in declaration["properties"].items()}


@lru_cache(maxsize=64)
def _validator(text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(text))


def _canonical(spec: dict[str, Any], value: Any) -> Any:
    """One spelling per value: 24.0 for an integer parameter is 24, 1 for a number is 1.0."""
    kind = spec.get("type")
    if kind == "integer" and isinstance(value, float):
        return int(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def params_check(
    declaration: dict[str, Any], params: Any, *, partial: bool = False
) -> dict[str, Any]:
    """Check params against a declaration; return them canonical and, unless ``partial``,
    complete (keys left out take the declared default). InvalidParams names every bad key."""
    if not isinstance(params, dict):
        raise InvalidParams({"params": ["must be an object of parameter name to value"]})
    properties = declaration["properties"]
    unknown = sorted(set(params) - set(properties))
    problems: dict[str, list[str]] = {
        key: [f"unknown parameter; allowed: {', '.join(sorted(properties))}"] for key in unknown
    }
    known = {k: v for k, v in params.items() if k in properties}
    text = json.dumps({**declaration, "additionalProperties": True}, sort_keys=True)
    validator = _validator(text)
    for error in validator.iter_errors(known):
        key = str(error.absolute_path[0]) if error.absolute_path else "params"
        problems.setdefault(key, []).append(f"{error.message}")
    if problems:
        raise InvalidParams(problems)
    clean = {k: _canonical(properties[k], v) for k, v in known.items()}
    return clean if partial else {**defaults_of(declaration), **clean}


def params_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between two parameter sets: key -> (old, new)."""
    old = old or {}
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def load_declaration_file(path: str | Path) -> dict[str, Any]:
    """A declaration from a JSON file, checked; InvalidDeclaration names the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidDeclaration({"": [f"cannot read {path}: {exc}"]}) from exc
    return declaration_check(data)
