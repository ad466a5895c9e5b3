"""3-D joint training vs 3-D N2V then segmentation, on the light-sheet volume's sparse labels.

Data: the TRAILMAP light-sheet volume of ``../shared/data/trailmap_lightsheet_axons``
(101x120x120, u16, axons) with the Poisson-Gaussian noise of ``lightsheet_3d.py`` (same
function, same seed: gain 20 counts per photon, read noise sigma 100 counts), and its
sparse labels: 3 labelled Z slices (17, 48, 77); 0 unlabelled, 1 background, 2 axon,
4 axon edge (3, artifact, does not occur). Every method trains with the labels of
slices 17 and 48 only (``--ignore-label 0 --background-label 1 --background-label 3``,
so 2 and 4 are axon); slice 77's labels are held out and score every method, on its
labelled voxels (label != 0): foreground IoU, Dice (= pixel F1), precision and recall
of axon (2 or 4) against background (1).

Methods, at equal total optimiser steps T (each 3-D U-Net: depth 2, 8 base channels,
direct output; Adam lr 1e-3, cosine; batches of 2 random 16x64x64 crops; no validation
split; the denoisers train on the whole noisy volume, as self-supervised denoising does):

* (a) sequential: 3-D N2V for T/2 steps, then a 3-D segmenter for T/2 steps on the
  N2V-denoised volume; segments the denoised volume;
* (b) joint (Eq. 3): T steps, the first 10 % pre-training a weak segmenter, then
  denoiser and segmenter together (w1 = 1, w2 = 1.5); segments through its denoiser;
* (c) baseline: a 3-D segmenter for T steps on the noisy volume.

Also the PSNR and SSIM of both denoisers (and of the noisy input) against the original
volume over all 101 slices, with ``lightsheet_3d.py``'s data range (the clean volume's
0.1-99.9 percentile range). Seeds vary the networks' initial weights and the sampling,
not the noise. Prints markdown tables, writes JSON.

    python benchmarks/lightsheet_seg_3d.py --steps 200 --seeds 0 1 2 \
        --out benchmarks/results/lightsheet_seg_3d.json
    python benchmarks/lightsheet_seg_3d.py --quick        # a few steps, one seed

Seeds may run as separate processes (``--seeds 0 --out s0.json`` ...) and be pooled
into one table with ``--merge s0.json s1.json s2.json --out all.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

import semdenoise as sd
from cli_runs import recorded_args
from lightsheet_3d import DATA, GAIN, READ_SIGMA, add_noise, scores
from lightsheet_3d import SEED as NOISE_SEED
from semdenoise.report import markdown_table

LABELS = DATA.parent / "labels.tif"
TRAIN_Z = (17, 48)
HELD_OUT_Z = 77
IGNORE, BACKGROUND, AXON = 0, (1, 3), (2, 4)


def held_out_labels(labels: np.ndarray) -> np.ndarray:
    """The labels training may use: slice ``HELD_OUT_Z`` made unlabelled."""
    train = labels.copy()
    train[HELD_OUT_Z] = IGNORE
    return train


def segmentation_scores(mask: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Axon vs background on the labelled voxels of the held-out slice."""
    truth_labels = labels[HELD_OUT_Z]
    labelled = truth_labels != IGNORE
    truth = np.isin(truth_labels, AXON)[labelled]
    predicted = mask[HELD_OUT_Z].astype(bool)[labelled]
    tp = float(np.sum(truth & predicted))
    fp = float(np.sum(~truth & predicted))
    fn = float(np.sum(truth & ~predicted))
    return {
        "IoU": tp / max(tp + fp + fn, 1.0),
        "Dice": 2 * tp / max(2 * tp + fp + fn, 1.0),
        "precision": tp / max(tp + fp, 1.0),
        "recall": tp / max(tp + fn, 1.0),
    }


