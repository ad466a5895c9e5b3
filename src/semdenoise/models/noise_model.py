"""What the observed pixel adds to a blind-spot prediction: a learned noise model.

A blind-spot network never sees the value of the pixel it predicts, so its output is a
*prior* for the clean value given the neighbourhood; the observed value is a second,
independent witness. With a noise model learned alongside the denoiser (after Laine et
al., "High-quality self-supervised deep image denoising", NeurIPS 2019) the two combine
into the posterior mean, per pixel:

    x̂ = μ + (1 − n²(μ) / v) (y − μ)

where μ is the network's prediction, v its predicted variance of the noisy value around
μ (the prior's uncertainty s² plus the noise n²; trained by a Gaussian likelihood at the
masked pixels), and n²(μ) the noise variance: constant (Gaussian) or affine in the signal
(Poisson–Gaussian: shot noise grows with intensity, camera read noise does not).

Only v = s² + n² is seen by the likelihood; the split is fixed by the noise model's
shape. The noise is the part of v that no context can predict away, so one estimate of
n² is the *lower envelope* of v: a low quantile of v over the training images
(Gaussian), or a line through the low quantiles of v in bins of μ (Poisson–Gaussian).

What ``denoise`` uses since issue 16 differs in two ways, both measured
(docs/benchmarks.md, "The posterior weight"): v's scale is off on the blind passes
``denoise`` makes, so v is replaced by what those passes really miss at that v on the
training images (:class:`ResidualProfile`); and n² is by default estimated from the
training images' patches (models/patch_noise.py), the envelope kept as an option
(``NoiseConfig.estimate``). All values are in the model's normalised units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch

from semdenoise.models import posterior

NoiseKind = Literal["gaussian", "poisson-gaussian"]

# share of training pixels whose predicted variance is taken as pure noise (the envelope)
ENVELOPE_QUANTILE = 0.02
ENVELOPE_BINS = 16
# brightness bins of the blind passes' residual (ResidualProfile)
RESIDUAL_BINS = 32


def predicted_variance(raw: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The variance head's output made positive: softplus + floor (torch or NumPy; one
    computation, models/posterior.py, with the exported package)."""
    if isinstance(raw, torch.Tensor):
        return posterior.predicted_variance(raw)
    return posterior.predicted_variance(_tensor(raw)).numpy()


@dataclass(frozen=True)
class NoiseModel:
    """Noise variance ``offset + slope * μ`` (normalised units, ``slope`` 0 for Gaussian)."""

    kind: NoiseKind
    offset: float
    slope: float = 0.0

    def variance(self, mean: np.ndarray) -> np.ndarray:
        return posterior.noise_variance(_tensor(mean), self.offset, self.slope).numpy()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> NoiseModel:
        return cls(**values)


