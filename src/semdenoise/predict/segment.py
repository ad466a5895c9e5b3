"""Segment an array with a model holding a segmenter (alone, or after its denoiser)."""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy.special import expit, softmax

from semdenoise.config import DEFAULT_TILE_SIZE
from semdenoise.errors import InputError
from semdenoise.io.axes import Layout
from semdenoise.io.checks import check_image, check_min_size
from semdenoise.models.targets import BACKGROUND
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.denoise import (
    as_model,
    check_network_output,
    model_layout,
    resolve_device,
)
from semdenoise.predict.instances import (
    connected_instances,
    instances_from_classes,
    instances_from_mask,
)
from semdenoise.predict.tiling import predict_tiled


def segment(
    model: TrainedModel | str | os.PathLike,
    image: np.ndarray,
    *,
    axes: str | None = None,
    probabilities: bool = False,
    instances: bool = False,
    threshold: float = 0.5,
    tile_size: int = DEFAULT_TILE_SIZE,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    source: str = "image",
) -> np.ndarray:
    """Foreground of a (Y, X) image or (Z, Y, X) stack: uint8 {0, 1}, float32
    probabilities, or with ``instances`` one integer per object (uint16/uint32, 0
    background, numbered per slice; :mod:`semdenoise.predict.instances`). A joint model
    segments its own denoised image, as it was trained to. A 3-D model segments each
    (Z, Y, X) volume as a whole (3-D tiles) and numbers its objects in 3-D. ``axes`` as in
    :func:`semdenoise.predict.denoise`; the result has the image's axes less C.
    """
    if probabilities and instances:
        raise InputError("choose probabilities or instances, not both")
    model = as_model(model)
    segmenter = model.segmenter
    if segmenter is None:
        raise InputError(f"model of kind {model.kind!r} holds no segmenter")
    image = check_image(image, source=source, axes=axes)
    layout = model_layout(model, image, axes, source=source)
    data = layout.canonical(image)  # (S, C, Z, Y, X)
    check_min_size(data, segmenter.config.min_size, source=source)
    device = resolve_device(device)
    cascade = model.kind == "joint" and model.denoiser is not None
    dtype = np.float32 if probabilities else np.uint32 if instances else np.uint8
    result = np.empty((data.shape[0], 1, *data.shape[2:]), dtype=dtype)
    options = {"tile_size": tile_size, "batch_size": batch_size, "device": device}
    if segmenter.config.dims == 3:  # each volume whole, through overlapping 3-D windows
        for s in range(data.shape[0]):
            volume = model.normalization.normalize(data[s])  # (C, Z, Y, X)
            result[s, 0] = _segment_input(
                model, volume, cascade, probabilities, instances, threshold, options, source
            )
        return _restore(layout, result, instances)
    for s in range(data.shape[0]):
        for z in range(data.shape[2]):
            normalized = model.normalization.normalize(data[s, :, z])
            result[s, 0, z] = _segment_input(
                model, normalized, cascade, probabilities, instances, threshold, options, source
            )
    return _restore(layout, result, instances)


def _segment_input(
    model: TrainedModel,
    normalized: np.ndarray,
    cascade: bool,
    probabilities: bool,
    instances: bool,
    threshold: float,
    options: dict,
    source: str,
) -> np.ndarray:
    """Mask, probabilities or objects of one normalised (C, Y, X) plane or (C, Z, Y, X)
    volume, by the model's 2-D or 3-D networks."""
    net_input = normalized[0] if len(normalized) == 1 else normalized
    if cascade:
        denoised = predict_tiled(model.denoiser, net_input, **options)
        net_input = (
            np.concatenate([normalized, denoised.reshape(normalized.shape)])
            if model.segmenter_sees_noisy
            else denoised
        )
    logits = predict_tiled(model.segmenter, net_input, **options)
    check_network_output(logits, model, source=source)
    if model.segmenter.config.out_channels > 1:  # background / interior / boundary
        classes = softmax(logits, axis=0)
        probability = 1.0 - classes[BACKGROUND]
    else:
        classes = None
        probability = expit(logits)  # no overflow warning for very confident pixels
    if instances:
        if classes is not None:
            return instances_from_classes(classes, threshold=threshold)
        mask = probability >= threshold
        return instances_from_mask(mask) if mask.ndim == 2 else connected_instances(mask)
    return probability if probabilities else probability >= threshold


def _restore(layout: Layout, result: np.ndarray, instances: bool) -> np.ndarray:
    """The (S, 1, Z, Y, X) result in the image's axes; objects in the smallest type."""
    if instances:
        result = result.astype(np.uint16) if result.max(initial=0) < 2**16 else result
    return layout.restore(result, channels=False)
