"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def n2v_loss(
    prediction: torch.Tensor,
    noisy: torch.Tensor,
    positions: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """MSE between prediction and the original noisy values at masked pixels only (Eq. 1–2).

    ``positions`` is (b, y, x) for images or (b, z, y, x) for volumes.
    """
    b, *coords = positions
    return (prediction[(b, 0, *coords)] - noisy[(b, 0, *coords)]).square().mean()


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on foreground probabilities, over the whole batch."""
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * labels).sum()
    return 1.0 - (2.0 * overlap + eps) / (probabilities.sum() + labels.sum() + eps)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """BCE (paper §2.2), Dice, their sum, or MSE of the sigmoid against the mask (the
    "style" segmenter of §2.3, trained to give an image style rather than classes)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, labels)
    if kind == "dice":
        return dice_loss(logits, labels)
    if kind == "bce+dice":
        return F.binary_cross_entropy_with_logits(logits, labels) + dice_loss(logits, labels)
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits), labels)
    raise ValueError(f"unknown segmentation loss {kind!r}")


def style_loss(denoised_unit: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """MSE between the denoised image (scaled to [0, 1]) and the segmenter's output on it
    (paper §2.3, Eq. 4): pulls the image towards a clean background and bright targets."""
    return F.mse_loss(denoised_unit, style)
