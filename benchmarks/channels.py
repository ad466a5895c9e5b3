"""Two-channel images: one denoiser over the channels together, one per channel
(separate), or the one-channel model on each channel, on development data only.

Built from FMD confocal BPAE raw captures (real noise; fields 1–12 to train, the first
capture(s) of fields 13–18 scored against their 50-capture averages), as two regimes
that bracket what users have:

* ``same``: the two channels are two raw captures of the same field (one structure seen
  twice, independent noise), as two detectors or stains of one structure are;
* ``different``: the two channels are captures of two different fields (structures
  that have nothing to do with each other), as unrelated stains are.

Every variant trains for the same number of steps with the library's defaults and is
scored per channel; seeds give intervals.

    cd benchmarks && python channels.py --steps 300 --seeds 0 1 2 \
        --out results/issue18/channels.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

import semdenoise as sd
from denoiser_defaults import SHARED, scores
from public_denoising import interval
from semdenoise.report import markdown_table

TRAIN_FIELDS = range(1, 13)
DEV_FIELDS = range(13, 19)
CROP = (slice(128, 384), slice(128, 384))  # 256² of each 512² field: a quicker run


def load(regime: str):
    """(training images (2, Y, X), dev images (2, Y, X), their clean references)."""
    folder = SHARED / "fmd_confocal_bpae_b"

    def field(f: int) -> tuple[np.ndarray, np.ndarray]:
        raw = tifffile.imread(folder / f"fov{f:02d}_raw.tif").astype(np.float32)
        gt = tifffile.imread(folder / f"fov{f:02d}_gt.tif").astype(np.float32)
        return raw[(slice(None), *CROP)], gt[CROP]

    def pairs(fields):
        images, clean = [], []
        for f in fields:
            raw, gt = field(f)
            if regime == "same":  # captures 0 and 1 of one field
                images.append(raw[:2])
                clean.append(np.stack([gt, gt]))
            else:  # capture 0 of this field and of the next one in the list
                other = fields[(fields.index(f) + 1) % len(fields)]
                raw2, gt2 = field(other)
                images.append(np.stack([raw[0], raw2[0]]))
                clean.append(np.stack([gt, gt2]))
        return images, clean

    train, _ = pairs(list(TRAIN_FIELDS))
    dev, clean = pairs(list(DEV_FIELDS))
    return train, dev, clean


def run(variant: str, train_images, dev, clean, steps: int, seed: int) -> dict:
    train = sd.TrainConfig(steps=steps, seed=seed, crop_size=128, batch_size=4)
    if variant == "one-channel model":  # each channel its own image, one shared network
        model = sd.train_n2v([c for image in train_images for c in image], train=train)
        denoised = [np.stack([sd.denoise(model, c) for c in image]) for image in dev]
    else:
        unet = sd.UNetConfig(channels=variant)
        model = sd.train_n2v(train_images, unet=unet, train=train, axes="CYX")
        denoised = [sd.denoise(model, image, axes="CYX") for image in dev]
    per_channel = [
        scores([c[k] for c in clean], [d[k] for d in denoised])["PSNR"] for k in range(2)
    ]
    return {
        "variant": variant,
        "seed": seed,
        "PSNR": float(np.mean(per_channel)),
        "PSNR per channel": per_channel,
        "train seconds": round(model.training["seconds"], 1),
        "parameters": sum(p.numel() for net in model.networks.values() for p in net.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regimes", nargs="+", default=["same", "different"])
    parser.add_argument(
        "--variants", nargs="+", default=["together", "separate", "one-channel model"]
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results, rows = [], []
    for regime in args.regimes:
        train_images, dev, clean = load(regime)
        noisy = scores(
            [c[k] for c in clean for k in range(2)], [d[k] for d in dev for k in range(2)]
        )
        rows.append({"regime": regime, "variant": "noisy", "PSNR": f"{noisy['PSNR']:.2f}"})
        for variant in args.variants:
            runs = []
            for seed in args.seeds:
                started = time.perf_counter()
                result = {
                    "regime": regime,
                    **run(variant, train_images, dev, clean, args.steps, seed),
                }
                result["wall seconds"] = round(time.perf_counter() - started, 1)
                print(result, flush=True)
                runs.append(result)
            results.extend(runs)
            rows.append(
                {
                    "regime": regime,
                    "variant": variant,
                    "PSNR": interval([r["PSNR"] for r in runs]),
                    "parameters": runs[0]["parameters"],
                    "train s (median)": float(np.median([r["train seconds"] for r in runs])),
                }
            )
    table = markdown_table(rows, ["regime", "variant", "PSNR", "parameters", "train s (median)"])
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"steps": args.steps, "rows": rows, "runs": results}, indent=1)
        )
        args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
