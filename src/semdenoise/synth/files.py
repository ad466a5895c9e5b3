"""Write a synthetic set to a folder: ``semdenoise synth`` as one call.

The stacks go to ``clean.tif``, ``noisy.tif``, ``masks.tif`` and ``instances.tif``, and
what made them (task, count, size, seed, noise, the clean data range for PSNR/SSIM) to
``meta.json``, so ``semdenoise evaluate`` can score against them. Errors name the
command's options: their values are checked here, before any image is made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from semdenoise.errors import InputError
from semdenoise.io import write_image
from semdenoise.synth.datasets import DEFAULT_NOISE, NoiseSettings, SyntheticSet, make_set


def write_set(
    task: str,
    out: str | os.PathLike,
    *,
    n: int = 16,
    size: int = 256,
    depth: int | None = None,
    seed: int = 0,
    photons_per_unit: float | None = None,
    read_sigma: float | None = None,
    correlation: float = 0.0,
) -> SyntheticSet:
    """Make ``n`` seeded images of ``task`` (:func:`make_set`) and write them to ``out``.

    ``photons_per_unit`` and ``read_sigma`` default to the task's noise
    (:data:`DEFAULT_NOISE`). Returns the set written.
    """
    if task not in DEFAULT_NOISE:
        raise InputError(f"unknown task {task!r}; choose plaques or somata")
    if n < 1 or size < 16 or (depth is not None and depth < 1):
        raise InputError("--n and --depth must be at least 1 and --size at least 16")
    default = DEFAULT_NOISE[task]
    noise = NoiseSettings(
        photons_per_unit=default.photons_per_unit if photons_per_unit is None else photons_per_unit,
        read_sigma=default.read_sigma if read_sigma is None else read_sigma,
        correlation=correlation,
    )
    if noise.photons_per_unit <= 0 or noise.read_sigma < 0 or noise.correlation < 0:
        raise InputError("--photons must be > 0, --read-noise and --correlation >= 0")
    images = make_set(task, n, size=size, depth=depth, seed=seed, noise=noise)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stacks = {
        "clean": images.clean,
        "noisy": images.noisy,
        "masks": images.masks,
        "instances": images.instances,
    }
    for name, stack in stacks.items():
        write_image(out / f"{name}.tif", stack)
    meta = {"task": task, "n": n, "size": size, "depth": depth, "seed": seed}
    meta["noise"] = {
        "photons_per_unit": noise.photons_per_unit,
        "read_sigma": noise.read_sigma,
        "correlation": noise.correlation,
    }
    meta["data_range"] = images.data_range
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return images
