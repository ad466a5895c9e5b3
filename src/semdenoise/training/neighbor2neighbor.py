"""Neighbor2Neighbor training (Huang et al., CVPR 2021): a self-supervised objective
without a blind spot.

From each noisy crop it draws two half-size sub-images, one pixel of every 2x2 cell
each, two different edge-adjacent pixels (for pixel-independent noise their noises
are independent), and trains the network to map one onto the other, as Noise2Noise
does with two captures. A regulariser asks the same of the network's output on the
whole crop, so that what it learns at half resolution holds at full resolution.

Why it is here: every pixel carries loss (N2V's grid: one in 25), and the network sees
the pixel it denoises, so one pass denoises where the blind-spot posterior needs 16
(predict/blind.py). Measured against the N2V defaults at about equal CPU: +0.6 dB on
the FMD development fields (3 seeds), +0.2 dB on held-out EM; but on FMD field 20 a
longer run scored worse (docs/benchmarks.md), so it is an option, not the default. It
learns no noise model and stores no blind-spot error: ``denoise`` has nothing to blend
back, and a told sigma is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from semdenoise.config import TrainConfig
from semdenoise.models.unet import UNet
from semdenoise.training.runner import TrainingModule
from semdenoise.training.sampling import ImageBank, augment

# the 8 ordered pairs of edge-adjacent pixels of a 2x2 cell, cells read row by row
NEIGHBOUR_PAIRS = torch.tensor([(0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2)])
# crop side and batch of the runs in docs/benchmarks.md (not swept; --crop-size, --batch-size)
DEFAULT_CROP = 256
DEFAULT_BATCH = 4
# the regulariser's weight gamma rises from 1 to 2 over the run (the paper settles on 2;
# the rise eases the start, when the output on the whole crop is still poor)
REGULARISER_START, REGULARISER_END = 1.0, 2.0


def pair_choice(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 neighbour pairs per 2x2 cell of (B, C, Y, X) ``images``: (B, Y/2, X/2)."""
    b, _, h, w = images.shape
    return torch.randint(8, (b, h // 2, w // 2), generator=generator, device=generator.device)


def neighbour_subsample(
    images: torch.Tensor, choice: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two half-size sub-images of (B, C, Y, X) ``images`` (an odd last row or column
    is left out): per 2x2 cell, the first and the second pixel of pair ``choice``; every
    channel takes the same pixels."""
    b, c, h, w = images.shape
    h, w = h - h % 2, w - w % 2
    cells = images[:, :, :h, :w].reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    cells = cells.reshape(b, c, h // 2, w // 2, 4)
    pairs = NEIGHBOUR_PAIRS.to(choice.device)[choice]  # (B, Y/2, X/2, 2)
    first, second = (
        torch.gather(cells, 4, pairs[..., k][:, None, ..., None].expand(b, c, -1, -1, 1))[..., 0]
        for k in (0, 1)
    )
    return first, second


def neighbour_regulariser_weight(progress: float) -> float:
    """The regulariser's weight γ at a run's ``progress`` (0 to 1)."""
    return REGULARISER_START + (REGULARISER_END - REGULARISER_START) * progress


def noise2noise_term(denoiser: UNet, noisy: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """||f(g1(y)) − g2(y)||² alone: what validation follows."""
    first, second = neighbour_subsample(noisy, choice)
    return (denoiser(first) - second).square().mean()


def neighbor2neighbor_loss(
    denoiser: UNet,
    noisy: torch.Tensor,
    choice: torch.Tensor,
    regulariser_weight: float,
) -> torch.Tensor:
    """The paper's loss: ||f(g1(y)) − g2(y)||² + γ ||f(g1(y)) − g2(y) − (g1(f(y)) − g2(f(y)))||².

    The regulariser's f(y) is the network's output on the whole crop, without gradient
    (the paper's stop-gradient) and with BatchNorm's running statistics (eval mode), so
    the extra pass changes nothing the optimiser keeps. ``denoiser`` outputs one mean
    channel per input channel (no variance head).
    """
    first, second = neighbour_subsample(noisy, choice)
    with torch.no_grad():
        training = denoiser.training
        denoiser.eval()
        out_first, out_second = neighbour_subsample(denoiser(noisy), choice)
        denoiser.train(training)
    difference = denoiser(first) - second
    regulariser = (difference - (out_first - out_second)).square().mean()
    return difference.square().mean() + regulariser_weight * regulariser


class Neighbor2NeighborModule(TrainingModule):
    """Trains a U-Net denoiser with the Neighbor2Neighbor loss on random crops."""

    def __init__(
        self,
        denoiser: UNet,
        train: TrainConfig,
        train_bank: ImageBank,
        val_bank: ImageBank | None = None,
    ) -> None:
        super().__init__(train, train_bank, val_bank)
        self.denoiser = denoiser
        self.batch_size = train.batch_size or DEFAULT_BATCH
        self.crop = train.crop_size or DEFAULT_CROP

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        noisy = self._train_bank.sample(self.batch_size, self.crop, self.generator)
        if self.train_config.augment:
            noisy = augment(noisy, self.generator)
        choice = pair_choice(noisy, self.generator)
        weight = neighbour_regulariser_weight(self.progress)
        loss = neighbor2neighbor_loss(self.denoiser, noisy, choice, weight)
        self.check_finite(loss)
        self.log("train_loss", loss, prog_bar=True, on_step=True)
        self.log("lr", self.learning_rate_now(), on_step=True)
        return loss

    def validation_step(self, batch: int, batch_idx: int) -> None:
        """The Noise2Noise term alone, on a fixed pairing of each validation image."""
        noisy = self._val_bank.image(batch_idx)
        choice = pair_choice(noisy, self.validation_generator(batch_idx))
        loss = noise2noise_term(self.denoiser, noisy, choice)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=1, sync_dist=True)
