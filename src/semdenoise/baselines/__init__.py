"""Baselines (Gaussian, NLM, TV, BM3D, N2V grid and patch) behind one method interface."""

from semdenoise.baselines.methods import (
    BASELINES,
    Method,
    build_baselines,
    classic_method,
    model_method,
    n2v_method,
    noise_sigma_rule,
    resolve_baselines,
)

__all__ = [
    "BASELINES",
    "Method",
    "build_baselines",
    "classic_method",
    "model_method",
    "n2v_method",
    "noise_sigma_rule",
    "resolve_baselines",
]
