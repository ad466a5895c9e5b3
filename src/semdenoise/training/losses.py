"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semdenoise.models.noise_model import predicted_variance


def n2v_loss(
    prediction: torch.Tensor,
    noisy: torch.Tensor,
    positions: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """MSE between prediction and the original noisy values at masked pixels only (Eq. 1–2).

    ``positions`` is (b, y, x) for images or (b, z, y, x) for volumes; every channel of
    ``noisy`` counts, against the prediction's first (mean) channels.
    """
    b, *coords = positions
    channels = slice(0, noisy.shape[1])
    return (prediction[(b, channels, *coords)] - noisy[(b, channels, *coords)]).square().mean()


def n2v_variance_loss(
    prediction: torch.Tensor,
    noisy: torch.Tensor,
    positions: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """Gaussian negative log-likelihood of the noisy value at masked pixels under the
    predicted variance (channels C..2C-1) around the predicted mean (channels 0..C-1,
    detached: the mean learns from :func:`n2v_loss` alone, exactly as without a noise
    model)."""
    b, *coords = positions
    count = noisy.shape[1]
    means, variances = slice(0, count), slice(count, 2 * count)
    residual = noisy[(b, means, *coords)] - prediction[(b, means, *coords)].detach()
    variance = predicted_variance(prediction[(b, variances, *coords)])
    return 0.5 * (variance.log() + residual.square() / variance).mean()


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``weight`` is 1; 0 (with a gradient path) where no pixel
    counts, so a batch of unlabelled images adds nothing to the loss."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def dice_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    eps: float = 1.0,
) -> torch.Tensor:
    """Soft Dice loss on foreground probabilities, over the whole batch (weighted pixels)."""
    probabilities = torch.sigmoid(logits)
    if weight is not None:
        if not bool(weight.any()):
            return logits.sum() * 0.0
        probabilities, labels = probabilities * weight, labels * weight
    overlap = (probabilities * labels).sum()
    return 1.0 - (2.0 * overlap + eps) / (probabilities.sum() + labels.sum() + eps)


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE (paper §2.2), Dice, their sum, or MSE of the sigmoid against the mask (the
    "style" segmenter of §2.3, trained to give an image style rather than classes).

    ``labels`` is (B, 1, ...): 0/1 for a one-channel segmenter, class indices for a
    multi-class one (instances: background, interior, boundary), which trains with
    cross-entropy. ``weight`` (B, 1, ...) is 1 where a pixel is labelled, 0 where not
    (partial labels, ``--ignore-label``); the loss is the mean over labelled pixels.
    """
    if weight is not None and bool(weight.all()):
        weight = None  # every pixel labelled: the plain losses, as before partial labels
    if logits.shape[1] > 1:
        if kind != "bce":
            raise ValueError(f"a {logits.shape[1]}-class segmenter trains with bce (cross-entropy)")
        if weight is None:
            return F.cross_entropy(logits, labels[:, 0].long())
        per_pixel = F.cross_entropy(logits, labels[:, 0].long(), reduction="none")[:, None]
        return _weighted_mean(per_pixel, weight)
    if kind == "bce":
        return _bce(logits, labels, weight)
    if kind == "dice":
        return dice_loss(logits, labels, weight=weight)
    if kind == "bce+dice":
        return _bce(logits, labels, weight) + dice_loss(logits, labels, weight=weight)
    if kind == "mse":
        if weight is None:
            return F.mse_loss(torch.sigmoid(logits), labels)
        return _weighted_mean(F.mse_loss(torch.sigmoid(logits), labels, reduction="none"), weight)
    raise ValueError(f"unknown segmentation loss {kind!r}")


def _bce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits, labels)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return _weighted_mean(bce, weight)


def style_loss(denoised_unit: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """MSE between the denoised image (scaled to [0, 1]) and the segmenter's output on it
    (paper §2.3, Eq. 4): pulls the image towards a clean background and bright targets."""
    return F.mse_loss(denoised_unit, style)
