"""Foundation benchmark: grid-masked vs patch-based Noise2Void on noisy EM (Lucchi).

Gaussian noise sigma 25 (0–255 scale, fixed seed, not clipped) is added to the clean
slices of ``../shared/data/lucchi_em``. Two settings, every method on the same noisy
images in the same run:

* ``users``: 4 noisy test slices cropped to 512x512, N2V trained on exactly those
  slices and then denoising them (what N2V users do), for a short budget;
* ``heldout``: N2V trained on the 20 noisy training slices only and evaluated on the
  10 noisy test slices it never saw, both N2V modes for the same (long) budget.

Budgets are optimiser steps, so the same seed and steps give the same model whatever the
machine's load: ``--short-steps``/``--long-steps`` count steps of grid N2V on one
512x512 slice, and every other row trains on as many pixels (a patch step, 32 patches
of 64x64, is half a slice: twice the steps; a 768x1024 training slice is three: a third).
The defaults are what 4 and 10 minutes gave grid N2V on 2 CPU cores (349 and 938 steps);
the heldout rows get 313 grid and 1880 patch steps (10 minutes gave 218 and 1924).

Baselines: the noisy input, BM3D with the true sigma (``bm3d`` package), and a
Gaussian filter whose sigma is chosen with the clean image (an oracle no user has).
Prints markdown tables and writes every number to JSON.

    python benchmarks/em_n2v.py --short-steps 350 --long-steps 940 \
        --out benchmarks/results/em_n2v.json
    python benchmarks/em_n2v.py --quick        # a few steps per model, for a smoke check

The network is the CPU preset (depth 3, 16 base channels, lr 1e-3: about 3x the steps
per minute of the 32-channel default, chosen on the training slices only); rows say
whether the denoiser is the paper's residual one or predicts the image directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy.ndimage import gaussian_filter

import semdenoise as sd
from cli_runs import recorded_args
from semdenoise.evaluation.metrics import psnr, ssim
from semdenoise.report import markdown_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lucchi_em"
SIGMA = 25.0
SEED = 2024
BUDGET_PIXELS = 512 * 512  # a budget's step: grid N2V on one 512x512 slice


def step_pixels(masking: sd.MaskingConfig, images: np.ndarray) -> int:
    """Pixels one N2V training step sees (the default batch of whole images or patches)."""
    batch = sd.config.default_batch_size(masking)
    side = min(masking.patch_size, *images.shape[-2:])
    return int(batch * (side**2 if masking.mode == "patch" else np.prod(images.shape[-2:])))


def steps_for(budget: int, masking: sd.MaskingConfig, images: np.ndarray) -> int:
    """Steps that see as many pixels as ``budget`` grid steps on 512x512 slices."""
    return max(1, round(budget * BUDGET_PIXELS / step_pixels(masking, images)))


def load(split: str) -> np.ndarray:
    return tifffile.imread(DATA / f"{split}_images.tif").astype(np.float32)


def add_noise(clean: np.ndarray, seed: int) -> np.ndarray:
    return clean + np.random.default_rng(seed).normal(0, SIGMA, clean.shape).astype(np.float32)


def scores(clean: np.ndarray, images: np.ndarray) -> dict[str, float]:
    return {
        "PSNR": float(
            np.mean([psnr(c, i, data_range=255) for c, i in zip(clean, images, strict=True)])
        ),
        "SSIM": float(
            np.mean([ssim(c, i, data_range=255) for c, i in zip(clean, images, strict=True)])
        ),
    }


def oracle_gaussian(clean: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """The Gaussian blur whose sigma maximises PSNR against the clean images."""
    best = None
    for sigma in np.arange(0.5, 3.01, 0.1):
        blurred = np.stack([gaussian_filter(n, sigma) for n in noisy])
        value = scores(clean, blurred)["PSNR"]
        if best is None or value > best[0]:
            best = (value, float(sigma), blurred)
    return best[2], best[1]


def timed_bm3d(noisy: np.ndarray) -> tuple[np.ndarray, float]:
    import bm3d

    started = time.perf_counter()
    out = np.stack([bm3d.bm3d(n, sigma_psd=SIGMA).astype(np.float32) for n in noisy])
    return out, time.perf_counter() - started


def n2v_row(
    name: str,
    train_images: np.ndarray,
    test_noisy: np.ndarray,
    test_clean: np.ndarray,
    *,
    steps: int,
    max_minutes: float | None,
    masking: sd.MaskingConfig,
    unet: sd.UNetConfig,
    learning_rate: float,
) -> list[dict]:
    train = sd.TrainConfig(
        steps=steps,
        max_minutes=max_minutes,
        val_fraction=0.0,
        seed=0,
        learning_rate=learning_rate,
    )
    model = sd.train_n2v(train_images, unet=unet, masking=masking, train=train)
    steps, seconds = model.training["steps"], model.training["seconds"]
    pixels = step_pixels(masking, train_images)
    started = time.perf_counter()
    denoised = sd.denoise(model, test_noisy)
    predict_seconds = time.perf_counter() - started
    megapixels = test_noisy.size / 1e6
    row = {
        "method": name,
        **scores(test_clean, denoised),
        "train steps": steps,
        "train MP/s": round(steps * pixels / 1e6 / seconds, 3),
        "train 512² images/s": round(steps * pixels / 512**2 / seconds, 2),
        "predict MP/s": round(megapixels / predict_seconds, 3),
        "s per MP": round(predict_seconds / megapixels, 2),
    }
    # the same model, told the noise sigma (as BM3D is): blend with the observed pixel
    blended = sd.denoise(model, test_noisy, noise_sigma=SIGMA)
    blend_row = {"method": f"{name} + known-sigma blend", **scores(test_clean, blended)}
    # ... or not told it: sigma estimated from each noisy slice, as a user would run it
    estimated = sd.denoise(model, test_noisy, noise_sigma="auto")
    auto_row = {"method": f"{name} + estimated-sigma blend", **scores(test_clean, estimated)}
    return [row, blend_row, auto_row]


def baseline_rows(clean: np.ndarray, noisy: np.ndarray, *, with_bm3d: bool) -> list[dict]:
    megapixels = noisy.size / 1e6
    rows = [{"method": "noisy input", **scores(clean, noisy)}]
    blurred, sigma = oracle_gaussian(clean, noisy)
    rows.append(
        {
            "method": f"oracle Gaussian (sigma {sigma:.1f}, chosen with clean)",
            **scores(clean, blurred),
        }
    )
    if with_bm3d:
        out, seconds = timed_bm3d(noisy)
        rows.append(
            {
                "method": "BM3D (true sigma)",
                **scores(clean, out),
                "predict MP/s": round(megapixels / seconds, 3),
                "s per MP": round(seconds / megapixels, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/em_n2v.json"))
    parser.add_argument(
        "--short-steps",
        type=int,
        default=350,
        help="short budget in grid steps on a 512x512 slice; other rows: as many pixels "
        "(default: what 4 minutes gave on 2 CPU cores)",
    )
    parser.add_argument(
        "--long-steps",
        type=int,
        default=940,
        help="long budget (grid-direct-long and the heldout setting), counted the same way "
        "(default: what 10 minutes gave on 2 CPU cores)",
    )
    parser.add_argument(
        "--short-minutes",
        type=float,
        default=None,
        help="optional wall-clock cap of the short budget's rows, on top of the steps "
        "(whichever comes first); a cap that stops a run makes results depend on the "
        "machine's load",
    )
    parser.add_argument(
        "--long-minutes",
        type=float,
        default=None,
        help="optional wall-clock cap of the long budget's rows (as --short-minutes)",
    )
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--skip-heldout", action="store_true")
    parser.add_argument(
        "--users-rows",
        nargs="+",
        default=["grid-residual", "grid-direct", "patch-residual", "grid-direct-long"],
        help="which N2V rows of the users' setting to run",
    )
    parser.add_argument("--quick", action="store_true", help="8-step budgets, no BM3D")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.quick:
        args.short_steps = args.long_steps = 8
    residual = sd.UNetConfig(depth=args.depth, base_channels=args.base_channels, residual=True)
    direct = residual.model_copy(update={"residual": False})
    grid, patch = sd.MaskingConfig(mode="grid"), sd.MaskingConfig(mode="patch")
    short = (args.short_steps, args.short_minutes)
    long = (args.long_steps, args.long_minutes)
    result = {
        "args": recorded_args(args),
        "sigma": SIGMA,
        "seed": SEED,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "unet": residual.model_dump(),
        "learning_rate": args.learning_rate,
        "tables": {},
    }

    def n2v(label, train_images, noisy, clean, budget, masking, unet):
        steps = steps_for(budget[0], masking, train_images)
        cap = "" if budget[1] is None else f" (cap {budget[1]:g} min)"
        row = n2v_row(
            f"{label}, {steps} steps{cap}",
            train_images,
            noisy,
            clean,
            steps=steps,
            max_minutes=budget[1],
            masking=masking,
            unet=unet,
            learning_rate=args.learning_rate,
        )
        print(markdown_table(row, _columns(row)), flush=True)
        return row

    test_clean_all = load("test")
    users_clean = test_clean_all[:4, 128:640, 256:768]
    users_noisy = add_noise(users_clean, SEED)
    rows = baseline_rows(users_clean, users_noisy, with_bm3d=not args.quick)
    users_rows = {
        "grid-residual": ("N2V grid, residual (paper)", short, grid, residual),
        "grid-direct": ("N2V grid, direct", short, grid, direct),
        "patch-residual": ("N2V patch, residual", short, patch, residual),
        "patch-direct": ("N2V patch, direct", short, patch, direct),
        "grid-direct-long": ("N2V grid, direct", long, grid, direct),
    }
    for key in args.users_rows:
        label, budget, masking, unet = users_rows[key]
        rows.extend(n2v(label, users_noisy, users_noisy, users_clean, budget, masking, unet))
    result["tables"]["users"] = rows
    print("\n### 4 noisy 512x512 test slices, N2V trained on them\n")
    print(markdown_table(rows, _columns(rows)), flush=True)

    if not args.skip_heldout:
        train_noisy = add_noise(load("train"), SEED + 1)
        test_noisy = add_noise(test_clean_all, SEED)
        rows = baseline_rows(test_clean_all, test_noisy, with_bm3d=not args.quick)
        for label, masking in (("N2V grid, direct", grid), ("N2V patch, direct", patch)):
            rows.extend(n2v(label, train_noisy, test_noisy, test_clean_all, long, masking, direct))
        result["tables"]["heldout"] = rows
        print("\n### trained on 20 noisy training slices, evaluated on 10 noisy test slices\n")
        print(markdown_table(rows, _columns(rows)), flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {args.out}")


def _columns(rows: list[dict]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    return columns


if __name__ == "__main__":
    main()
