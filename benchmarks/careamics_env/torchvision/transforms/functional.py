"""``center_crop``, as torchvision 0.2x computes it for tensors, in plain torch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def center_crop(img: torch.Tensor, output_size: int | Sequence[int]) -> torch.Tensor:
    """Crop the last two axes around their centre to ``output_size`` (zero-pad if larger).

    Same offsets as torchvision: the top/left margin is ``round((size - crop) / 2)``, and
    a crop larger than the image first pads it with zeros, the extra pixel going to the
    bottom/right.
    """
    if isinstance(output_size, int):
        crop_h = crop_w = output_size
    elif len(output_size) == 1:
        crop_h = crop_w = int(output_size[0])
    else:
        crop_h, crop_w = (int(s) for s in output_size)
    height, width = img.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        # F.pad takes (left, right, top, bottom) for the last two axes
        img = F.pad(img, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = img.shape[-2:]
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return img[..., top : top + crop_h, left : left + crop_w]


def __getattr__(name: str):
    """Any other ``torchvision.transforms.functional`` name: a placeholder (see ``..``)."""
    from .._placeholder import module_getattr

    return module_getattr(__name__)(name)
