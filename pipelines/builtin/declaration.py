"""The built-in renderer's declared parameter space (parameters.json), loaded once.

The declaration file is the single source of truth for what a builtin revision may hold: the
renderer reads its defaults and checks its params against it, the site registers it as the
``builtin`` pipeline, and the improver searches over it (through the pipeline, not by import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.declarations import defaults_of, load_declaration_file, params_check

DECLARATION_PATH = Path(__file__).with_name("parameters.json")
DECLARATION: dict[str, Any] = load_declaration_file(DECLARATION_PATH)
DEFAULT_PARAMS: dict[str, Any] = defaults_of(DECLARATION)


def builtin_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params checked against the declaration, with every key left out at its default."""
    return params_check(DECLARATION, params)