def run_seed(
    seed: int,
    noisy: np.ndarray,
    clean: np.ndarray,
    labels: np.ndarray,
    data_range: float,
    args: argparse.Namespace,
) -> list[dict]:
    unet = sd.UNetConfig(dims=3, depth=2, base_channels=args.base_channels)

    def train(steps: int) -> sd.TrainConfig:
        return sd.TrainConfig(
            steps=steps,
            seed=seed,
            learning_rate=1e-3,
            batch_size=2,
            crop_depth=args.crop_depth,
            crop_size=args.crop_size,
            val_fraction=0.0,
        )

    sparse = {"ignore_label": IGNORE, "background_labels": BACKGROUND}
    train_labels = held_out_labels(labels)
    rows = []
    first, second = args.steps // 2, args.steps - args.steps // 2

    started = time.perf_counter()
    n2v = sd.train_n2v(noisy, unet=unet, train=train(first))
    denoised = sd.denoise(n2v, noisy)
    seg = sd.train_seg(denoised, train_labels, unet=unet, train=train(second), **sparse)
    mask = sd.segment(seg, denoised)
    rows.append(
        {
            "method": f"(a) N2V 3-D {first} steps, then segmenter 3-D {second} steps",
            "seed": seed,
            **segmentation_scores(mask, labels),
            **{f"denoised {k}": v for k, v in scores(clean, denoised, data_range).items()},
            "seconds": round(time.perf_counter() - started),
        }
    )
    print(markdown_table(rows[-1:]), flush=True)

    started = time.perf_counter()
    joint = sd.train_joint(noisy, labels=train_labels, unet=unet, train=train(args.steps), **sparse)
    mask = sd.segment(joint, noisy)
    denoised = sd.denoise(joint, noisy)
    rows.append(
        {
            "method": f"(b) joint 3-D (Eq. 3) {args.steps} steps",
            "seed": seed,
            **segmentation_scores(mask, labels),
            **{f"denoised {k}": v for k, v in scores(clean, denoised, data_range).items()},
            "seconds": round(time.perf_counter() - started),
        }
    )
    print(markdown_table(rows[-1:]), flush=True)

    started = time.perf_counter()
    seg = sd.train_seg(noisy, train_labels, unet=unet, train=train(args.steps), **sparse)
    mask = sd.segment(seg, noisy)
    rows.append(
        {
            "method": f"(c) segmenter 3-D on the noisy volume {args.steps} steps",
            "seed": seed,
            **segmentation_scores(mask, labels),
            "seconds": round(time.perf_counter() - started),
        }
    )
    print(markdown_table(rows[-1:]), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per method: the mean over seeds and, beside it, each seed's value."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    result = []
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        line: dict = {"method": method, "seeds": len(mine)}
        for key in mine[0]:
            if key in ("method", "seed") or not isinstance(mine[0][key], float | int):
                continue
            values = [row[key] for row in mine]
            digits = 0 if key == "seconds" else 2 if "PSNR" in key else 3
            each = ", ".join(f"{v:.{digits}f}" for v in values)
            line[key] = f"{np.mean(values):.{digits}f} ({each})"
        result.append(line)
    return result


def merge(runs: list[Path], out: Path) -> None:
    """One table from runs of the same settings with different seeds."""
    saved = [json.loads(run.read_text()) for run in runs]
    first = saved[0]
    for run, result in zip(runs, saved, strict=True):
        settings = {k: v for k, v in result["args"].items() if k not in ("seeds", "out")}
        if settings != {k: v for k, v in first["args"].items() if k not in ("seeds", "out")}:
            sys.exit(f"{run}: run with other settings than {runs[0]}")
    rows = [row for result in saved for row in result["rows"]]
    table = summary(rows)
    print(markdown_table(table))
    merged = {
        **first,
        "args": {**first["args"], "seeds": [row["seed"] for row in rows[::3]], "out": out.name},
        "merged_from": [run.name for run in runs],
        "rows": rows,
        "summary": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, default=float))
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/lightsheet_seg_3d.json")
    )
    parser.add_argument("--steps", type=int, default=200, help="total optimiser steps T")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--crop-depth", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="10 steps, seed 0")
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="pool the rows of saved runs into one table"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.merge:
        merge(args.merge, args.out)
        return
    if args.quick:
        args.steps, args.seeds = 10, [0]
    clean = tifffile.imread(DATA).astype(np.float32)
    labels = tifffile.imread(LABELS)
    noisy = add_noise(clean, NOISE_SEED)
    low, high = np.percentile(clean, [0.1, 99.9])
    data_range = float(high - low)

    reference = [{"method": "noisy input", **scores(clean, noisy, data_range)}]
    print(markdown_table(reference), flush=True)
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, noisy, clean, labels, data_range, args)
    table = summary(rows)
    print(
        f"\n### TRAILMAP light-sheet volume, labels of z = {TRAIN_Z}, scored on z = "
        f"{HELD_OUT_Z}, {args.steps} total steps, seeds {args.seeds}: mean (per seed)\n"
    )
    print(markdown_table(table), flush=True)
    print("\nnoisy input against the clean volume:\n")
    print(markdown_table(reference), flush=True)
    result = {
        "data": "trailmap_lightsheet_axons/volume.tif, labels.tif",
        "noise": {"gain": GAIN, "read_sigma": READ_SIGMA, "seed": NOISE_SEED},
        "data_range": data_range,
        "train_labelled_z": list(TRAIN_Z),
        "held_out_z": HELD_OUT_Z,
        "held_out_voxels": int(np.sum(labels[HELD_OUT_Z] != IGNORE)),
        "held_out_axon_fraction": float(
            np.mean(np.isin(labels[HELD_OUT_Z][labels[HELD_OUT_Z] != IGNORE], AXON))
        ),
        "args": recorded_args(args),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "noisy": reference[0],
        "rows": rows,
        "summary": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
