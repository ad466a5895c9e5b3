"""One interface for every denoiser an evaluation compares: a named 2-D image function.

A :class:`Method` denoises one 2-D image and records what it chose (calibrated
parameters, training steps). Trained models (N2V, joint) and classic filters look the
same to the evaluation; a model that also holds a segmenter says so, so its own
segmentation can be scored too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semdenoise.baselines.classic import CLASSIC, require_optional
from semdenoise.config import DEFAULT_BASELINE_STEPS
from semdenoise.errors import InputError
from semdenoise.io.axes import stack_axes
from semdenoise.models.trained import TrainedModel

logger = logging.getLogger(__name__)

BASELINES = ("gaussian", "nlm", "tv", "bm3d", "n2v-grid", "n2v-patch")


@dataclass
class Method:
    """A named denoiser of 2-D images; ``details`` collects what each call chose."""

    name: str
    function: Callable[[np.ndarray], tuple[np.ndarray, dict[str, Any]]]
    model: TrainedModel | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        denoised, chosen = self.function(image)
        for key, value in chosen.items():
            self.details.setdefault(key, []).append(value)
        return denoised

    @property
    def has_segmenter(self) -> bool:
        return self.model is not None and self.model.segmenter is not None


def model_method(name: str, model: TrainedModel, *, noise_sigma: float | str | None = None):
    """A trained model's denoiser (N2V or joint) as a method."""
    from semdenoise.predict import denoise
    from semdenoise.predict.denoise import observed_pixel_weight

    if model.denoiser is None:
        raise ValueError(f"method {name}: the {model.kind} model holds no denoiser")
    observed_pixel_weight(model, noise_sigma)  # refuse a model that cannot blend, now
    if model.denoiser.config.in_channels > 1:
        raise InputError(
            f"takes {model.denoiser.config.in_channels} channels; evaluate scores "
            "one-channel models"
        )

    def run(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        axes = stack_axes(image.ndim)
        return denoise(model, image, axes=axes, noise_sigma=noise_sigma, source=name), {}

    method = Method(name, run, model=model)
    method.details["training"] = {
        k: model.training.get(k) for k in ("mode", "steps") if k in model.training
    }
    return method


def classic_method(name: str, *, noise_sigma: float | None = None) -> Method:
    """Gaussian, NLM or TV (self-calibrated per image) or BM3D (sigma estimated or given)."""
    function = CLASSIC[name]
    if name == "bm3d":
        return Method(name, lambda image: function(image, noise_sigma))
    return Method(name, function)


def n2v_method(
    name: str,
    noisy_images: np.ndarray,
    *,
    masking: str,
    steps: int,
    seed: int = 0,
    max_minutes: float | None = None,
    noise_sigma: float | str | None = None,
) -> Method:
    """Train N2V (CPU preset) on the noisy images for ``steps`` (or fewer when
    ``max_minutes`` runs out first, which makes the result depend on the machine's load):
    a self-supervised baseline that, like the classic filters, sees no clean image."""
    from semdenoise.config import NO_NOISE_MODEL, PAPER_MASKING, cpu_training, cpu_unet
    from semdenoise.training import train_n2v

    started = time.perf_counter()
    model = train_n2v(
        noisy_images,
        unet=cpu_unet(),
        masking=PAPER_MASKING.model_copy(update={"mode": masking}),
        noise=NO_NOISE_MODEL,
        train=cpu_training(steps, seed, max_minutes=max_minutes),
    )
    logger.info(
        "%s: %d steps in %.0f s", name, model.training["steps"], time.perf_counter() - started
    )
    return model_method(name, model, noise_sigma=noise_sigma)


def resolve_baselines(names: Sequence[str]) -> list[str]:
    """The baseline names asked for (``"all"`` expanded), checked before any work: an
    unknown name is a ValueError, a missing optional package a DependencyError."""
    names = list(BASELINES) if list(names) == ["all"] else list(names)
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)} or all")
    require_optional(names)
    return names


def noise_sigma_rule(noise_sigma: float | None) -> str:
    """The one rule by which a known noise level reaches the methods, for reports.

    Every learned method is treated alike, whether an N2V baseline trained here or a
    model given by the user: a fair comparison cannot blend some and not others.
    """
    if noise_sigma is None:
        return (
            "No noise sigma given: BM3D estimates it per image; every learned method "
            "reports its network's prediction as it is."
        )
    return (
        f"Noise sigma {noise_sigma:g} (given): BM3D denoises at it, and every learned "
        "method (N2V baselines and given models alike) blends its prediction with the "
        "observed pixel at that sigma."
    )


def build_baselines(
    names: Sequence[str],
    noisy_images: np.ndarray,
    *,
    steps: int = DEFAULT_BASELINE_STEPS,
    seed: int = 0,
    noise_sigma: float | None = None,
    max_minutes: float | None = None,
) -> list[Method]:
    """The named baselines (``"all"`` for every one); learned ones train on ``noisy_images``.

    ``noise_sigma`` follows :func:`noise_sigma_rule`: BM3D denoises at it and the N2V
    baselines blend with the observed pixel at it.
    """
    names = resolve_baselines(names)
    methods = []
    for name in names:
        if name.startswith("n2v-"):
            masking = name.removeprefix("n2v-")
            methods.append(
                n2v_method(
                    name,
                    noisy_images,
                    masking=masking,
                    steps=steps,
                    seed=seed,
                    max_minutes=max_minutes,
                    noise_sigma=noise_sigma,
                )
            )
        else:
            methods.append(classic_method(name, noise_sigma=noise_sigma))
    return methods
