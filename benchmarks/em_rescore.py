"""Re-score a kept ``em_joint.py`` run with another fixed segmenter: is the ranking the
segmenter's or the denoisers'?

The fixed segmenter is only a ruler: trained on the clean training slices, it is
applied to every method's output. A weak one (154 steps, 3 minutes on 2 CPU cores)
reacts erratically to the small differences between denoised images, so this script
trains a new one with the same protocol and more optimiser steps (or takes a given one)
and scores every output of the kept run again, without retraining any denoiser:

    python benchmarks/em_joint.py ... --keep /tmp/em-run
    python benchmarks/em_rescore.py /tmp/em-run --seg-steps 403 \
        --out benchmarks/results/em_rescore.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import tifffile

from cli_runs import recorded_args
from em_joint import (
    DATA,
    joint_label,
    network_flags,
    segmented_iou,
    summarise_over_seeds,
    summary_table,
    train_segmenter,
)
from semdenoise.report import markdown_table

# em_joint's output names: n2v-SIGMA-SEED-denoised.tif, joint-VARIANT-SIGMA-SEED-denoised.tif
OUTPUT = re.compile(r"^(n2v|joint-(?:paper|warm-up|init))-([\d.]+)-(\d+)-denoised\.tif$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="folder kept by em_joint.py --keep")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/em_rescore.json"))
    parser.add_argument("--data", type=Path, default=DATA, help="the lucchi_em folder")
    parser.add_argument(
        "--seg-steps",
        type=int,
        default=403,
        help="optimiser steps of the new fixed segmenter (default: what 8 minutes gave on "
        "2 CPU cores)",
    )
    parser.add_argument(
        "--seg-minutes",
        type=float,
        default=None,
        help="optional wall-clock cap on top of --seg-steps (whichever comes first); a cap "
        "that stops the run makes results depend on the machine's load",
    )
    parser.add_argument("--segmenter", type=Path, default=None, help="use this one instead")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    started = time.perf_counter()
    test_masks = tifffile.imread(args.data / "test_masks.tif")
    fixed, steps = args.segmenter, None
    if fixed is None:
        fixed = args.run / f"fixed-{args.seg_steps}steps.pt"
        network = network_flags(args.depth, args.base_channels, args.learning_rate)
        steps = train_segmenter(args.data, fixed, args.seg_steps, args.seg_minutes, network)

    def iou(images: Path) -> float:
        return segmented_iou(fixed, images, test_masks, args.run)

    clean_iou = iou(args.data / "test_images.tif")
    print(f"fixed segmenter: {steps} steps, IoU on clean test {clean_iou:.3f}", flush=True)
    rows = []
    for path in sorted(args.run.glob("test-noisy-*.tif")):
        if re.fullmatch(r"test-noisy-[\d.]+\.tif", path.name):
            sigma = float(path.stem.removeprefix("test-noisy-"))
            rows.append(
                {"sigma": sigma, "seed": None, "method": "noisy", "fixed-seg IoU": iou(path)}
            )
    for path in sorted(args.run.glob("*-denoised.tif")):
        match = OUTPUT.match(path.name)
        if match:
            name, sigma, seed = match.group(1), float(match.group(2)), int(match.group(3))
            method = "n2v" if name == "n2v" else joint_label(name.removeprefix("joint-"), None)
            rows.append(
                {"sigma": sigma, "seed": seed, "method": method, "fixed-seg IoU": iou(path)}
            )
            print(markdown_table([rows[-1]]), flush=True)
    rows.sort(key=lambda r: (r["sigma"], r["seed"] is not None, r["seed"] or 0, r["method"]))
    summary = summarise_over_seeds([r for r in rows if r["seed"] is not None])
    print(f"\nfixed segmenter IoU on the clean test slices: {clean_iou:.3f}\n")
    print(markdown_table(rows, ["sigma", "seed", "method", "fixed-seg IoU"]))
    print("\nmean (sd) over seeds; wins = seeds where it beats n2v's IoU\n")
    print(summary_table(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "rows": rows,
        "summary": summary,
        "fixed_clean_iou": clean_iou,
        "fixed_steps": steps,
        "args": recorded_args(args),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(record, indent=2, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
