"""3-D vs 2-D (slice-by-slice) Noise2Void on a light-sheet volume, same CPU-time budget.

The TRAILMAP light-sheet volume of ``../shared/data/trailmap_lightsheet_axons``
(101x120x120, u16, axons) is the "clean" reference; Poisson-Gaussian noise is added
with a fixed seed (gain 20 counts per photon, read noise sigma 100 counts, not clipped).
Both networks train on the noisy slices z < 71 only and denoise the 30 unseen noisy
slices z >= 71, each for a fixed number of optimiser steps (same seed and steps, same
model, whatever the machine's load); the defaults, 316 steps 2-D and 119 steps 3-D, are
what 2 minutes each gave on 2 CPU cores:

* N2V 2-D: the CPU preset (depth 3, 16 base channels, direct output, lr 1e-3), grid
  masking, batches of 8 whole 120x120 slices (115 k pixels a step);
* N2V 3-D: depth 2, 16 base channels, direct output, lr 1e-3, 3-D grid masking on random
  32x64x64 crops (131 k voxels a step), the 16 symmetries of anisotropic voxels.

Baselines: the noisy input and a 3-D Gaussian blur whose sigma is chosen with the clean
volume (an oracle). PSNR over the test volume and SSIM (7x7, mean over slices), both
with ``data_range`` = the clean volume's 0.1-99.9 percentile range (a few saturated
voxels at 65535 would otherwise set it). Prints a markdown table, writes JSON.

    python benchmarks/lightsheet_3d.py --steps 316 --steps-3d 119 \
        --out benchmarks/results/lightsheet_3d.json
    python benchmarks/lightsheet_3d.py --quick          # a few steps, a smoke check
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

DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "trailmap_lightsheet_axons"
    / "volume.tif"
)
SEED = 2024
GAIN = 20.0
READ_SIGMA = 100.0
TRAIN_SLICES = 71


def add_noise(clean: np.ndarray, seed: int) -> np.ndarray:
    """Poisson shot noise (``GAIN`` counts per photon) plus Gaussian read noise."""
    rng = np.random.default_rng(seed)
    photons = rng.poisson(np.maximum(clean, 0) / GAIN)
    return (photons * GAIN + rng.normal(0, READ_SIGMA, clean.shape)).astype(np.float32)


def scores(clean: np.ndarray, volume: np.ndarray, data_range: float) -> dict[str, float]:
    return {
        "PSNR": psnr(clean, volume, data_range=data_range),
        "SSIM": float(
            np.mean([ssim(c, v, data_range=data_range) for c, v in zip(clean, volume, strict=True)])
        ),
    }


def oracle_gaussian(clean: np.ndarray, noisy: np.ndarray, data_range: float) -> tuple[dict, float]:
    """The 3-D Gaussian blur whose sigma maximises PSNR against the clean volume."""
    best = None
    for sigma in np.arange(0.3, 2.51, 0.1):
        blurred = gaussian_filter(noisy, sigma)
        value = psnr(clean, blurred, data_range=data_range)
        if best is None or value > best[0]:
            best = (value, float(sigma), blurred)
    return scores(clean, best[2], data_range), best[1]


def n2v_row(
    name: str,
    train_noisy: np.ndarray,
    test_noisy: np.ndarray,
    test_clean: np.ndarray,
    data_range: float,
    *,
    unet: sd.UNetConfig,
    train: sd.TrainConfig,
) -> dict:
    model = sd.train_n2v(train_noisy, unet=unet, train=train)
    started = time.perf_counter()
    denoised = sd.denoise(model, test_noisy)
    seconds = time.perf_counter() - started
    steps = model.training["steps"]
    return {
        "method": name,
        **scores(test_clean, denoised, data_range),
        "train steps": steps,
        "train voxels/s": round(
            steps * voxels_per_step(unet, train, train_noisy) / model.training["seconds"]
        ),
        "predict s per megavoxel": round(seconds / (test_noisy.size / 1e6), 2),
    }


def voxels_per_step(unet: sd.UNetConfig, train: sd.TrainConfig, volume: np.ndarray) -> int:
    if unet.dims == 3:
        crop = (train.crop_depth, train.crop_size, train.crop_size)
        return int(np.prod([min(c, s) for c, s in zip(crop, volume.shape, strict=True)]))
    return int(train.batch_size * volume.shape[1] * volume.shape[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lightsheet_3d.json"))
    parser.add_argument(
        "--steps",
        type=int,
        default=316,
        help="optimiser steps of the 2-D network (default: what 2 minutes gave on 2 CPU cores)",
    )
    parser.add_argument(
        "--steps-3d",
        type=int,
        default=119,
        help="optimiser steps of each 3-D network (default: what 2 minutes gave on 2 CPU "
        "cores, the CPU time of the 2-D default)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="optional wall-clock cap per model, on top of the steps (whichever comes "
        "first); a cap that stops a run makes results depend on the machine's load",
    )
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument(
        "--xy-only-levels", type=int, nargs="+", default=[0], help="3-D rows to run"
    )
    parser.add_argument(
        "--blind-filter",
        type=int,
        help="radius of the learned blind-spot blur under both networks' mean "
        "(UNetConfig.blind_filter; default the library's, train_n2v's 3; 0: none)",
    )
    parser.add_argument(
        "--train-seed",
        type=int,
        default=SEED,
        help="seed of weights and sampling (the noise keeps its own fixed seed)",
    )
    parser.add_argument("--quick", action="store_true", help="16 steps 2-D, 6 steps 3-D")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.quick:
        args.steps, args.steps_3d = 16, 6
    clean = tifffile.imread(DATA).astype(np.float32)
    noisy = add_noise(clean, SEED)
    low, high = np.percentile(clean, [0.1, 99.9])
    data_range = float(high - low)
    train_noisy = noisy[:TRAIN_SLICES]
    test_clean, test_noisy = clean[TRAIN_SLICES:], noisy[TRAIN_SLICES:]

    rows = [{"method": "noisy", **scores(test_clean, test_noisy, data_range)}]
    oracle, sigma = oracle_gaussian(test_clean, test_noisy, data_range)
    rows.append(
        {
            "method": f"Gaussian 3-D, sigma {sigma:.1f} chosen with the clean volume (oracle)",
            **oracle,
        }
    )
    print(markdown_table(rows), flush=True)

    common = {
        "max_minutes": args.minutes,
        "seed": args.train_seed,
        "learning_rate": 1e-3,
        "val_fraction": 0.0,
    }
    cap = "" if args.minutes is None else f" (cap {args.minutes:g} min)"
    unet_2d = sd.UNetConfig(
        depth=3, base_channels=args.base_channels, residual=False, blind_filter=args.blind_filter
    )
    train_2d = sd.TrainConfig(steps=args.steps, batch_size=8, **common)
    rows.append(
        n2v_row(
            f"N2V 2-D slice by slice, {args.steps} steps{cap}",
            train_noisy, test_noisy, test_clean, data_range, unet=unet_2d, train=train_2d,
        )
    )  # fmt: skip
    print(markdown_table(rows[-1:]), flush=True)
    train_3d = sd.TrainConfig(steps=args.steps_3d, crop_depth=32, crop_size=64, **common)
    for xy_only in args.xy_only_levels:
        unet_3d = sd.UNetConfig(
            dims=3, depth=2, base_channels=args.base_channels, residual=False,
            xy_only_levels=xy_only, blind_filter=args.blind_filter,
        )  # fmt: skip
        label = "" if xy_only == 0 else f", first {xy_only} level(s) pool Y/X only"
        rows.append(
            n2v_row(
                f"N2V 3-D{label}, {args.steps_3d} steps{cap}",
                train_noisy, test_noisy, test_clean, data_range, unet=unet_3d, train=train_3d,
            )
        )  # fmt: skip
        print(markdown_table(rows[-1:]), flush=True)

    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    print(f"\n### light-sheet volume, trained on z < {TRAIN_SLICES}, evaluated on the rest\n")
    print(markdown_table(rows, columns), flush=True)
    result = {
        "data": "trailmap_lightsheet_axons/volume.tif",
        "noise": {"gain": GAIN, "read_sigma": READ_SIGMA, "seed": SEED},
        "train_seed": args.train_seed,
        "data_range": data_range,
        "train_slices": TRAIN_SLICES,
        "steps": args.steps,
        "steps_3d": args.steps_3d,
        "max_minutes": args.minutes,
        "args": recorded_args(args),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
