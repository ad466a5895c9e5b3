"""Evaluate denoisers on image files and write the report: ``semdenoise evaluate``.

Reads the noisy images and, when given, their clean versions, target masks and
instance labels (each of the noisy images' shape); builds the named baselines and
loads the given model files under one noise-sigma rule; picks the fixed segmenter
(Otsu, or a model file's segmenter); then runs :func:`evaluate` and writes the report.
Every check runs before any training, so a mistake costs no time. Errors name the
command's options (``--method``, ``--baselines``, ...): their values are checked here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from semdenoise.baselines import build_baselines, model_method, noise_sigma_rule, resolve_baselines
from semdenoise.config import DEFAULT_BASELINE_STEPS
from semdenoise.errors import InputError
from semdenoise.evaluation.evaluate import evaluate
from semdenoise.evaluation.report import write_evaluation
from semdenoise.evaluation.segmenters import model_segmenter, otsu_segmenter
from semdenoise.io import load_model, read_image
from semdenoise.io.axes import Layout
from semdenoise.io.images import read_label_ids, read_labels

PathLike = str | os.PathLike


def _as_stack(array: np.ndarray, axes: str | None, *, source: str) -> np.ndarray:
    """A one-channel array of declared ``axes`` as a (Y, X) image or (N, Y, X) stack."""
    if axes is None:
        return array
    layout = Layout.of(array, axes, source=source)
    if layout.channels > 1:
        raise InputError(
            f"{source}: evaluate scores one-channel images; axes {layout.axes} hold "
            f"{layout.channels} channels"
        )
    planes = layout.planes(array)
    return planes[0] if len(planes) == 1 and array.ndim == 2 else np.stack(planes)


def _read_matching(
    path: PathLike | None,
    shape: tuple[int, ...],
    what: str,
    reader: Callable[[PathLike], np.ndarray],
    axes: str | None = None,
) -> np.ndarray | None:
    if path is None:
        return None
    array = _as_stack(reader(path, axes=axes), axes, source=str(path))
    if array.shape != shape:
        raise InputError(
            f"{path}: {what} of shape {array.shape} do not match the noisy images {shape}"
        )
    return array


def evaluate_files(
    noisy: PathLike,
    out: PathLike,
    *,
    clean: PathLike | None = None,
    labels: PathLike | None = None,
    instances: PathLike | None = None,
    models: Sequence[tuple[str, PathLike]] = (),
    baselines: Sequence[str] = (),
    segmenter: PathLike | None = None,
    baseline_steps: int = DEFAULT_BASELINE_STEPS,
    baseline_minutes: float | None = None,
    noise_sigma: float | None = None,
    data_range: float | None = None,
    axes: str | None = None,
) -> Path:
    """Compare denoisers on the images of ``noisy``; returns the path of report.md in ``out``.

    Parameters
    ----------
    noisy
        Noisy image or stack to denoise.
    out
        Folder for report.md, report.json and figures.
    clean, labels, instances
        Clean versions (PSNR/SSIM), target masks (IoU and detection) and instance
        labels (detection; default: the masks' components, and only with ``labels``).
    models
        ``(name, model file)`` of trained denoisers to compare.
    baselines
        Baseline names (``gaussian``, ``nlm``, ``tv``, ``bm3d``, ``n2v-grid``,
        ``n2v-patch``) or ``["all"]``.
    segmenter
        The fixed segmenter for IoU/F1: a model file, or ``"otsu"`` (also when None).
    baseline_steps, baseline_minutes
        Training steps of each N2V baseline, and an optional time limit on top.
    noise_sigma
        Known Gaussian noise sigma, given alike to every method that can use it
        (:func:`semdenoise.baselines.noise_sigma_rule`).
    data_range
        PSNR/SSIM data range (default: the clean images' range).
    axes
        The axes of the noisy and clean images (io/axes.py), one-channel layouts; the
        labels have the same. Every 2-D image over S, T and Z is scored.
    """
    if not models and not baselines:
        raise InputError("nothing to evaluate: give --method NAME=MODEL.pt and/or --baselines")
    try:  # unknown names and missing optional packages stop here, before any work
        names = resolve_baselines(baselines)
    except ValueError as e:
        raise InputError(f"--baselines: {e}") from None
    noisy_images = _as_stack(read_image(noisy, axes=axes), axes, source=str(noisy))
    shape = noisy_images.shape
    clean_images = _read_matching(clean, shape, "clean images", read_image, axes)
    label_images = _read_matching(labels, shape, "labels", read_labels, axes)
    instance_images = _read_matching(instances, shape, "instances", read_label_ids, axes)
    if instances is not None and labels is None:
        raise InputError("--instances needs --labels (the target masks) too")
    given = []  # the user's models, under the same noise-sigma rule as the baselines
    for name, path in models:
        model = load_model(path)
        if model.denoiser is None:
            raise InputError(f"--method {name}: {path} holds no denoiser")
        try:
            given.append(model_method(name, model, noise_sigma=noise_sigma))
        except InputError as e:
            raise InputError(f"--method {name}: {path}: {e}") from None
    fixed = None
    if label_images is not None:
        if segmenter in (None, "otsu"):
            fixed = otsu_segmenter
        else:
            seg_model = load_model(segmenter)
            if seg_model.segmenter is None:
                raise InputError(f"--segmenter {segmenter}: holds no segmenter")
            fixed = model_segmenter(seg_model)
    stack = noisy_images if noisy_images.ndim == 3 else noisy_images[None]
    methods = build_baselines(
        names,
        stack,
        steps=baseline_steps,
        max_minutes=baseline_minutes,
        noise_sigma=noise_sigma,
    )
    methods += given
    try:
        evaluation = evaluate(
            noisy_images,
            methods,
            clean=clean_images,
            labels=label_images,
            instances=instance_images,
            segmenter=fixed,
            data_range=data_range,
        )
    except ValueError as e:
        raise InputError(str(e)) from None
    return write_evaluation(
        evaluation,
        out,
        title=f"Evaluation of {Path(noisy).name}",
        intro=" ".join(
            [f"Fixed segmenter: {segmenter or 'otsu'}." if fixed is not None else ""]
            + [noise_sigma_rule(noise_sigma)]
        ).strip(),
    )
