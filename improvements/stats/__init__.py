"""Numerics of the improver: pure numpy/scipy, no Django.

See docs/improver-statistics.md for the models, assumptions and measured behaviour.
"""

from improvements.stats.agreement import (
    krippendorff_alpha_ordinal,
    krippendorff_alpha_ordinal_from_ratings,
    reliability_matrix,
    value_counts,
)
from improvements.stats.bias import CorrectedMeans, corrected_means
from improvements.stats.bradley_terry import BradleyTerryResult, bradley_terry, win_probability
from improvements.stats.correlation import MetricCorrelation, metric_rating_correlations
from improvements.stats.sequential import (
    ArmCounts,
    Decision,
    GuardrailBreach,
    confidence_sequence,
    guardrails,
    rate_confidence_sequence,
    sequential_decision,
)
from improvements.stats.thompson import (
    NormalInverseGammaPrior,
    VariantStats,
    choose_variant,
    posterior_mean_draws,
    probability_best,
)

__all__ = [
    "ArmCounts",
    "BradleyTerryResult",
    "CorrectedMeans",
    "Decision",
    "GuardrailBreach",
    "MetricCorrelation",
    "NormalInverseGammaPrior",
    "VariantStats",
    "bradley_terry",
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
