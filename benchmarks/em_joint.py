"""Joint denoising + segmentation on noisy EM (paper §3.4): N2V alone vs supervised joint.

On ``../shared/data/lucchi_em`` with Gaussian noise at sigma 15, 25 and 50 (0–255
scale, fixed seed, not clipped). Everything runs through the command line a user would
type (``semdenoise train n2v|seg|joint``, ``denoise``, ``segment``) on TIFF stacks
written for this run. N2V alone and the supervised joint mode (Eq. 3) are trained on
the noisy training slices (the joint one with their mitochondria masks) for fixed
numbers of optimiser steps (``--steps`` N2V, ``--joint-steps`` joint: the defaults took
about the same 3 minutes each on 2 CPU cores with ``--crop-size 256``; same seed and
steps, same model, whatever the machine's load) and evaluated on the noisy test slices:

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
synthetic plaques (``plaques_style_readings.py``) measure it properly.

    python benchmarks/em_joint.py --crop-size 256 --steps 650 --joint-steps 370 \
        --seg-steps 154 --seeds 0 1 --out benchmarks/results/em_joint_crops.json
    python benchmarks/em_joint.py --parts unsupervised --out benchmarks/results/em_unsup.json
    python benchmarks/em_joint.py --quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from cli_runs import recorded_args, semdenoise, train
from semdenoise.evaluation.metrics import foreground_iou, psnr, ssim
from semdenoise.report import markdown_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lucchi_em"
SEED = 2024


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return clean.astype(np.float32) + rng.normal(0, sigma, clean.shape).astype(np.float32)


def mean_of(metric, truth: np.ndarray, images: np.ndarray, **kwargs) -> float:
    return float(np.mean([metric(t, i, **kwargs) for t, i in zip(truth, images, strict=True)]))


def network_flags(depth: int, base_channels: int, learning_rate: float) -> list:
    """The training flags every model of these benchmarks shares (no validation split)."""
    return ["--depth", depth, "--base-channels", base_channels, "--learning-rate",
            learning_rate, "--val-fraction", 0, "--no-progress"]  # fmt: skip


def budget(steps: int, minutes: float | None = None) -> list:
    """``train`` flags for ``steps`` optimiser steps, and a wall-clock cap only if given
    (whichever comes first: a cap that stops a run makes it depend on the machine's load)."""
    return ["--steps", steps, *([] if minutes is None else ["--max-minutes", minutes])]


def train_segmenter(
    data: Path, out: Path, steps: int, minutes: float | None, network: list, *flags: object
) -> int:
    """A segmenter on the clean training slices (the fixed ruler, or with ``--loss mse`` a
    style segmenter), on 256² crops in batches of 4, for ``steps`` steps (``minutes``: an
    optional wall-clock cap); returns the steps it made."""
    return train("seg", data / "train_images.tif", "--labels", data / "train_masks.tif",
                 *flags, "--out", out, *budget(steps, minutes), "--crop-size", 256,
                 "--batch-size", 4, *network)  # fmt: skip


def segmented_iou(segmenter: Path, images: Path, truth: np.ndarray, folder: Path) -> float:
    """Mean foreground IoU of ``semdenoise segment`` on ``images`` (masks kept in ``folder``)."""
    masks = folder / f"{images.stem}.{segmenter.stem}-mask.tif"
    semdenoise("segment", segmenter, images, masks)
    return mean_of(foreground_iou, truth, tifffile.imread(masks))


# Each variant: extra ``train joint`` flags, and the share of the budget first spent
# training an N2V model that the joint run then starts from (--init): that share of
# --steps as N2V steps, then the rest of --joint-steps as joint steps.
JOINT_VARIANTS = {
    "paper": {"flags": [], "init_fraction": 0.0},
    "warm-up": {"flags": ["--pretrain-denoiser", "--pretrain-fraction", 0.3], "init_fraction": 0.0},
    "init": {"flags": [], "init_fraction": 0.5},
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
    parser.add_argument("--data", type=Path, default=DATA, help="the lucchi_em folder")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    parser.add_argument(
        "--steps",
        type=int,
        default=650,
        help="optimiser steps of each N2V model (default: what 3 minutes gave on 2 CPU "
        "cores with --crop-size 256; whole slices take 5-9x longer a step)",
    )
    parser.add_argument(
        "--joint-steps",
        type=int,
        default=370,
        help="optimiser steps of each joint model (default: what 3 minutes gave with "
        "--crop-size 256, about the CPU time of --steps of N2V)",
    )
    parser.add_argument(
        "--seg-steps",
        type=int,
        default=154,
        help="optimiser steps of the fixed (and style) segmenter (default: what 3 minutes "
        "gave on 2 CPU cores)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="optional wall-clock cap per model and sigma, on top of the steps (whichever "
        "comes first); a cap that stops a run makes results depend on the machine's load",
    )
    parser.add_argument(
        "--seg-minutes",
        type=float,
        default=None,
        help="optional wall-clock cap of the segmenters, on top of --seg-steps; a cap that "
        "stops a run makes results depend on the machine's load",
    )
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
        "N2V for half of --steps, then joint from it for the other half of --joint-steps",
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
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="move the run's folder (models, noisy stacks, outputs, masks) here instead of "
        "deleting it; em_rescore.py re-scores it with another fixed segmenter",
    )
    parser.add_argument("--quick", action="store_true", help="a few steps per model, one sigma")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.joint_steps, args.seg_steps, args.sigmas = 10, 6, 10, [25.0]
    network = network_flags(args.depth, args.base_channels, args.learning_rate)
    crops = [] if args.crop_size is None else ["--crop-size", args.crop_size]

    data = args.data
    work = Path(tempfile.mkdtemp(prefix="em-joint-"))
    test_clean = tifffile.imread(data / "test_images.tif")
    test_masks = tifffile.imread(data / "test_masks.tif")
    train_clean = tifffile.imread(data / "train_images.tif")
    started = time.perf_counter()
    fixed = work / "fixed.pt"
    fixed_steps = train_segmenter(data, fixed, args.seg_steps, args.seg_minutes, network)

    def iou_of(model: Path, images: Path) -> float:
        return segmented_iou(model, images, test_masks, work)

    fixed_iou = {"clean": iou_of(fixed, data / "test_images.tif")}
    print(
        f"fixed segmenter: {fixed_steps} steps, IoU on clean test "
        f"{fixed_iou['clean']:.3f} ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    def scored(sigma: float, method: str, images: Path, seed=None, **extra) -> dict:
        values = tifffile.imread(images)
        row = {
            "sigma": sigma,
            "seed": seed,
            "method": method,
            "PSNR": mean_of(psnr, test_clean, values, data_range=255),
            "SSIM": mean_of(ssim, test_clean, values, data_range=255),
            "fixed-seg IoU": iou_of(fixed, images),
            **extra,
        }
        print(markdown_table([row]), flush=True)
        return row

    def denoised(model: Path, images: Path) -> Path:
        target = work / f"{model.stem}-denoised.tif"
        semdenoise("denoise", model, images, target)
        return target

    def noisy_stacks(sigma: float) -> tuple[Path, Path]:
        """Noisy training and test stacks at ``sigma`` (fixed noise seeds), as TIFFs."""
        paths = work / f"train-noisy-{sigma:g}.tif", work / f"test-noisy-{sigma:g}.tif"
        sources = ((train_clean, SEED + 1), (test_clean, SEED))
        for path, (clean, seed) in zip(paths, sources, strict=True):
            if not path.exists():
                tifffile.imwrite(path, noisy_copy(clean, sigma, seed))
        return paths

    rows = []
    if "unsupervised" in args.parts:
        sigma = args.unsupervised_sigma
        train_noisy, test_noisy = noisy_stacks(sigma)
        style, n2v = work / "style.pt", work / f"unsup-n2v-{sigma:g}.pt"
        train_segmenter(data, style, args.seg_steps, args.seg_minutes, network, "--loss", "mse")
        steps = train("n2v", train_noisy, "--out", n2v, *budget(args.steps, args.minutes),
                      *crops, *network)  # fmt: skip
        rows.append(scored(sigma, "noisy", test_noisy))
        rows.append(scored(sigma, "n2v", denoised(n2v, test_noisy), **{"train steps": steps}))
        for reading, flags in (("detached target", []), ("gradient", ["--style-gradient"])):
            model = work / f"unsup-{flags and 'gradient' or 'detached'}-{sigma:g}.pt"
            steps = train("joint", train_noisy, "--style-segmenter", style, *flags, "--out", model,
                          *budget(args.joint_steps, args.minutes), *crops, *network)  # fmt: skip
            rows.append(
                scored(
                    sigma,
                    f"unsupervised joint ({reading})",
                    denoised(model, test_noisy),
                    **{"train steps": steps},
                )
            )
    first_supervised = len(rows)
    supervised = [
        (seed, sigma) for seed in args.seeds for sigma in args.sigmas if "supervised" in args.parts
    ]
    weight = [] if args.segment_weight is None else ["--segment-weight", args.segment_weight]
    for seed, sigma in supervised:
        train_noisy, test_noisy = noisy_stacks(sigma)
        seeded = ["--seed", seed, *crops, *network]
        if seed == args.seeds[0]:
            rows.append(scored(sigma, "noisy", test_noisy))
        n2v = work / f"n2v-{sigma:g}-{seed}.pt"
        steps = train("n2v", train_noisy, "--out", n2v, *budget(args.steps, args.minutes), *seeded)
        rows.append(scored(sigma, "n2v", denoised(n2v, test_noisy), seed, **{"train steps": steps}))
        for name in args.joint_variants:
            variant = JOINT_VARIANTS[name]
            fraction = variant["init_fraction"]
            joint_steps, minutes, init, init_steps = args.joint_steps, args.minutes, [], 0
            if fraction:
                start = work / f"init-{sigma:g}-{seed}.pt"
                # the budget's first share as N2V steps, the rest as joint steps
                init_minutes = None if minutes is None else fraction * minutes
                init_steps = train("n2v", train_noisy, "--out", start,
                                   *budget(max(1, round(fraction * args.steps)), init_minutes),
                                   *seeded)  # fmt: skip
                init = ["--init", start]
                joint_steps = max(1, joint_steps - round(fraction * joint_steps))
                minutes = None if minutes is None else minutes - init_minutes
            joint = work / f"joint-{name}-{sigma:g}-{seed}.pt"
            steps = train("joint", train_noisy, "--labels", data / "train_masks.tif", *init,
                          *variant["flags"], *weight, "--out", joint,
                          *budget(joint_steps, minutes), *seeded)  # fmt: skip
            rows.append(
                scored(
                    sigma,
                    joint_label(name, args.segment_weight),
                    denoised(joint, test_noisy),
                    seed,
                    **{
                        "joint-seg IoU": iou_of(joint, test_noisy),
                        "train steps": steps + init_steps,
                    },
                )
            )
            if args.n2v_at_joint_steps and name == args.joint_variants[0]:
                equal = work / f"n2v-equal-{sigma:g}-{seed}.pt"
                train("n2v", train_noisy, "--out", equal, "--steps", steps, *seeded)
                rows.append(
                    scored(
                        sigma,
                        f"n2v ({steps} steps, as joint)",
                        denoised(equal, test_noisy),
                        seed,
                        **{"train steps": steps},
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
    cap = "" if args.minutes is None else f", capped at {args.minutes:g} min"
    print(
        f"\nbudgets: N2V {args.steps} steps, joint {args.joint_steps} steps{cap}, "
        f"segmenter {args.seg_steps} steps"
    )
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
                "fixed_steps": fixed_steps,
                "args": recorded_args(args),
                "wall_seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
            default=float,
        )
    )
    if args.keep is None:
        shutil.rmtree(work)
    else:
        shutil.move(work, args.keep)
        print(f"kept the run's files in {args.keep}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