def equal_bins(values: np.ndarray, bins: int) -> tuple[np.ndarray, int]:
    """Each of ``values``' bin among ``bins`` equally populated ones (quantile edges,
    tied edges merged), and how many bins that leaves."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    count = len(edges) - 1
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(count - 1, 0))
    return which, count


def fit_noise_model(
    mean: np.ndarray,
    variance: np.ndarray,
    kind: NoiseKind,
    *,
    quantile: float = ENVELOPE_QUANTILE,
    bins: int = ENVELOPE_BINS,
) -> NoiseModel:
    """The noise model under the predicted variances: their lower envelope.

    ``mean`` and ``variance`` are the network's μ and v at many training pixels.
    Poisson–Gaussian: the ``quantile`` of v in each of ``bins`` equally populated bins of
    μ, and the least-squares line through them (a falling line, which shot noise never
    gives, means none is visible: the Gaussian envelope then); Gaussian: the
    ``quantile`` of v over all pixels.
    """
    mean = np.asarray(mean, dtype=np.float64).ravel()
    variance = np.asarray(variance, dtype=np.float64).ravel()
    flat = NoiseModel("gaussian", float(np.quantile(variance, quantile)))
    if kind == "gaussian":
        return flat
    which, count = equal_bins(mean, bins)
    if count < 2:  # the signal barely varies: nothing to fit a slope to
        return NoiseModel("poisson-gaussian", flat.offset)
    centres, floors = [], []
    for b in range(count):
        inside = which == b
        if inside.sum() >= 20:
            centres.append(np.median(mean[inside]))
            floors.append(np.quantile(variance[inside], quantile))
    if len(centres) < 2:
        return NoiseModel("poisson-gaussian", flat.offset)
    slope, offset = np.polyfit(centres, floors, 1)
    if slope <= 0:  # no shot noise to see: the Gaussian envelope
        return NoiseModel("poisson-gaussian", flat.offset)
    return NoiseModel("poisson-gaussian", float(offset), float(slope))


@dataclass(frozen=True)
class ResidualProfile:
    """What the blind-spot prediction really misses, as a function of the variance head's
    v: the mean of (y − μ)² over the noisy training images' blind passes in equally
    populated bins of log v, linear in log v between the bins' medians, flat beyond.

    It is the posterior weight's denominator in place of v itself. v ranks pixels well
    (an edge is less predictable than a flat patch: what makes the posterior work on
    natural images) but its scale is off on the passes ``denoise`` makes, where the
    pixel is masked by its window median rather than, as in training, a random
    neighbour, and off by different factors at different v (measured: docs/benchmarks.md,
    "The posterior weight"). The profile keeps v's ranking and takes the scale from the
    residuals. Values are in the model's normalised units."""

    log_variances: tuple[float, ...]
    residuals: tuple[float, ...]

    def variance(self, variance: np.ndarray) -> np.ndarray:
        """The residual expected where the head predicts ``variance``."""
        knots, levels = (_tensor(np.asarray(v))[None] for v in self.table)
        values = _tensor(variance)[None, None]
        return posterior.residual_variance(values, knots, levels)[0, 0].numpy()

    @property
    def table(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.log_variances, self.residuals

    def to_dict(self) -> dict:
        return {"log_variances": list(self.log_variances), "residuals": list(self.residuals)}

    @classmethod
    def from_dict(cls, values: dict) -> ResidualProfile:
        return cls(tuple(values["log_variances"]), tuple(values["residuals"]))


def fit_residual_profile(
    variance: np.ndarray,
    mean: np.ndarray,
    observed: np.ndarray,
    *,
    bins: int = RESIDUAL_BINS,
) -> ResidualProfile:
    """The mean squared residual ``observed − mean`` in ``bins`` equally populated bins of
    the predicted ``variance`` (all three from the blind passes), at the bins' medians
    of log ``variance``."""
    log_variance = np.log(np.asarray(variance, dtype=np.float64).ravel())
    squared = np.square(
        np.asarray(observed, dtype=np.float64).ravel() - np.asarray(mean, dtype=np.float64).ravel()
    )
    which, count = equal_bins(log_variance, bins)
    if count < 1:  # one predicted variance everywhere: one level
        return ResidualProfile((float(log_variance[0]),), (float(squared.mean()),))
    knots, levels = [], []
    for b in range(count):
        inside = which == b
        if inside.any():
            knots.append(float(np.median(log_variance[inside])))
            levels.append(float(squared[inside].mean()))
    return ResidualProfile(tuple(knots), tuple(levels))


def posterior_mean(
    observed: np.ndarray, mean: np.ndarray, variance: np.ndarray, noise_variance: np.ndarray
) -> np.ndarray:
    """Per pixel, μ + (1 − n²/v)(y − μ), the observed pixel's weight clipped to [0, 1]
    (float32; computed by models/posterior.py, as the exported package computes it)."""
    values = [_tensor(a) for a in (observed, mean, variance, noise_variance)]
    return posterior.posterior_mean(*values).numpy()


def _tensor(values: np.ndarray | float) -> torch.Tensor:
    """A float32 tensor sharing ``values``' memory where it can (torch warns about
    read-only arrays: those are copied)."""
    array = np.asarray(values, dtype=np.float32)
    return torch.from_numpy(array if array.flags.writeable else array.copy())
