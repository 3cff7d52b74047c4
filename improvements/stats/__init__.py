"""Numerics of the improver: pure numpy/scipy, no Django.

See docs/improver-statistics.md for the models, assumptions and measured behaviour.
"""

import importlib
from typing import Any

# Names are loaded on first use (PEP 562): the package pulls in scipy, and a process that only
# needs one small module (a web page, a metrics worker) should not pay for all of them. The
# function bradley_terry is imported from its module (improvements.stats.bradley_terry): the
# package attribute of that name is the module, once anything has imported it.
_WHERE = {
    "ArmCounts": "improvements.stats.sequential",
    "BradleyTerryResult": "improvements.stats.bradley_terry",
    "CorrectedMeans": "improvements.stats.bias",
    "Decision": "improvements.stats.sequential",
    "GuardrailBreach": "improvements.stats.sequential",
    "MetricCorrelation": "improvements.stats.correlation",
    "NormalInverseGammaPrior": "improvements.stats.thompson",
    "VariantStats": "improvements.stats.thompson",
    "choose_variant": "improvements.stats.thompson",
    "confidence_sequence": "improvements.stats.sequential",
    "corrected_means": "improvements.stats.bias",
    "guardrails": "improvements.stats.sequential",
    "krippendorff_alpha_ordinal": "improvements.stats.agreement",
    "krippendorff_alpha_ordinal_from_ratings": "improvements.stats.agreement",
    "metric_rating_correlations": "improvements.stats.correlation",
    "posterior_mean_draws": "improvements.stats.thompson",
    "probability_best": "improvements.stats.thompson",
    "rate_confidence_sequence": "improvements.stats.sequential",
    "reliability_matrix": "improvements.stats.agreement",
    "sequential_decision": "improvements.stats.sequential",
    "value_counts": "improvements.stats.agreement",
    "win_probability": "improvements.stats.bradley_terry",
    "wilson_interval": "improvements.stats.proportions",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "ArmCounts",
    "BradleyTerryResult",
    "CorrectedMeans",
    "Decision",
    "GuardrailBreach",
    "MetricCorrelation",
    "NormalInverseGammaPrior",
    "VariantStats",
    "choose_variant",
    "confidence_sequence",
    "corrected_means",
    "guardrails",
    "krippendorff_alpha_ordinal",
    "krippendorff_alpha_ordinal_from_ratings",
    "metric_rating_correlations",
    "posterior_mean_draws",
    "probability_best",
    "rate_confidence_sequence",
    "reliability_matrix",
    "sequential_decision",
    "value_counts",
    "win_probability",
]
