"""The denoiser with its defaults against the field's baselines, on three public data sets.

Everything trains for a fixed number of steps with the library's defaults (no sigma,
no preset; ``--objective`` and ``--blind-filter`` the settings that may change), through
the same calls a user's script makes; seeds give intervals.

* ``em``: Lucchi EM, Gaussian noise sigma 25 (0–255, not clipped); trained on the 20
  noisy training-stack slices, scored on 512x512 crops of the 10 noisy testing-stack
  slices, which training never saw.
* ``bsd``: the 400 BSD training crops with Gaussian noise sigma 25; scored on Set12
  (development) or, with ``--bsd68 FOLDER`` of the 68 test PNG/TIFFs, on BSD68 (the
  final table only: never choose a setting by it).
* ``fmd``: FMD confocal BPAE, real noise; trained on the raw captures of fields 1–18
  and 20, scored on field 20's first capture against its 50-capture average.

Baselines in the same run: the noisy input; a Gaussian blur at the width that scores
best against the clean image (an oracle no user has); BM3D with the true sigma where
the noise is synthetic, at its best sigma against the clean image where it is real.
Published numbers (BSD68, sigma 25): N2V 27.71, Noise2Same 27.95, BM3D 28.57, Laine et
al. 28.84 dB.

    python benchmarks/public_denoising.py --data em --steps 1400 --seeds 0 1 2 \
        --out benchmarks/results/public_em.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import stats

import semdenoise as sd
from denoiser_defaults import SHARED, add_noise, oracle_blur, scores, weighed_by_v
from semdenoise.report import markdown_table


def load(data: str, bsd68: Path | None):
    """(training images, noisy images to score, clean references, known sigma or None)."""
    if data == "em":
        folder = SHARED / "lucchi_em"
        train = add_noise(tifffile.imread(folder / "train_images.tif").astype(np.float32), 25.0)
        test = tifffile.imread(folder / "test_images.tif").astype(np.float32)
        noisy = add_noise(test, 25.0)
        crop = (slice(128, 640), slice(256, 768))
        return list(train), [n[crop] for n in noisy], [c[crop] for c in test], 25.0
    if data == "bsd":
        folder = SHARED / "bsd_natural"
        train = add_noise(tifffile.imread(folder / "train400.tif").astype(np.float32), 25.0)
        if bsd68 is None:
            paths = sorted(folder.glob("set12/*.tif"))
        else:
            paths = sorted(p for p in bsd68.iterdir() if p.suffix.lower() in (".png", ".tif"))
        clean = [sd.read_image(p).astype(np.float32) for p in paths]
        rng = np.random.default_rng(7)
        noisy = [(c + rng.normal(0, 25.0, c.shape)).astype(np.float32) for c in clean]
        return list(train), noisy, clean, 25.0
    if data == "fmd":
        folder = SHARED / "fmd_confocal_bpae_b"
        fields = [*range(1, 19), 20]
        raw = {
            f: tifffile.imread(folder / f"fov{f:02d}_raw.tif").astype(np.float32) for f in fields
        }
        train = [capture for f in fields for capture in raw[f]]
        clean = [tifffile.imread(folder / "fov20_gt.tif").astype(np.float32)]
        return train, [raw[20][0]], clean, None
    raise SystemExit(f"unknown data {data!r}")


def oracle_bm3d(clean, noisy, sigmas) -> dict:
    import bm3d

    best = None
    for sigma in sigmas:
        row = scores(clean, [bm3d.bm3d(n, sigma_psd=sigma).astype(np.float32) for n in noisy])
        if best is None or row["PSNR"] > best["PSNR"]:
            best = {**row, "sigma": float(sigma)}
    return best


def interval(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    mean, sem = float(np.mean(values)), float(stats.sem(values))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sem
    return f"{mean:.2f} ({mean - half:.2f}–{mean + half:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["em", "bsd", "fmd"], required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bsd68", type=Path, help="folder of the BSD68 test images")
    parser.add_argument(
        "--objective",
        choices=["n2v", "neighbor2neighbor"],
        default="n2v",
        help="the training objective (MaskingConfig.objective; default the library's)",
    )
    parser.add_argument(
        "--blind-filter",
        type=int,
        help="radius of the learned blind-spot blur under the mean (UNetConfig.blind_filter;"
        " default the library's)",
    )
    parser.add_argument(
        "--tta", action="store_true", help="also score the same models with denoise --tta"
    )
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    train_images, noisy, clean, sigma = load(args.data, args.bsd68)
    rows = [{"method": "noisy", **scores(clean, noisy)}]
    blur = oracle_blur(clean, noisy)
    rows.append({"method": f"Gaussian blur, best width {blur.pop('width')} (oracle)", **blur})
    if not args.no_bm3d:
        if sigma is not None:
            rows.append({"method": "BM3D, true sigma", **oracle_bm3d(clean, noisy, [sigma])})
        else:  # real noise: the sigma that scores best against the clean image
            best = oracle_bm3d(clean, noisy, np.geomspace(2, 40, 10))
            rows.append({"method": f"BM3D, best sigma {best.pop('sigma'):.1f} (oracle)", **best})
    runs = []
    name = "defaults" if args.objective == "n2v" else f"--objective {args.objective}"
    unet = sd.UNetConfig(blind_filter=args.blind_filter)  # None: train_n2v's default
    if args.blind_filter is not None:
        name += f" --blind-filter {args.blind_filter}"
    for seed in args.seeds:
        train = sd.TrainConfig(steps=args.steps, seed=seed)
        masking = sd.MaskingConfig(objective=args.objective)
        model = sd.train_n2v(train_images, unet=unet, train=train, masking=masking)
        started = time.perf_counter()
        denoised = [sd.denoise(model, n) for n in noisy]
        run = {
            "seed": seed,
            **scores(clean, denoised),
            "train seconds": round(model.training["seconds"], 1),
            "predict seconds": round(time.perf_counter() - started, 1),
            "noise model": model.training.get("noise_model"),
            "variance calibration": model.training.get("variance_calibration"),
        }
        if "residual_profile" in model.training:  # the same networks, the earlier weight
            older = weighed_by_v(model)
            earlier = scores(clean, [sd.denoise(older, n) for n in noisy])
            run.update({f"{key}, v-weight": value for key, value in earlier.items()})
        if args.tta:  # the 8 rotations/flips averaged
            averaged = scores(clean, [sd.denoise(model, n, tta=True) for n in noisy])
            run.update({f"{key}, tta": value for key, value in averaged.items()})
        knows_sigma = sigma is not None and args.objective == "n2v"
        if knows_sigma:  # a user who knows the noise: --noise-sigma
            told = scores(clean, [sd.denoise(model, n, noise_sigma=sigma) for n in noisy])
            run.update({f"{key}, sigma told": value for key, value in told.items()})
        runs.append(run)
        print(run, flush=True)
    rows.append(
        {
            "method": f"semdenoise {name}, {args.steps} steps, {len(runs)} seed(s)",
            "PSNR": interval([r["PSNR"] for r in runs]),
            "SSIM": interval([r["SSIM"] for r in runs]),
            "train minutes": round(float(np.median([r["train seconds"] for r in runs])) / 60, 1),
        }
    )
    if runs and "PSNR, v-weight" in runs[0]:
        rows.append(
            {
                "method": "semdenoise, same models, posterior weighed by v (before issue 16's "
                "residual profile)",
                "PSNR": interval([r["PSNR, v-weight"] for r in runs]),
                "SSIM": interval([r["SSIM, v-weight"] for r in runs]),
            }
        )
    if args.tta:
        rows.append(
            {
                "method": "semdenoise, same models, --tta",
                "PSNR": interval([r["PSNR, tta"] for r in runs]),
                "SSIM": interval([r["SSIM, tta"] for r in runs]),
            }
        )
    if sigma is not None and args.objective == "n2v":
        rows.append(
            {
                "method": f"semdenoise, same models, --noise-sigma {sigma:g}",
                "PSNR": interval([r["PSNR, sigma told"] for r in runs]),
                "SSIM": interval([r["SSIM, sigma told"] for r in runs]),
            }
        )
    print(markdown_table(rows, ["method", "PSNR", "SSIM", "train minutes"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "runs": runs}
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
