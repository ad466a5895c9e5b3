"""What the plugin does with napari layers, without Qt: train on layers, predict new ones.

The widgets run these functions in a worker thread and add what they return as layers;
the tests call them on a ``napari.components.ViewerModel``, which needs no display.
Results are napari *layer data tuples* ``(data, kwargs, layer_type)``, so they keep the
source layer's scale and translation and land where the source is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from semdenoise.config import UNetConfig
from semdenoise.errors import InputError
from semdenoise.io.axes import default_axes
from semdenoise.models.trained import TrainedModel

TrainMode = Literal["n2v", "neighbor2neighbor", "seg", "joint"]
TRAIN_MODES: dict[str, TrainMode] = {
    "Denoiser (Noise2Void)": "n2v",
    "Denoiser (Neighbor2Neighbor)": "neighbor2neighbor",
    "Segmenter (labels)": "seg",
    "Joint denoiser + segmenter (labels)": "joint",
}
LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


def layer_array(layer: Any) -> np.ndarray:
    """A layer's pixels as one in-memory array (level 0 of a multiscale layer)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def layer_axes(layer: Any, axes: str | None = None, *, volume: bool = False) -> str:
    """The axes to read a layer with: ``axes`` as typed, else what its dimensions
    have always meant (YX, SYX — or ZYX for a 3-D model), with C last for RGB."""
    if axes:
        return axes.strip().upper()
    ndim = layer.ndim  # of an RGB layer, without its colour axis
    found = default_axes(ndim, volume=volume)
    if found is not None and getattr(layer, "rgb", False):
        return found + "C"
    if found is None:
        raise InputError(
            f"layer {layer.name!r}: {ndim} dimensions; type its axes (for example SCYX, "
            "ZYX or TYX) in the Axes field"
        )
    return found


def label_array(layer: Any, image: np.ndarray, image_axes: str) -> np.ndarray:
    """A Labels layer's pixels, checked against the image they label (same shape less
    any channel axis), so a mismatch is one line naming both layers."""
    labels = layer_array(layer)
    expected = tuple(n for n, a in zip(image.shape, image_axes, strict=True) if a != "C")
    if labels.shape != expected:
        raise InputError(
            f"labels layer {layer.name!r} has shape {labels.shape}, the image's planes "
            f"have shape {expected}"
        )
    return labels


