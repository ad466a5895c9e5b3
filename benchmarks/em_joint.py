"""Joint denoising + segmentation on noisy EM (paper §3.4): N2V alone vs supervised joint.

On ``../shared/data/lucchi_em`` with Gaussian noise at sigma 15, 25 and 50 (0–255
scale, fixed seed, not clipped). N2V alone and the supervised joint mode (Eq. 3) are
trained on the noisy training slices (the joint one with their mitochondria masks) for
the same wall-clock budget and evaluated on the noisy test slices:

* PSNR/SSIM of noisy, N2V and joint against the clean test slices;
* foreground IoU of one *fixed* segmenter, trained separately on the clean training
  slices, applied to the clean, noisy, N2V and joint test images;
* IoU of the jointly trained segmenter on the noisy test slices.

``--parts unsupervised`` runs the unsupervised mode (Eq. 4) at ``--unsupervised-sigma``:
a style segmenter trained with MSE on the clean training slices is frozen, and the
denoiser is trained against it with the detached-target reading (default) and with the
gradient through the segmenter; both are compared with N2V alone on PSNR and the fixed
segmenter's IoU. EM is not the paper's use case for this mode (its style prior is
"bright target on black"), so this shows that it runs and what it costs here; the
synthetic plaques measure it properly.

    python benchmarks/em_joint.py --out benchmarks/results/em_joint.json
    python benchmarks/em_joint.py --parts unsupervised --out benchmarks/results/em_unsup.json
    python benchmarks/em_joint.py --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import tifffile

import semdenoise as sd
from semdenoise.metrics import foreground_iou, psnr, ssim
from semdenoise.report import markdown_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lucchi_em"
SEED = 2024


def load(name: str) -> np.ndarray:
    return tifffile.imread(DATA / f"{name}.tif")


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return clean.astype(np.float32) + rng.normal(0, sigma, clean.shape).astype(np.float32)


def mean_of(metric, truth: np.ndarray, images: np.ndarray, **kwargs) -> float:
    return float(np.mean([metric(t, i, **kwargs) for t, i in zip(truth, images, strict=True)]))


JOINT_VARIANTS = {
    "paper": {"joint": {}, "init_fraction": 0.0},
    "warm-up": {
        "joint": {"pretrain_denoiser": True, "pretrain_fraction": 0.3},
        "init_fraction": 0.0,
    },
    "init": {"joint": {}, "init_fraction": 0.5},
}


def joint_label(variant: str, segment_weight: float | None) -> str:
    details = [] if variant == "paper" else [variant]
    if segment_weight is not None:
        details.append(f"w2={segment_weight:g}")
    return f"joint ({', '.join(details)})" if details else "joint"


def summarise_over_seeds(rows: list[dict]) -> list[dict]:
    """Mean and spread over training seeds per sigma and method, and for each method the
    number of seeds in which its fixed-segmenter IoU beats N2V's of the same seed."""
    n2v_iou = {(r["sigma"], r["seed"]): r["fixed-seg IoU"] for r in rows if r["method"] == "n2v"}
    summary = []
    for sigma, method in dict.fromkeys((r["sigma"], r["method"]) for r in rows):
        group = [r for r in rows if r["sigma"] == sigma and r["method"] == method]
        row = {"sigma": sigma, "method": method, "seeds": len(group)}
        for key in ("PSNR", "SSIM", "fixed-seg IoU", "joint-seg IoU"):
            values = [r[key] for r in group if key in r]
            if values:
                row[key], row[f"{key} sd"] = float(np.mean(values)), float(np.std(values))
        if method != "n2v" and group[0]["seed"] is not None:
            wins = sum(r["fixed-seg IoU"] > n2v_iou[(sigma, r["seed"])] for r in group)
            row["wins over n2v"] = f"{wins}/{len(group)}"
        summary.append(row)
    return summary


