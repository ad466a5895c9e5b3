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
from semdenoise.io.checks import (
    check_image,
    check_labels,
    check_min_size,
    check_not_constant,
    check_pairs,
)
from semdenoise.io.images import read_training_images, read_training_labels
from semdenoise.normalization import Normalization

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


def load_training_labels(labels: ImagesLike) -> list[tuple[str, np.ndarray]]:
    """Named uint8 {0, 1} label slices from a path, an array or a list of arrays."""
    if isinstance(labels, str | os.PathLike):
        return read_training_labels(labels)
    arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
    named = []
    for index, array in enumerate(arrays):
        array = check_labels(array, source=f"labels[{index}]")
        if array.ndim == 2:
            named.append((f"labels[{index}]", array))
        else:
            named.extend((f"labels[{index}][{z}]", plane) for z, plane in enumerate(array))
    return named


@dataclass
class TrainingData:
    """Everything a training mode needs from its inputs, checked and normalised."""

    count: int
    validation_count: int
    normalization: Normalization
    train_bank: ImageBank
    val_bank: ImageBank | None


def prepare_training_data(
    images: ImagesLike,
    labels: ImagesLike | None,
    *,
    min_size: int,
    val_fraction: float,
    seed: int,
    normalization: Normalization | None = None,
) -> TrainingData:
    """Load, check, split by image and normalise (statistics of the training split)."""
    named = load_training_images(images, min_size=min_size)
    named_labels = load_training_labels(labels) if labels is not None else None
    if named_labels is not None:
        check_pairs(named, named_labels)
    train_ids, val_ids = split_by_image(len(named), val_fraction, seed=seed)
    if normalization is None:
        normalization = Normalization.fit([named[i][1] for i in train_ids])

    def bank(ids: list[int]) -> ImageBank:
        return ImageBank.from_arrays(
            [normalization.normalize(named[i][1]) for i in ids],
            None if named_labels is None else [named_labels[i][1] for i in ids],
        )

    return TrainingData(
        count=len(named),
        validation_count=len(val_ids),
        normalization=normalization,
        train_bank=bank(train_ids),
        val_bank=bank(val_ids) if val_ids else None,
    )


def split_by_image(count: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation images; validation gets ⌊fraction·count⌋."""
    n_val = int(val_fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


@dataclass
class ImageBank:
    """Images grouped into stacks of equal shape, so a batch of full images is one slice.

    Channel 0 holds the (normalised) image; a label map, when there is one, rides along
    as channel 1, so cropping and augmentation keep the two aligned for free.
    """

    stacks: list[torch.Tensor]  # each (N, C, H, W)

    @classmethod
    def from_arrays(
        cls, images: Sequence[np.ndarray], labels: Sequence[np.ndarray] | None = None
    ) -> ImageBank:
        by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
        for index, image in enumerate(images):
            planes = [image] if labels is None else [image, labels[index].astype(np.float32)]
            by_shape.setdefault(image.shape, []).append(np.stack(planes))
        stacks = [torch.from_numpy(np.stack(group)) for group in by_shape.values()]
        return cls(stacks=stacks)

    def to(self, device: torch.device) -> ImageBank:
        return ImageBank([stack.to(device) for stack in self.stacks])

    @property
    def count(self) -> int:
        return sum(len(stack) for stack in self.stacks)

    def image(self, index: int) -> torch.Tensor:
        """The ``index``-th image (over all stacks) as a batch of one, (1, C, H, W)."""
        for stack in self.stacks:
            if index < len(stack):
                return stack[index : index + 1]
            index -= len(stack)
        raise IndexError(index)

    def sample(self, batch: int, crop_size: int | None, generator: torch.Generator) -> torch.Tensor:
        """A training batch: whole images, or random square crops when a size is given."""
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