class TrainingProgress:
    """Reports each optimiser step and stops the run when asked.

    A Lightning callback (built lazily, so that importing the plugin does not import
    the training stack): ``report(step, total, loss)`` is called after every step;
    ``stop()`` ends training after the current step, and the run still returns a
    complete model, as ``--max-minutes`` does.
    """

    def __init__(self, report: Callable[[int, int, float | None], None] | None = None):
        self.report = report
        self.stop_requested = threading.Event()

    def stop(self) -> None:
        self.stop_requested.set()

    def callback(self):
        import lightning as L

        progress = self

        class _Callback(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                loss = None
                if isinstance(outputs, dict) and "loss" in outputs:
                    loss = float(outputs["loss"])
                elif outputs is not None and hasattr(outputs, "item"):
                    loss = float(outputs.item())
                if progress.report is not None:
                    progress.report(int(trainer.global_step), int(trainer.max_steps), loss)
                if progress.stop_requested.is_set():
                    trainer.should_stop = True

        return _Callback()


def train_on_layers(
    mode: TrainMode,
    images: Sequence[Any],
    *,
    labels: Sequence[Any | None] = (),
    steps: int,
    seed: int = 0,
    axes: str | None = None,
    unet: UNetConfig | None = None,
    progress: TrainingProgress | None = None,
) -> TrainedModel:
    """Train a model of ``mode`` on image layers (each one training image or stack).

    ``labels`` pairs with ``images`` (``None`` for an image without labels: it trains
    the denoiser only in joint mode, as a labels folder does on the command line). The
    settings are the command line's defaults (``unet`` overrides the architecture),
    run for a fixed number of ``steps``.
    """
    from semdenoise.config import MaskingConfig, TrainConfig
    from semdenoise.training import train_joint, train_n2v, train_seg

    if mode not in TRAIN_MODES.values():
        raise InputError(f"unknown training mode {mode!r}")
    if not images:
        raise InputError("choose an image layer to train on")
    layouts = {layer_axes(layer, axes) for layer in images}
    if len(layouts) > 1:
        raise InputError(f"image layers have different axes ({', '.join(sorted(layouts))})")
    (layout,) = layouts
    arrays = [layer_array(layer) for layer in images]
    train = TrainConfig(steps=steps, seed=seed)
    callbacks = [progress.callback()] if progress is not None else []
    options = {"train": train, "unet": unet, "axes": layout, "callbacks": callbacks}
    if mode == "n2v":
        return train_n2v(_one_or_list(arrays), **options)
    if mode == "neighbor2neighbor":  # train n2v --objective neighbor2neighbor
        masking = MaskingConfig(objective="neighbor2neighbor")
        return train_n2v(_one_or_list(arrays), masking=masking, **options)
    pairs = list(labels) + [None] * (len(images) - len(labels))
    label_arrays = [
        None if lab is None else label_array(lab, arr, layout)
        for lab, arr in zip(pairs, arrays, strict=True)
    ]
    if all(lab is None for lab in label_arrays):
        raise InputError(f"{mode}: choose a labels layer for the image")
    if mode == "seg":
        kept = [(a, lab) for a, lab in zip(arrays, label_arrays, strict=True) if lab is not None]
        return train_seg(
            _one_or_list([a for a, _ in kept]), _one_or_list([lab for _, lab in kept]), **options
        )
    return train_joint(
        _one_or_list(arrays),
        labels=_one_or_list(label_arrays) if len(arrays) > 1 else label_arrays[0],
        **options,
    )


def _one_or_list(arrays: list) -> Any:
    return arrays[0] if len(arrays) == 1 else arrays


def denoised_layer(
    model: TrainedModel, layer: Any, *, axes: str | None = None, tta: bool = False
) -> LayerDataTuple:
    """The layer denoised by ``model``, as a new image layer beside it."""
    from semdenoise.predict import denoise

    volume = _is_volume_model(model.denoiser)
    layout = layer_axes(layer, axes, volume=volume)
    denoised = denoise(model, layer_array(layer), axes=layout, tta=tta, source=layer.name)
    kwargs = {
        "name": f"{layer.name} denoised",
        **_placement(layer, layout),
        "rgb": bool(getattr(layer, "rgb", False)),
    }
    if getattr(layer, "colormap", None) is not None and not kwargs["rgb"]:
        kwargs["colormap"] = layer.colormap.name
    return denoised, kwargs, "image"


def segmented_layer(
    model: TrainedModel,
    layer: Any,
    *,
    axes: str | None = None,
    instances: bool = False,
    probabilities: bool = False,
) -> LayerDataTuple:
    """The layer segmented by ``model``: a Labels layer (the 0/1 mask, or one integer
    per object with ``instances``) or, with ``probabilities``, an image layer."""
    from semdenoise.predict import segment

    volume = _is_volume_model(model.segmenter)
    layout = layer_axes(layer, axes, volume=volume)
    result = segment(
        model,
        layer_array(layer),
        axes=layout,
        instances=instances,
        probabilities=probabilities,
        source=layer.name,
    )
    what = "probabilities" if probabilities else "instances" if instances else "mask"
    kwargs = {"name": f"{layer.name} {what}", **_placement(layer, layout, drop_channels=True)}
    if probabilities:
        return result, {**kwargs, "colormap": "magma", "contrast_limits": (0.0, 1.0)}, "image"
    return result, kwargs, "labels"


def _is_volume_model(network: Any) -> bool:
    return network is not None and network.config.dims == 3


def _placement(layer: Any, axes: str, *, drop_channels: bool = False) -> dict[str, Any]:
    """Scale and translation of the source layer, so the result overlays it (less the
    channel axis for a result without one; an RGB layer's colours are no napari axis)."""
    scale, translate = list(layer.scale), list(layer.translate)
    if drop_channels and "C" in axes and not getattr(layer, "rgb", False):
        channel = axes.index("C")
        del scale[channel], translate[channel]
    return {"scale": scale, "translate": translate}


def describe_model(model: TrainedModel) -> str:
    """A few words on a model for the widget: kind, networks, steps, channels."""
    from semdenoise.predict.denoise import training_objective

    neighbours = training_objective(model) == "neighbor2neighbor"
    kinds = {
        "n2v": "Neighbor2Neighbor denoiser" if neighbours else "Noise2Void denoiser",
        "seg": "segmenter",
        "joint": "joint model (Neighbor2Neighbor)" if neighbours else "joint model",
    }
    parts = [kinds.get(model.kind, model.kind)]
    network = model.denoiser or model.segmenter
    if network is not None:
        config = network.config
        parts.append(f"{config.dims}-D, {config.in_channels} channel(s)")
    steps = model.training.get("steps")
    if steps:
        parts.append(f"{steps} steps")
    if model.training.get("noise_model"):
        parts.append("learned noise model")
    return ", ".join(parts)