def summary_table(summary: list[dict]) -> str:
    """The summary as 'mean (sd)' cells."""
    keys = ("PSNR", "SSIM", "fixed-seg IoU", "joint-seg IoU")
    cells = [
        {k: v for k, v in row.items() if not k.endswith(" sd") and k not in keys}
        | {k: f"{row[k]:.3f} ({row[f'{k} sd']:.3f})" for k in keys if k in row}
        for row in summary
    ]
    columns = ["sigma", "method", "seeds", *keys, "wins over n2v"]
    return markdown_table(cells, columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/em_joint.json"))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    parser.add_argument("--minutes", type=float, default=5.0, help="per model and sigma")
    parser.add_argument("--seg-minutes", type=float, default=5.0, help="fixed segmenter")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--parts", nargs="+", choices=["supervised", "unsupervised"], default=["supervised"]
    )
    parser.add_argument("--unsupervised-sigma", type=float, default=25.0)
    parser.add_argument(
        "--joint-variants",
        nargs="+",
        choices=sorted(JOINT_VARIANTS),
        default=["paper"],
        help="paper: weak segmenter pre-trained for 10%%, denoiser from scratch; warm-up: "
        "the denoiser trains with N2V alone while the segmenter pre-trains (30%%); init: "
        "N2V for half the budget, then joint from it for the other half",
    )
    parser.add_argument(
        "--segment-weight", type=float, default=None, help="w2 of every supervised variant"
    )
    parser.add_argument(
        "--n2v-at-joint-steps",
        action="store_true",
        help="also train N2V for as many steps as the first joint variant took: separates "
        "the joint objective from its cost per step",
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="train N2V and joint on random square crops of this side (many more steps "
        "per minute than whole 768x1024 slices)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="training seeds of N2V and joint (noise and fixed segmenter stay fixed); "
        "with several, a summary gives the mean over seeds and how often joint wins",
    )
    parser.add_argument("--quick", action="store_true", help="0.2-minute budgets, one sigma")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.quick:
        args.minutes, args.seg_minutes, args.sigmas = 0.2, 0.2, [25.0]
    unet = sd.UNetConfig(depth=args.depth, base_channels=args.base_channels)

    def train_config(minutes: float, seed: int = 0, **extra) -> sd.TrainConfig:
        extra.setdefault("crop_size", args.crop_size)
        return sd.TrainConfig(
            max_minutes=minutes,
            val_fraction=0.0,
            seed=seed,
            learning_rate=args.learning_rate,
            **extra,
        )

    train_clean, train_masks = load("train_images"), load("train_masks")
    test_clean, test_masks = load("test_images"), load("test_masks")
    started = time.perf_counter()
    fixed = sd.train_seg(
        train_clean,
        train_masks,
        unet=unet,
        train=train_config(args.seg_minutes, crop_size=256, batch_size=4),
    )
    fixed_iou = {"clean": mean_of(foreground_iou, test_masks, sd.segment(fixed, test_clean))}
    print(
        f"fixed segmenter: {fixed.training['steps']} steps, IoU on clean test "
        f"{fixed_iou['clean']:.3f} ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    def scored(sigma: float, method: str, images: np.ndarray, seed=None, **extra) -> dict:
        row = {
            "sigma": sigma,
            "seed": seed,
            "method": method,
            "PSNR": mean_of(psnr, test_clean, images, data_range=255),
            "SSIM": mean_of(ssim, test_clean, images, data_range=255),
            "fixed-seg IoU": mean_of(foreground_iou, test_masks, sd.segment(fixed, images)),
            **extra,
        }
        print(markdown_table([row]), flush=True)
        return row

    rows = []
    if "unsupervised" in args.parts:
        sigma = args.unsupervised_sigma
        train_noisy = noisy_copy(train_clean, sigma, SEED + 1)
        test_noisy = noisy_copy(test_clean, sigma, SEED)
        style = sd.train_seg(
            train_clean,
            train_masks,
            unet=unet,
            loss="mse",
            train=train_config(args.seg_minutes, crop_size=256, batch_size=4),
        )
        n2v = sd.train_n2v(train_noisy, unet=unet, train=train_config(args.minutes))
        rows.append(scored(sigma, "noisy", test_noisy))
        rows.append(
            scored(
                sigma, "n2v", sd.denoise(n2v, test_noisy), **{"train steps": n2v.training["steps"]}
            )
        )
        for reading, gradient in (("detached target", False), ("gradient", True)):
            model = sd.train_joint(
                train_noisy,
                style_segmenter=style,
                unet=unet,
                joint=sd.JointConfig(style_gradient=gradient),
                train=train_config(args.minutes),
            )
            rows.append(
                scored(
                    sigma,
                    f"unsupervised joint ({reading})",
                    sd.denoise(model, test_noisy),
                    **{"train steps": model.training["steps"]},
                )
            )
    first_supervised = len(rows)
    supervised = [
        (seed, sigma) for seed in args.seeds for sigma in args.sigmas if "supervised" in args.parts
    ]
    for seed, sigma in supervised:
        train_noisy = noisy_copy(train_clean, sigma, SEED + 1)
        test_noisy = noisy_copy(test_clean, sigma, SEED)
        if seed == args.seeds[0]:
            rows.append(scored(sigma, "noisy", test_noisy))
        n2v = sd.train_n2v(train_noisy, unet=unet, train=train_config(args.minutes, seed))
        rows.append(
            scored(
                sigma,
                "n2v",
                sd.denoise(n2v, test_noisy),
                seed,
                **{"train steps": n2v.training["steps"]},
            )
        )
        for name in args.joint_variants:
            variant = JOINT_VARIANTS[name]
            minutes, init = args.minutes, None
            if variant["init_fraction"]:
                init_minutes = variant["init_fraction"] * args.minutes
                init = sd.train_n2v(train_noisy, unet=unet, train=train_config(init_minutes, seed))
                minutes -= init_minutes
            joint = sd.train_joint(
                train_noisy,
                labels=train_masks,
                init=init,
                unet=unet,
                joint=sd.JointConfig(**variant["joint"], segment_weight=args.segment_weight),
                train=train_config(minutes, seed),
            )
            joint_masks = sd.segment(joint, test_noisy)
            steps = joint.training["steps"] + (init.training["steps"] if init else 0)
            rows.append(
                scored(
                    sigma,
                    joint_label(name, args.segment_weight),
                    sd.denoise(joint, test_noisy),
                    seed,
                    **{
                        "joint-seg IoU": mean_of(foreground_iou, test_masks, joint_masks),
                        "train steps": steps,
                    },
                )
            )
            if args.n2v_at_joint_steps and name == args.joint_variants[0]:
                equal = sd.train_n2v(
                    train_noisy,
                    unet=unet,
                    train=sd.TrainConfig(
                        steps=joint.training["steps"],
                        val_fraction=0.0,
                        seed=seed,
                        learning_rate=args.learning_rate,
                        crop_size=args.crop_size,
                    ),
                )
                rows.append(
                    scored(
                        sigma,
                        f"n2v ({joint.training['steps']} steps, as joint)",
                        sd.denoise(equal, test_noisy),
                        seed,
                        **{"train steps": equal.training["steps"]},
                    )
                )
    columns = [
        "sigma",
        "seed",
        "method",
        "PSNR",
        "SSIM",
        "fixed-seg IoU",
        "joint-seg IoU",
        "train steps",
    ]
    print(f"\nfixed segmenter IoU on the clean test slices: {fixed_iou['clean']:.3f}\n")
    print(markdown_table(rows, columns))
    summary = summarise_over_seeds(rows[first_supervised:])
    if len(args.seeds) > 1:
        print(f"\nover seeds {args.seeds}: mean (sd); wins = seeds where it beats n2v's IoU\n")
        print(summary_table(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "summary": summary,
                "fixed_clean_iou": fixed_iou["clean"],
                "args": vars(args) | {"out": str(args.out)},
            },
            indent=2,
            default=float,
        )
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
