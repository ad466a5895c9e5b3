"""The posterior mean of a blind-spot prediction, in PyTorch alone.

A denoiser that learned a noise model predicts, for each pixel, a prior from the pixel's
context (mean μ and variance v); the observed value y is a second, independent witness,
and the two combine into the posterior mean (Laine et al., NeurIPS 2019; why and how the
noise model is fitted: models/noise_model.py). The prior must come from a pass in which
the pixel was hidden (predict/blind.py says why), so the network runs ``stride``² times,
each pass replacing one pixel in ``stride``² by the median of its window.

This module imports torch only, for one reason: ``semdenoise denoise`` computes with it
(predict/blind.py, models/noise_model.py) and ``semdenoise export`` ships its source in
a package's architecture file (export/source.py), so a BioImage Model Zoo package
computes exactly what ``denoise`` computes. Tensors are (B, C, Y, X), normalised units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# the smallest variance a head predicts (normalised units): keeps the likelihood finite
VARIANCE_FLOOR = 1e-4
# 4x4 = 16 passes: one masked pixel in 16 (the training default masks one in 25)
BLIND_STRIDE = 4


def predicted_variance(raw: torch.Tensor) -> torch.Tensor:
    """The variance head's output made positive: softplus + floor."""
    return F.softplus(raw) + VARIANCE_FLOOR


def noise_variance(
    mean: torch.Tensor, offset: float | torch.Tensor, slope: float | torch.Tensor
) -> torch.Tensor:
    """The noise model's variance at the signal ``mean``: ``offset + slope * mean``,
    floored (per channel when ``offset`` and ``slope`` are (1, C, 1, 1) tensors)."""
    return (offset + slope * mean).clamp_min(VARIANCE_FLOOR)


def interpolated(values: torch.Tensor, knots: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``levels`` at ``values`` (B, C, ...), per channel: ``knots`` and
    ``levels`` are (C, K), knots rising; flat beyond the first and the last knot."""
    result = torch.empty_like(values)
    for c in range(values.shape[1]):
        x, xs, ys = values[:, c].contiguous(), knots[c].contiguous(), levels[c]
        if len(xs) == 1:
            result[:, c] = ys[0]
            continue
        right = torch.searchsorted(xs, x).clamp(1, len(xs) - 1)
        x0, x1, y0, y1 = xs[right - 1], xs[right], ys[right - 1], ys[right]
        t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
        result[:, c] = y0 + t * (y1 - y0)
    return result


def residual_variance(
    variance: torch.Tensor, knots: torch.Tensor, levels: torch.Tensor
) -> torch.Tensor:
    """The blind passes' expected squared residual where the head predicts ``variance``
    (B, C, ...): per channel, ``levels`` linear in log variance between ``knots``, both
    (C, K) (models/noise_model.py ResidualProfile)."""
    return interpolated(torch.log(variance), knots, levels)


def posterior_mean(
    observed: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    noise_variance: torch.Tensor,
) -> torch.Tensor:
    """Per pixel, μ + (1 − n²/v)(y − μ), the observed pixel's weight clipped to [0, 1]."""
    weight = (1.0 - noise_variance / variance.clamp_min(VARIANCE_FLOOR)).clamp(0.0, 1.0)
    return mean + weight * (observed - mean)


def blind_stride(radius: int, stride: int = BLIND_STRIDE) -> int:
    """The pass grid's step: masked pixels of one pass lie outside each other's windows."""
    return max(stride, radius + 1)


def window_medians(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Each pixel's median over its (2r+1)² window without the centre, per channel of a
    (B, C, Y, X) image, image edges mirrored. The window holds an even count of
    neighbours: the median is the mean of the two middle values, as NumPy's."""
    height, width = image.shape[-2:]
    mode = "reflect" if min(height, width) > radius else "replicate"
    padded = F.pad(image, [radius] * 4, mode=mode)
    shifts = torch.stack(
        [
            padded[..., dy : dy + height, dx : dx + width]
            for dy in range(2 * radius + 1)
            for dx in range(2 * radius + 1)
            if (dy, dx) != (radius, radius)
        ]
    )
    # torch's median is the lower middle value; the upper one is the lower of the
    # negated values (two medians: 1.5x faster than a sort or kthvalue on the CPU, and
    # no int64 indices the size of the stack)
    low = shifts.median(dim=0).values
    high = -(-shifts).median(dim=0).values
    return (low + high) / 2


def blind_spot_prediction(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    radius: int,
    stride: int = BLIND_STRIDE,
) -> torch.Tensor:
    """(B, outputs, Y, X): ``predict`` on a (B, C, Y, X) image, each pixel's outputs from
    the pass that replaced it by its window median (in every channel, as training masks).

    Pass (a, b) masks every pixel with y % stride == a and x % stride == b. The pixels
    masked with a given one are the same wherever the image starts (its translates by
    multiples of ``stride``), so tiles of an image give what the whole image gives.
    """
    stride = blind_stride(radius, stride)
    medians = window_medians(image, radius)
    output = None
    for a in range(min(stride, image.shape[-2])):
        for b in range(min(stride, image.shape[-1])):
            masked = image.clone()
            masked[..., a::stride, b::stride] = medians[..., a::stride, b::stride]
            predicted = predict(masked)
            if output is None:
                output = torch.empty_like(predicted)
            output[..., a::stride, b::stride] = predicted[..., a::stride, b::stride]
    return output


def posterior_denoised(
    observed: torch.Tensor,
    predicted: torch.Tensor,
    offset: float | torch.Tensor,
    slope: float | torch.Tensor,
    residual: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The posterior mean (B, C, Y, X) from the observed image and the blind-spot
    prediction (B, 2C, Y, X: C means, then C raw variances), under the noise model
    ``offset + slope * μ`` (floats, or (1, C, 1, 1) per channel).

    ``residual``: (knots, levels), each (C, K), the blind passes' mean squared residual
    by log v measured at training time (models/noise_model.py ResidualProfile); it
    replaces the variance head's v as the weight's denominator."""
    channels = observed.shape[1]
    mean = predicted[:, :channels]
    variance = predicted_variance(predicted[:, channels:])
    if residual is not None:
        variance = residual_variance(variance, *residual)
    return posterior_mean(observed, mean, variance, noise_variance(mean, offset, slope))
