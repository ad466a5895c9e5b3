"""Training images held on the training device and sampled inside the step.

Sampling (like masking) happens on the device, driven by an explicit generator, so a
step costs no host round trip and a resumed run can restore the sampler's state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from semdenoise.errors import InputError
from semdenoise.io.checks import check_image, check_min_size, check_not_constant
from semdenoise.io.images import read_training_images

ImagesLike = str | os.PathLike | np.ndarray | Sequence[np.ndarray]


def load_training_images(images: ImagesLike, *, min_size: int) -> list[tuple[str, np.ndarray]]:
    """Named, checked 2-D float32 training images from a path, an array or a list of arrays.

    A (Z, Y, X) array or stack file contributes every slice as one image.
    """
    if isinstance(images, str | os.PathLike):
        named = read_training_images(images)
    else:
        arrays = [images] if isinstance(images, np.ndarray) else list(images)
        if not arrays:
            raise InputError("training images: empty list")
        named = []
        for index, array in enumerate(arrays):
            array = check_image(array, source=f"images[{index}]")
            if array.ndim == 2:
                named.append((f"images[{index}]", array))
            else:
                named.extend((f"images[{index}][{z}]", plane) for z, plane in enumerate(array))
    for source, image in named:
        check_min_size(image, min_size, source=source)
        check_not_constant(image, source=source)
    return named


def split_by_image(count: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation images; validation gets ⌊fraction·count⌋."""
    n_val = int(val_fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


@dataclass
class ImageBank:
    """Images grouped into stacks of equal shape, so a batch of full images is one slice."""

    stacks: list[torch.Tensor]  # each (N, 1, H, W)

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray]) -> ImageBank:
        by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
        for image in images:
            by_shape.setdefault(image.shape, []).append(image)
        stacks = [torch.from_numpy(np.stack(group)[:, None]) for group in by_shape.values()]
        return cls(stacks=stacks)

    def to(self, device: torch.device) -> ImageBank:
        return ImageBank([stack.to(device) for stack in self.stacks])

    @property
    def count(self) -> int:
        return sum(len(stack) for stack in self.stacks)

    def _pick_stack(self, generator: torch.Generator) -> torch.Tensor:
        counts = torch.tensor([float(len(s)) for s in self.stacks], device=generator.device)
        return self.stacks[int(torch.multinomial(counts, 1, generator=generator))]

    def full_images(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` whole images of one shape (drawn with replacement if the group is small)."""
        stack = self._pick_stack(generator)
        index = torch.randint(len(stack), (batch,), generator=generator, device=generator.device)
        return stack[index]

    def crops(self, batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` random square crops, images drawn in proportion to their area."""
        areas = torch.tensor(
            [float(s.shape[-2] * s.shape[-1] * len(s)) for s in self.stacks],
            device=generator.device,
        )
        size = min(size, *(min(s.shape[-2:]) for s in self.stacks))
        crops = []
        choice = torch.multinomial(areas, batch, replacement=True, generator=generator)
        for k in choice.tolist():
            stack = self.stacks[k]
            height, width = stack.shape[-2:]
            u = torch.rand(3, generator=generator, device=generator.device).tolist()
            i = int(u[0] * len(stack))
            y = int(u[1] * (height - size + 1))
            x = int(u[2] * (width - size + 1))
            crops.append(stack[i, :, y : y + size, x : x + size])
        return torch.stack(crops)


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 rotations/flips of the square's symmetry group, for the whole batch."""
    k = int(torch.randint(8, (1,), generator=generator, device=generator.device))
    batch = torch.rot90(batch, k % 4, dims=(-2, -1))
    return batch.flip(-1) if k >= 4 else batch
