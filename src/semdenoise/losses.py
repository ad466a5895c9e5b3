"""Training losses."""

from __future__ import annotations

import torch


def n2v_loss(
    prediction: torch.Tensor,
    noisy: torch.Tensor,
    positions: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """MSE between prediction and the original noisy values at masked pixels only (Eq. 1–2)."""
    b, y, x = positions
    return (prediction[b, 0, y, x] - noisy[b, 0, y, x]).square().mean()
