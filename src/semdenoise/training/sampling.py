"""Training images held on the training device and sampled inside the step.

Sampling (like masking) happens on the device, driven by an explicit generator, so a
step costs no host round trip and a resumed run can restore the sampler's state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

FULL_IMAGE_LIMIT = 2048 * 2048  # 2-D images trained whole up to this many pixels
LARGE_IMAGE_CROP = 1024  # larger ones: random crops of this side


@dataclass
class ImageBank:
    """Images grouped into stacks of equal shape, so a batch of full images is one slice.

    The first ``channels`` channels hold the (normalised) image; labels, when there are
    some, ride along as the next channel (the target) and, when some pixels are
    unlabelled, the one after (the loss weight: 0 there), so cropping and augmentation
    keep them aligned for free. Fully
    labelled data carries no weight channel: it trains exactly as it did before partial
    labels existed (the convolutions' rounding depends on the tensor layout).
    """

    stacks: list[torch.Tensor]  # each (N, C, H, W), or (N, C, Z, Y, X) for volumes
    channels: int = 1  # image channels; labels follow them
    _counts: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_arrays(
        cls,
        images: Sequence[np.ndarray],
        labels: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
        *,
        channels: int = 1,
    ) -> ImageBank:
        """``images``: each (Y, X), or (C, Y, X) for ``channels`` > 1 (volumes: Z before
        Y); ``labels``: (target, weight) per image, from ``encode_labels``."""
        weighted = labels is not None and not all(weight.all() for _, weight in labels)
        by_shape: dict[tuple[int, ...], list[np.ndarray]] = {}
        for index, image in enumerate(images):
            planes = list(image) if channels > 1 else [image]
            if labels is not None:
                planes += list(labels[index]) if weighted else [labels[index][0]]
            by_shape.setdefault(image.shape, []).append(np.stack(planes))
        stacks = [torch.from_numpy(np.stack(group)) for group in by_shape.values()]
        return cls(stacks=stacks, channels=channels)

    def to(self, device: torch.device) -> ImageBank:
        return ImageBank([stack.to(device) for stack in self.stacks], channels=self.channels)

    @property
    def count(self) -> int:
        return sum(len(stack) for stack in self.stacks)

    def for_rank(self, rank: int, world: int) -> ImageBank:
        """Process ``rank``'s share of a DDP run of ``world`` processes: images ``rank``,
        ``rank + world``, ... (in bank order) when there are at least ``world`` of them,
        else all of them (each rank's generator differs, so the batches still do).
        One process keeps the bank as it is."""
        if world <= 1 or self.count < world:
            return self
        stacks, start = [], 0
        for stack in self.stacks:
            share = stack[(rank - start) % world :: world]
            start += len(stack)
            if len(share):
                stacks.append(share)
        return ImageBank(stacks, channels=self.channels)

    def intensity_values(self) -> np.ndarray:
        """Every (normalised) image value, labels left out."""
        return torch.cat([s[:, : self.channels].reshape(-1) for s in self.stacks]).cpu().numpy()

    def image(self, index: int) -> torch.Tensor:
        """The ``index``-th image (over all stacks) as a batch of one, (1, C, H, W)."""
        for stack in self.stacks:
            if index < len(stack):
                return stack[index : index + 1]
            index -= len(stack)
        raise IndexError(index)

    def sample(
        self, batch: int, crop_size: int | Sequence[int] | None, generator: torch.Generator
    ) -> torch.Tensor:
        """A training batch: whole images, or random crops when a size is given. Images
        of more than ``FULL_IMAGE_LIMIT`` pixels train on crops of ``LARGE_IMAGE_CROP``
        even without a size: one whole 8192² image needs over 14 GB of activations."""
        if (
            crop_size is None
            and max(math.prod(s.shape[2:]) for s in self.stacks) > FULL_IMAGE_LIMIT
        ):
            crop_size = LARGE_IMAGE_CROP
        if crop_size is None:
            return self.full_images(batch, generator)
        return self.crops(batch, crop_size, generator)

    def _pick_stack(self, generator: torch.Generator) -> torch.Tensor:
        counts = torch.tensor([float(len(s)) for s in self.stacks], device=generator.device)
        return self.stacks[int(torch.multinomial(counts, 1, generator=generator))]

    def full_images(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` whole images of one shape (drawn with replacement if the group is small)."""
        stack = self._pick_stack(generator)
        index = torch.randint(len(stack), (batch,), generator=generator, device=generator.device)
        return stack[index]

    def crops(
        self, batch: int, size: int | Sequence[int], generator: torch.Generator
    ) -> torch.Tensor:
        """``batch`` random crops, images drawn in proportion to their pixel count.

        An int is a square crop (clipped to the smallest side of any image); a sequence
        gives one side per spatial axis, each clipped to the smallest image along it
        (volumes: (Z, Y, X), so a volume thinner than the crop is used whole in Z).
        """
        sizes = self._crop_sizes(size)
        areas = torch.tensor(
            [float(math.prod(s.shape[2:]) * len(s)) for s in self.stacks],
            device=generator.device,
        )
        crops = []
        choice = torch.multinomial(areas, batch, replacement=True, generator=generator)
        for k in choice.tolist():
            stack = self.stacks[k]
            u = torch.rand(1 + len(sizes), generator=generator, device=generator.device).tolist()
            i = int(u[0] * len(stack))
            window = tuple(
                slice(start, start + side)
                for side, extent, fraction in zip(sizes, stack.shape[2:], u[1:], strict=True)
                for start in [int(fraction * (extent - side + 1))]
            )
            crops.append(stack[(i, slice(None), *window)])
        return torch.stack(crops)

    def _crop_sizes(self, size: int | Sequence[int]) -> tuple[int, ...]:
        ndim = self.stacks[0].ndim - 2
        if isinstance(size, int):
            return (min(size, *(min(s.shape[2:]) for s in self.stacks)),) * ndim
        return tuple(
            min(side, *(s.shape[2 + axis] for s in self.stacks)) for axis, side in enumerate(size)
        )

    def labelled_crops(
        self, batch: int, size: int | Sequence[int], generator: torch.Generator
    ) -> torch.Tensor:
        """``batch`` random crops that each hold at least one labelled pixel or voxel.

        Sparse volume labels (a few labelled Z slices, ``--ignore-label``) leave most
        random crops without a labelled voxel, so most segmentation steps would learn
        nothing: on the TRAILMAP volume (labelled slices 17 and 48 of 101, the third
        held out) a uniform 8x64x64 crop holds labels in 17 % of draws, a 16x64x64 one
        in 37 %, a 32x64x64 one in 71 % (2,000 draws each; a 16-deep crop holds 1,518
        labelled voxels on average, one drawn here 4,096). A deeper crop would cover the
        labelled slices but costs every step of a 3-D net in proportion, and no depth
        suits slices further apart. Here a labelled voxel is drawn first (uniformly
        over all labelled voxels of the bank), then a window uniformly among those that
        contain it, which works for any crop depth and any label layout and still puts
        the labelled voxel anywhere in the crop (no fixed position for the net to
        learn). Without a weight channel every pixel is labelled: plain :meth:`crops`;
        with no labelled voxel at all, too (the segmentation loss is then 0).
        """
        counts = self._labelled_counts()
        if counts is None or not bool((counts > 0).any()):
            return self.crops(batch, size, generator)
        sizes = self._crop_sizes(size)
        weight = 1 + self.channels  # the weight channel's index
        picks = torch.multinomial(counts.reshape(-1), batch, replacement=True, generator=generator)
        crops = []
        for pick in picks.tolist():
            k, index, first = (int(i) for i in np.unravel_index(pick, counts.shape))
            stack = self.stacks[k]
            plane = stack[index, weight, first].reshape(-1)
            flat = int(torch.multinomial(plane, 1, generator=generator))
            position = (first, *(int(i) for i in np.unravel_index(flat, stack.shape[3:])))
            u = torch.rand(len(sizes), generator=generator, device=generator.device).tolist()
            window = []
            for side, extent, at, fraction in zip(sizes, stack.shape[2:], position, u, strict=True):
                low, high = max(0, int(at) - side + 1), min(int(at), extent - side)
                start = low + int(fraction * (high - low + 1))
                window.append(slice(start, start + side))
            crops.append(stack[(index, slice(None), *window)])
        return torch.stack(crops)

    def _labelled_counts(self) -> torch.Tensor | None:
        """Labelled voxels per (stack, image, plane along the first spatial axis), zero
        padded to one table; None without a weight channel. Computed once per bank."""
        if self.stacks[0].shape[1] < self.channels + 2:
            return None
        if self._counts is None:
            images = max(len(s) for s in self.stacks)
            planes = max(s.shape[2] for s in self.stacks)
            table = torch.zeros(len(self.stacks), images, planes, device=self.stacks[0].device)
            for k, stack in enumerate(self.stacks):
                weight = stack[:, self.channels + 1]
                table[k, : len(stack), : stack.shape[2]] = weight.reshape(
                    *weight.shape[:2], -1
                ).sum(-1)
            self._counts = table
        return self._counts


def label_planes(
    sample: torch.Tensor, channels: int = 1
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target (B, 1, ...) of a labelled batch of ``channels``-channel images and its
    loss weight (None: every pixel is labelled)."""
    target = sample[:, channels : channels + 1]
    return target, sample[:, channels + 1 : channels + 2] if sample.shape[
        1
    ] > channels + 1 else None


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 rotations/flips of the square's symmetry group, for the whole batch.

    Volumes (B, C, Z, Y, X) get those 8 in Y/X and, independently, a Z flip: the 16
    symmetries that keep an anisotropic voxel grid (thick Z slices) as it is.
    """
    volume = batch.ndim == 5
    k = int(torch.randint(16 if volume else 8, (1,), generator=generator, device=generator.device))
    batch = torch.rot90(batch, k % 4, dims=(-2, -1))
    batch = batch.flip(-1) if k % 8 >= 4 else batch
    return batch.flip(-3) if k >= 8 else batch


def centre_crop(batch: torch.Tensor, shape: Sequence[int] | None) -> torch.Tensor:
    """The central ``shape`` (clipped to the batch) of a (B, C, ...) batch; all if None."""
    if shape is None:
        return batch
    window = tuple(
        slice((extent - min(side, extent)) // 2, (extent - min(side, extent)) // 2 + side)
        for side, extent in zip(shape, batch.shape[2:], strict=True)
    )
    return batch[(slice(None), slice(None), *window)]
